package app

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// RunnerRingHop passes a token round a ring of n UDP sockets on 127.0.0.1,
// each read and written the way the runners read and write theirs (the
// batch reader that waits without a read that finds nothing, the batch
// writer), for laps laps, and returns the median time of one hop in
// microseconds (the median lap over n). It is the floor of the runners'
// own I/O, for comparison with a ring read through package net.
func RunnerRingHop(n, laps int) (float64, error) {
	conns := make([]*net.UDPConn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	addrs := make([]netip.AddrPort, n)
	for i := range n {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return 0, err
		}
		conns = append(conns, c)
		addrs[i] = netip.MustParseAddrPort(c.LocalAddr().String())
	}
	per := make([]float64, 0, laps)
	first := make(chan error, 1) // the first socket's reader, when the laps are done
	var wg sync.WaitGroup
	for i := range n {
		r, err := newBatchReader(conns[i], readBatch, 64)
		if err != nil {
			return 0, err
		}
		w, err := newBatchWriter(conns[i], 1)
		if err != nil {
			return 0, err
		}
		to := []netip.AddrPort{addrs[(i+1)%n]}
		token := [][]byte{[]byte("token")}
		wg.Go(func() {
			var t0 time.Time
			var werr error
			if i == 0 {
				t0 = time.Now()
				if _, err := w.write(token, to); err != nil {
					first <- err
					return
				}
			}
			err := r.serve(func(k int) (bool, bool) {
				for j := range k {
					_, b := r.msg(j)
					if i == 0 {
						now := time.Now()
						per = append(per, float64(now.Sub(t0))/float64(time.Microsecond)/float64(n))
						if len(per) == laps {
							return false, false
						}
						t0 = now
					}
					if _, werr = w.write([][]byte{b}, to); werr != nil {
						return false, false
					}
				}
				return true, false
			})
			if i == 0 {
				first <- errors.Join(werr, err)
			}
		})
	}
	err := <-first
	for _, c := range conns {
		c.Close() // ends the other readers
	}
	conns = nil
	wg.Wait()
	if err != nil {
		return 0, err
	}
	slices.Sort(per)
	return per[len(per)/2], nil
}
