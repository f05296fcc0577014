//go:build !linux

package app

import (
	"errors"
	"net"
	"net/netip"
)

// Elsewhere a socket is read and written one datagram per call.

type batchReader struct {
	c    *net.UDPConn
	buf  []byte
	n    int
	from netip.AddrPort
}

func newBatchReader(c *net.UDPConn, _, size int) (*batchReader, error) {
	return &batchReader{c: c, buf: make([]byte, size)}, nil
}

// serve reads one datagram per call until lot reports false or the socket
// is closed. Without a way to read without waiting, a lot that asks for
// another read is told at once that nothing is waiting.
func (r *batchReader) serve(lot func(n int) (ok, again bool)) error {
	for {
		n, from, err := r.c.ReadFromUDPAddrPort(r.buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			continue // e.g. ICMP port unreachable reported on a later read
		}
		r.n, r.from = n, from
		ok, again := lot(1)
		for ok && again {
			ok, again = lot(0)
		}
		if !ok {
			return nil
		}
	}
}

func (r *batchReader) msg(int) (netip.AddrPort, []byte) { return r.from, r.buf[:r.n] }

type batchWriter struct{ c *net.UDPConn }

func newBatchWriter(c *net.UDPConn, _ int) (*batchWriter, error) { return &batchWriter{c: c}, nil }

func (w *batchWriter) write(bufs [][]byte, to []netip.AddrPort) (int, error) {
	for i, b := range bufs {
		if _, err := w.c.WriteToUDPAddrPort(b, to[i]); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}
