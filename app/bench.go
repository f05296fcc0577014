package app

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"dht/dataset"
	"dht/store"
)

// ClusterConfig describes a whole system run inside one process, as `dht
// bench` does: a real server and real peers, each with its own UDP socket on
// 127.0.0.1 and its own bbolt file in Dir, speaking the real protocol.
type ClusterConfig struct {
	Dir string
	// Users is how many peer processes to start; they register as
	// UserName(0), UserName(1), ...
	Users int
	// Data is what every peer spreads when it leads a ring (shared, never
	// modified; read by index as the leader sends).
	Data dataset.Source
	Seed uint64
	// Loss, if positive, makes every socket (the server's too) drop that
	// fraction of the datagrams it sends, seeded from Seed.
	Loss float64
	Link LinkConfig
}

// Cluster is a running ClusterConfig.
type Cluster struct {
	Server *ServerRunner
	Users  []*User

	ctx     context.Context
	cancel  context.CancelFunc
	srvDB   *store.ServerDB
	srvDone chan error
}

// User is one in-process peer process and the terminal it is typed at.
type User struct {
	Name   string
	Addr   netip.AddrPort
	Runner *PeerRunner

	// Printed is when the peer wrote the last result line Do returned.
	Printed time.Time

	lines chan string
	out   chan printed
	done  chan struct{}
	err   error
}

type printed struct {
	line string
	at   time.Time
}

// UserName is the name of user i of a cluster: letters only, as names must
// be.
func UserName(i int) string {
	b := []byte("user")
	var s []byte
	for {
		s = append(s, byte('a'+i%26))
		i /= 26
		if i == 0 {
			break
		}
	}
	for len(s) < 3 {
		s = append(s, 'a')
	}
	for j := len(s) - 1; j >= 0; j-- {
		b = append(b, s[j])
	}
	return string(b)
}

// StartCluster starts the server and the users' peers and registers every
// user. Stop ends them all.
func StartCluster(cfg ClusterConfig) (*Cluster, error) {
	db, err := store.OpenServer(filepath.Join(cfg.Dir, "dht-server.db"))
	if err != nil {
		return nil, err
	}
	st, replies, err := db.Load()
	if err != nil {
		db.Close()
		return nil, err
	}
	conn, err := ListenServer(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 0))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("server: %w", err)
	}
	saddr := netip.MustParseAddrPort(conn.LocalAddr().String())
	c := &Cluster{srvDB: db, srvDone: make(chan error, 1)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	faults := func(i uint64) *Faults {
		if cfg.Loss <= 0 {
			return nil
		}
		return &Faults{Loss: cfg.Loss, Rand: rand.New(rand.NewPCG(cfg.Seed, 0xfa17+i))}
	}
	c.Server = &ServerRunner{
		Conn:   conn,
		Core:   NewServer(ServerConfig{Rand: rand.New(rand.NewPCG(cfg.Seed, 0x5e)), OpTimeout: time.Minute}, st, replies),
		Store:  db,
		Faults: faults(0),
	}
	go func() {
		err := c.Server.Run(c.ctx)
		conn.Close()
		c.srvDone <- err
	}()

	ports, err := freePorts(cfg.Users)
	if err != nil {
		c.Stop()
		return nil, err
	}
	data := cfg.Data
	for i := range cfg.Users {
		u := &User{
			Name:  UserName(i),
			Addr:  netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), ports[i]),
			lines: make(chan string),
			out:   make(chan printed, 64),
			done:  make(chan struct{}),
		}
		core := NewPeer(PeerConfig{
			Server:   saddr,
			LoadData: func() (dataset.Source, error) { return data, nil },
			Rand:     rand.New(rand.NewPCG(cfg.Seed, uint64(i)+1)),
			Link:     cfg.Link,
		})
		u.Runner = &PeerRunner{
			Core:   core,
			Lines:  u.lines,
			Out:    lineWriter(u.out),
			Faults: faults(uint64(i) + 1),
			OpenStore: func(name string) (PeerStore, error) {
				return store.OpenPeer(filepath.Join(cfg.Dir, "dht-peer-"+name+".db"))
			},
		}
		go func() {
			u.err = u.Runner.Run(c.ctx)
			close(u.done)
		}()
		c.Users = append(c.Users, u)
	}
	ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
	defer cancel()
	for _, u := range c.Users {
		line := fmt.Sprintf("register %s %s %d", u.Name, u.Addr.Addr(), u.Addr.Port())
		if _, err := u.Must(ctx, line); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// Stop ends every peer and the server (as SIGINT would: files closed
// cleanly) and reports the first failure.
func (c *Cluster) Stop() error {
	c.cancel()
	var errs []error
	for _, u := range c.Users {
		<-u.done
		if u.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u.Name, u.err))
		}
	}
	if err := <-c.srvDone; err != nil {
		errs = append(errs, err)
	}
	if err := c.srvDB.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Traffic sums what every socket of the cluster sent so far.
func (c *Cluster) Traffic() (datagrams, bytes, stores, lost uint64) {
	add := func(t *Traffic) {
		datagrams += t.Datagrams.Load()
		bytes += t.Bytes.Load()
		stores += t.Stores.Load()
		lost += t.Lost.Load()
	}
	add(&c.Server.Traffic)
	for _, u := range c.Users {
		add(&u.Runner.Traffic)
	}
	return
}

// Stats sums the peers' link counters. Call it only after Stop: the cores
// belong to their runners while they run.
func (c *Cluster) Stats() Stats {
	var s Stats
	for _, u := range c.Users {
		t := u.Runner.Core.Stats()
		s.Sent += t.Sent
		s.Retransmits += t.Retransmits
		s.DupsSuppressed += t.DupsSuppressed
		s.GaveUp += t.GaveUp
	}
	return s
}

// finalName is the command whose result line ends a command that runs in
// two steps (the server's answer, then the ring's work).
var finalName = map[string]string{
	"setup-dht":    "dht-complete",
	"leave-dht":    "dht-rebuilt",
	"join-dht":     "dht-rebuilt",
	"teardown-dht": "teardown-complete",
}

// Do types one command line at u and returns the result lines it printed
// for it: one, or two for setup-dht, leave-dht, join-dht and teardown-dht
// when the first succeeds. A result may span lines (a found record). ctx
// bounds the wait (a context, not a timer per command: arming a timer costs
// a wake-up of the runtime's poller, which would show in the latencies
// measured).
func (u *User) Do(ctx context.Context, line string) ([]string, error) {
	select {
	case u.lines <- line:
	case <-u.done:
		return nil, fmt.Errorf("%s has stopped: %v", u.Name, u.err)
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %q not read: %w", u.Name, line, context.Cause(ctx))
	}
	name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
	final := finalName[name]
	var got []string
	for {
		select {
		case p := <-u.out:
			r := p.line
			got = append(got, r)
			u.Printed = p.at
			if final == "" || strings.HasPrefix(r, final+" ") || strings.HasPrefix(r, name+" FAILURE") {
				return got, nil
			}
		case <-u.done:
			return got, fmt.Errorf("%s has stopped: %v", u.Name, u.err)
		case <-ctx.Done():
			return got, fmt.Errorf("%s: %q did not finish (printed %q): %w", u.Name, line, got, context.Cause(ctx))
		}
	}
}

// Must is Do that fails unless every result line says SUCCESS.
func (u *User) Must(ctx context.Context, line string) ([]string, error) {
	got, err := u.Do(ctx, line)
	if err != nil {
		return got, err
	}
	for _, r := range got {
		if _, rest, _ := strings.Cut(r, " "); !strings.HasPrefix(rest, "SUCCESS") {
			return got, fmt.Errorf("%s: %q: %s", u.Name, line, r)
		}
	}
	return got, nil
}

// lineWriter hands each result the runner prints (one Write per result) to
// the channel, without its final newline, with the time it was printed.
type lineWriter chan printed

func (w lineWriter) Write(b []byte) (int, error) {
	w <- printed{line: strings.TrimSuffix(string(b), "\n"), at: time.Now()}
	return len(b), nil
}

// freePorts picks n distinct UDP ports free on 127.0.0.1 right now.
func freePorts(n int) ([]uint16, error) {
	conns := make([]*net.UDPConn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	ports := make([]uint16, 0, n)
	for range n {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
		ports = append(ports, uint16(c.LocalAddr().(*net.UDPAddr).Port))
	}
	return ports, nil
}
