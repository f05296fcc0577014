//go:build !unix && !windows

package udpio

// noBroadcast: this system's sockets keep their default.
func noBroadcast(uintptr) error { return nil }
