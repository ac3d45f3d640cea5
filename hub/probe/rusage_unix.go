//go:build unix

package probe

import (
	"os"
	"syscall"
)

// maxRSSKiB is a finished process's peak resident memory (Linux reports KiB).
func maxRSSKiB(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return int64(ru.Maxrss)
	}
	return 0
}
