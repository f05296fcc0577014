//go:build !linux

package app

import (
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

func (r *batchReader) read() (int, error) {
	n, from, err := r.c.ReadFromUDPAddrPort(r.buf)
	if err != nil {
		return 0, err
	}
	r.n, r.from = n, from
	return 1, nil
}

// poll reads nothing here: without a way to read without waiting, what is
// waiting is read by the next read.
func (r *batchReader) poll() (int, error) { return 0, nil }

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
