// Package loopback finds UDP ports on 127.0.0.1 for the processes that
// dht demo, dht play, dht bench and the tests run on this host.
package loopback

import (
	"net"
	"net/netip"
)

// Addr is 127.0.0.1.
var Addr = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// FreePorts picks n distinct UDP ports that are free on 127.0.0.1 right
// now: each is held until all are picked, so none comes twice.
func FreePorts(n int) ([]uint16, error) {
	conns := make([]*net.UDPConn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	ports := make([]uint16, 0, n)
	for range n {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(Addr, 0)))
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
		ports = append(ports, uint16(c.LocalAddr().(*net.UDPAddr).Port))
	}
	return ports, nil
}
