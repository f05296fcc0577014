//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"dht/wire"
)

// The real binary against an attacker who captured every datagram of a
// DHT's life on the wire and sends it all again, with forged source
// addresses: every UDP datagram between the server and the peers is
// captured on the loopback interface (a packet socket), from the first
// register to a second ring, through queries, a leave and a join; then
// each is sent again through a raw IP socket, as it was (its source
// forged), from a stranger's port, with another message id, and from its
// sender to every other process. Nothing of it is acted on: the ring
// answers every query, the server still records the same DHT, and no
// process prints a line it was not asked for. It needs CAP_NET_RAW: without
// it, it is skipped, but under CI=true (run as root) it fails.
func TestBinaryReplayedCapture(t *testing.T) {
	dir, recs, ports := e2eSetup(t)
	ours := map[uint16]bool{}
	for _, p := range ports {
		ours[uint16(p)] = true
	}
	skip := t.Skipf
	if os.Getenv("CI") == "true" {
		skip = t.Fatalf // CI runs as root: there, a skip would hide the test
	}
	c, err := startCapture(ours)
	if err != nil {
		skip("cannot capture on the loopback interface (needs CAP_NET_RAW): %v", err)
	}
	defer c.close()
	raw, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
	if err != nil {
		skip("cannot send forged datagrams (needs CAP_NET_RAW): %v", err)
	}
	defer unix.Close(raw)

	sport := strconv.Itoa(ports[0])
	e2eServer(t, dir, sport)
	peers := e2ePeers(t, dir, sport, ports, noFlags)
	ring := ringMembers(peers["alice"].do("setup-dht 4 alice", "setup-dht SUCCESS"))
	peers["alice"].expect("dht-complete SUCCESS")
	free := e2eFree(t, ring)
	queryAll(t, peers[free], free, recs[:40], 4)
	peers["alice"].do("teardown-dht alice", "teardown-dht SUCCESS")
	peers["alice"].expect("teardown-complete SUCCESS")
	// The ring standing at the end: set up, left, joined (a leave and a
	// join keep the ring's key, so their messages are of the ring the
	// replay meets).
	ring = ringMembers(peers["bob"].do("setup-dht 3 bob", "setup-dht SUCCESS"))
	peers["bob"].expect("dht-complete SUCCESS")
	querier := e2eFree(t, ring)
	queryAll(t, peers[querier], querier, recs[:40], 3)
	leaver := ring[1]
	peers[leaver].do("leave-dht "+leaver, "leave-dht SUCCESS")
	leader := strings.TrimPrefix(peers[leaver].expect("dht-rebuilt SUCCESS: new leader "), "dht-rebuilt SUCCESS: new leader ")
	joiner := e2eOutside(append(slices.Clone(ring), querier))[0]
	peers[joiner].do("join-dht "+joiner, "join-dht SUCCESS")
	expectJoined(t, peers[joiner], leader)
	queryAll(t, peers[querier], querier, recs[:40], 3)
	captured := c.stop()
	if len(captured) < 100 {
		t.Fatalf("only %d datagrams captured", len(captured))
	}

	// Everything again, every way; paced, so that the sockets' buffers
	// take most of it (a flood is tested elsewhere).
	procs := []netip.AddrPort{}
	for _, p := range ports {
		procs = append(procs, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(p)))
	}
	stranger := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePorts(t, 1)[0]))
	sent := 0
	send := func(from, to netip.AddrPort, b []byte) {
		if err := sendForged(raw, from, to, b); err != nil {
			t.Fatalf("send a forged datagram: %v", err)
		}
		if sent++; sent%64 == 0 {
			time.Sleep(2 * time.Millisecond) // pacing, not waiting for anything
		}
	}
	for _, d := range captured {
		send(d.from, d.to, d.b)
		send(stranger, d.to, d.b)
		changed := slices.Clone(d.b)
		changed[7] ^= 0x55 // the message id
		send(d.from, d.to, changed)
		for _, to := range procs {
			if to != d.to && to != d.from {
				send(d.from, to, d.b)
			}
		}
	}
	t.Logf("%d datagrams captured (%d dropped by the capture), %d sent again", len(captured), c.lost, sent)

	// The ring of three answers, the server records bob's DHT, and each
	// process printed nothing but the answers to what it was asked.
	queryAll(t, peers[querier], querier, recs, 3)
	peers[querier].do("setup-dht 2 "+querier, "setup-dht FAILURE: a DHT already exists (leader "+leader+")")
	for _, u := range e2eUsers {
		peers[u].do("leave-dht "+u+"x", "leave-dht FAILURE")
		select {
		case l := <-peers[u].out:
			t.Errorf("%s printed %q, asked nothing", u, l)
		default:
		}
	}
}

type datagram struct {
	from, to netip.AddrPort
	b        []byte
}

// capture reads every IPv4 UDP datagram the loopback interface carries
// between two of the ports given.
type capture struct {
	fd    int
	ports map[uint16]bool
	mu    sync.Mutex
	got   []datagram
	lost  int
	done  chan struct{}
	quit  chan struct{}
}

func startCapture(ports map[uint16]bool) (*capture, error) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return nil, err
	}
	proto := int(htons(unix.ETH_P_IP))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, proto)
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: lo.Index}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, err
	}
	c := &capture{fd: fd, ports: ports, done: make(chan struct{}), quit: make(chan struct{})}
	go c.run()
	return c, nil
}

func (c *capture) run() {
	defer close(c.done)
	buf := make([]byte, 1<<16)
	for {
		select {
		case <-c.quit:
			return
		default:
		}
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return
		}
		// A socket bound to one protocol sees a loopback packet once, as
		// it comes in (only ETH_P_ALL sockets see it go out too).
		if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if d, ok := c.parse(buf[:n]); ok {
			c.mu.Lock()
			c.got = append(c.got, d)
			c.mu.Unlock()
		}
	}
}

// parse takes an IPv4 packet carrying a UDP datagram between two of the
// ports.
func (c *capture) parse(p []byte) (datagram, bool) {
	if len(p) < 20 || p[0]>>4 != 4 || p[9] != unix.IPPROTO_UDP {
		return datagram{}, false
	}
	ihl := int(p[0]&0x0f) * 4
	if len(p) < ihl+8 {
		return datagram{}, false
	}
	u := p[ihl:]
	sp, dp := binary.BigEndian.Uint16(u[0:]), binary.BigEndian.Uint16(u[2:])
	if !c.ports[sp] || !c.ports[dp] {
		return datagram{}, false
	}
	ulen := int(binary.BigEndian.Uint16(u[4:]))
	if ulen < 8 || ulen > len(u) {
		return datagram{}, false
	}
	src := netip.AddrFrom4([4]byte(p[12:16]))
	dst := netip.AddrFrom4([4]byte(p[16:20]))
	b := slices.Clone(u[8:ulen])
	if _, _, err := wire.Decode(b); err != nil {
		return datagram{}, false
	}
	return datagram{netip.AddrPortFrom(src, sp), netip.AddrPortFrom(dst, dp), b}, true
}

// stop ends the capture and returns what it took.
func (c *capture) stop() []datagram {
	close(c.quit)
	<-c.done
	if st, err := unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
		c.lost = int(st.Drops)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got
}

func (c *capture) close() {
	select {
	case <-c.quit:
	default:
		c.stop()
	}
	unix.Close(c.fd)
}

// sendForged sends payload from `from` to `to` through a raw IP socket:
// the source is whatever the caller says.
func sendForged(fd int, from, to netip.AddrPort, payload []byte) error {
	pkt := make([]byte, 28+len(payload))
	pkt[0] = 0x45 // IPv4, a 20-byte header
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	pkt[8] = 64 // TTL
	pkt[9] = unix.IPPROTO_UDP
	src, dst := from.Addr().As4(), to.Addr().As4()
	copy(pkt[12:16], src[:])
	copy(pkt[16:20], dst[:])
	binary.BigEndian.PutUint16(pkt[10:], ipChecksum(pkt[:20]))
	u := pkt[20:]
	binary.BigEndian.PutUint16(u[0:], from.Port())
	binary.BigEndian.PutUint16(u[2:], to.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	// Checksum 0: none, which IPv4 allows.
	copy(u[8:], payload)
	return unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: dst})
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
