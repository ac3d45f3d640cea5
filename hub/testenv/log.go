package testenv

import (
	"log/slog"
	"testing"
)

// Log is a logger whose text output a test can read while the code under
// test is still writing to it.
type Log struct {
	*slog.Logger
	buf *syncBuffer
}

// NewLog returns a debug-level text logger writing into memory.
func NewLog(t testing.TB) *Log {
	t.Helper()
	buf := &syncBuffer{}
	return &Log{Logger: slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf: buf}
}

// String is everything logged so far.
func (l *Log) String() string { return l.buf.String() }
