//go:build !linux

package testenv

import "syscall"

// influxdProcAttr puts influxd in its own process group (Stop signals the
// group).
func influxdProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
