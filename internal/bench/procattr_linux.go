package bench

import "syscall"

// childAttr has the kernel send a child SIGTERM when the bench is gone,
// however it went (SIGKILL too): no cluster outlives the bench.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
