//go:build linux

package gateway

import (
	"os"

	"golang.org/x/sys/unix"
)

// fdatasync flushes a file's data (not its metadata times) to disk.
func fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
