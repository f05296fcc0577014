//go:build unix

package udpio

import "syscall"

// noBroadcast turns SO_BROADCAST off, which Go's net package turns on for
// every UDP socket: a datagram this socket is asked to send to a broadcast
// address (a forged source such as 10.0.0.255 or 127.255.255.255, which
// no check of the address alone can tell from a host's) is refused by the
// system (EACCES), instead of reaching every host on the link.
func noBroadcast(fd uintptr) error {
	return syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 0)
}
