//go:build windows

package udpio

import "syscall"

// noBroadcast is broadcast_unix.go's.
func noBroadcast(fd uintptr) error {
	return syscall.SetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 0)
}
