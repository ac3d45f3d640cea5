package gateway

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// canMap: the journal's active segment is memory-mapped (journal.go).
const canMap = true

// mapSegment preallocates f to size bytes and maps it for writing.
// Preallocation makes a full disk an error here instead of a SIGBUS when
// a copy first touches a page; file systems without fallocate get a
// sparse file (the SIGBUS risk the page cache always has for them).
func mapSegment(f *os.File, size int64) ([]byte, error) {
	fd := int(f.Fd())
	if err := unix.Fallocate(fd, 0, 0, size); err != nil {
		if !errors.Is(err, unix.EOPNOTSUPP) {
			return nil, err
		}
		if err := f.Truncate(size); err != nil {
			return nil, err
		}
	}
	m, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		// A file system (or a mount option) without shared writable
		// mappings: the journal falls back to writing.
		return nil, fmt.Errorf("%w: %v", errMapUnsupported, err)
	}
	return m, err
}

func unmapSegment(m []byte) error { return unix.Munmap(m) }
