package testenv

import "syscall"

// influxdProcAttr puts influxd in its own process group (Stop signals the
// group) and has the kernel kill it if the test binary dies without running
// its cleanups (a test timeout panics past them).
func influxdProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
