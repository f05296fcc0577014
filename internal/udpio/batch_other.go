//go:build !linux

package udpio

import (
	"errors"
	"net"
	"net/netip"
)

// Elsewhere a socket is read and written one datagram per call.

type batchReader struct {
	c       *net.UDPConn
	pktinfo bool // never set here
	stamps  bool // never set here
}

// pktinfoOK: this build has no way to learn where a datagram was sent;
// the system chooses each source.
const pktinfoOK = false

func enablePktinfo(*net.UDPConn) error { return nil }

// stampsOK: this build reads no arrival times; Message.At stays zero.
const stampsOK = false

func enableStamps(*net.UDPConn) error { return nil }

func (r *batchReader) init(c *net.UDPConn) error { r.c = c; return nil }

// serve is ReadBatches, a datagram a lot. Without a way to read without
// waiting, a lot that asks for another read is told at once that nothing
// is waiting.
func (r *batchReader) serve(ms []Message, handle func([]Message) (ok, more bool)) error {
	if len(ms) == 0 || len(ms[0].Buf) == 0 {
		panic("udpio: ReadBatches without room for a datagram")
	}
	for {
		n, from, err := r.c.ReadFromUDPAddrPort(ms[0].Buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			continue // e.g. ICMP port unreachable reported on a later read
		}
		ms[0].N, ms[0].Addr = n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		ok, more := handle(ms[:1])
		for ok && more {
			ok, more = handle(ms[:0])
		}
		if !ok {
			return nil
		}
	}
}

type batchWriter struct {
	c       *net.UDPConn
	pktinfo bool // never set here
}

func (w *batchWriter) init(c *net.UDPConn, _ int) error { w.c = c; return nil }

func (w *batchWriter) write(ms []Message) (int, error) {
	for i, m := range ms {
		if _, err := w.c.WriteToUDPAddrPort(m.Buf, m.Addr); err != nil {
			return i, err
		}
	}
	return len(ms), nil
}
