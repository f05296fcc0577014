package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"dht/app"
	"dht/internal/udpio"
	"dht/store"
)

// localCluster is a server and any number of peers in this process, all on
// 127.0.0.1, each peer driven line by line the way a user at a terminal
// would: dht demo and dht play are built on it. Every process keeps its
// bbolt file in dir, named as the real commands name them.
type localCluster struct {
	dir    string
	data   string
	seed   uint64
	trace  *slog.Logger // nil: no trace
	server netip.AddrPort

	ctx     context.Context
	cancel  context.CancelFunc
	srvDB   *store.ServerDB
	srvDone chan error

	peers map[string]*livePeer
	order []string
}

// localClusterConfig says where a cluster keeps its files and how it behaves.
type localClusterConfig struct {
	Dir   string // must be empty or missing: the files of an earlier run would change the outcome
	Data  string // the dataset every peer spreads when it leads a ring
	Seed  uint64 // seeds the server's choices (ring members, the node a query starts at)
	Port  uint16 // the server's port on 127.0.0.1 (0: any free port)
	Trace io.Writer
	// Ctx ends everything when it is done (SIGINT, SIGTERM); nil: never.
	Ctx context.Context
}

var (
	// errPeerExited says a peer is gone (after deregister) and reads no more lines.
	errPeerExited = errors.New("the peer has exited (deregistered)")
	// errInterrupted says the cluster was stopped from outside.
	errInterrupted = errors.New("interrupted")
)

// startLocalCluster opens the server's file and socket and starts serving.
func startLocalCluster(cfg localClusterConfig) (*localCluster, error) {
	if err := requireEmptyDir(cfg.Dir); err != nil {
		return nil, err
	}
	db, err := store.OpenServer(filepath.Join(cfg.Dir, "dht-server.db"))
	if err != nil {
		return nil, err
	}
	st, replies, err := db.Load()
	if err != nil {
		db.Close()
		return nil, err
	}
	conn, err := udpio.Listen(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), cfg.Port))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("server: %w", err)
	}
	c := &localCluster{
		dir: cfg.Dir, data: cfg.Data, seed: cfg.Seed,
		srvDB: db, srvDone: make(chan error, 1), peers: map[string]*livePeer{},
	}
	if cfg.Trace != nil {
		c.trace = slog.New(slog.NewTextHandler(cfg.Trace, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	c.server = conn.LocalAddr()
	parent := cfg.Ctx
	if parent == nil {
		parent = context.Background()
	}
	c.ctx, c.cancel = context.WithCancel(parent)
	core := app.NewServer(app.ServerConfig{Rand: rand.New(rand.NewPCG(cfg.Seed, 0x5e57e7))}, st, replies)
	r := &app.ServerRunner{Conn: conn, Core: core, Store: db, Log: c.logger("server")}
	go func() {
		err := r.Run(c.ctx)
		conn.Close()
		c.srvDone <- err
	}()
	return c, nil
}

// requireEmptyDir makes dir if it is missing and refuses one that holds anything.
func requireEmptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return fmt.Errorf("%s is not empty: give a new or empty folder (the files of an earlier run would change the outcome)", dir)
	}
	return nil
}

// logger is the trace of one process; nil (discard) without --trace. All
// share one handler, so lines from different processes never interleave.
func (c *localCluster) logger(node string) *slog.Logger {
	if c.trace == nil {
		return nil
	}
	if node == "" {
		return c.trace
	}
	return c.trace.With(slog.String("node", node))
}

// peer returns the peer typed at by user, starting it on first use.
func (c *localCluster) peer(user string) *livePeer {
	if p, ok := c.peers[user]; ok {
		return p
	}
	seed := c.seed + uint64(len(c.order)) + 1
	core := app.NewPeer(app.PeerConfig{
		Server:   c.server,
		LoadData: loadData(c.data),
		Rand:     rand.New(rand.NewPCG(seed, 0x9ee7)),
	})
	p := &livePeer{user: user, lines: make(chan string), kick: make(chan struct{}, 1), done: make(chan struct{}), wantsAt: -1}
	ctx, cancel := context.WithCancel(c.ctx)
	p.cancel = cancel
	r := &app.PeerRunner{
		Core:  core,
		Lines: p.lines,
		Out:   p,
		Log:   c.logger(""),
		// Named after the user typing, not the name registered: two
		// terminals that try the same name must not fight over one file.
		OpenStore: func(string) (app.PeerStore, error) {
			return store.OpenPeer(filepath.Join(c.dir, "dht-peer-"+user+".db"))
		},
		Idle:      p.idle,
		WantsLine: p.wantsLine,
	}
	go func() {
		p.err = r.Run(ctx)
		close(p.done)
	}()
	c.peers[user] = p
	c.order = append(c.order, user)
	return p
}

// do types one line at user's peer and waits until the peer has finished
// it, or waits for the next line as its Long Name (a query-dht typed
// without one, which the server answered SUCCESS). It returns what the
// peer printed since the previous line.
func (c *localCluster) do(user, line string, timeout time.Duration) ([]string, error) {
	p := c.peer(user)
	err := p.send(line, timeout)
	if err == nil {
		err = p.wait(timeout)
	}
	if err != nil && c.ctx.Err() != nil {
		err = errInterrupted
	}
	return p.take(), err
}

// sleep pauses for d, or less if the cluster is stopped.
func (c *localCluster) sleep(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-c.ctx.Done():
		return errInterrupted
	}
}

// awaitsLongName reports that user's peer, after the last line typed at
// it, waits for the next as a Long Name.
func (c *localCluster) awaitsLongName(user string) bool {
	p := c.peers[user]
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.wantsAt == p.sent
}

// stop ends every peer (as SIGINT would: files closed cleanly, tables
// intact) and then the server, and reports the first failure.
func (c *localCluster) stop() error {
	var errs []error
	for _, u := range c.order {
		p := c.peers[u]
		p.cancel()
		<-p.done
		if p.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, p.err))
		}
	}
	c.cancel()
	if err := <-c.srvDone; err != nil {
		errs = append(errs, err)
	}
	if err := c.srvDB.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// files lists the bbolt files the cluster wrote, the server's first.
func (c *localCluster) files() []string {
	fs := []string{filepath.Join(c.dir, "dht-server.db")}
	m, _ := filepath.Glob(filepath.Join(c.dir, "dht-peer-*.db"))
	return append(fs, m...)
}

// livePeer is one in-process peer: the lines typed at it, what it printed,
// and how far it has got.
type livePeer struct {
	user   string
	lines  chan string
	cancel context.CancelFunc
	done   chan struct{}
	err    error // valid once done is closed
	sent   int   // lines handed to the runner (driver goroutine only)

	mu      sync.Mutex
	idleAt  int // the runner was idle, or wanted a Long Name, after reading this many lines
	wantsAt int // the runner wanted a Long Name after reading this many lines (-1: not since)
	partial []byte
	out     []string
	kick    chan struct{}
}

// idle is the runner's Idle hook.
func (p *livePeer) idle(linesRead int) { p.ready(linesRead, false) }

// wantsLine is the runner's WantsLine hook.
func (p *livePeer) wantsLine(linesRead int) { p.ready(linesRead, true) }

// ready notes that the peer is done with the lines read so far: idle, or
// waiting for the next as a Long Name.
func (p *livePeer) ready(linesRead int, wants bool) {
	p.mu.Lock()
	p.idleAt, p.wantsAt = linesRead, -1
	if wants {
		p.wantsAt = linesRead
	}
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Write collects what the peer prints, line by line.
func (p *livePeer) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			break
		}
		p.out = append(p.out, string(p.partial[:i]))
		p.partial = p.partial[i+1:]
	}
	return len(b), nil
}

// take returns and forgets the lines printed so far.
func (p *livePeer) take() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.out
	p.out = nil
	return out
}

func (p *livePeer) send(line string, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case p.lines <- line:
		p.sent++
		return nil
	case <-p.done:
		if p.err != nil {
			return p.err
		}
		return errPeerExited
	case <-t.C:
		return fmt.Errorf("the peer did not read the line within %v", timeout)
	}
}

// wait blocks until the peer is idle after every line sent to it, or gone.
func (p *livePeer) wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		p.mu.Lock()
		ok := p.idleAt >= p.sent
		p.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-p.kick:
		case <-p.done:
			return p.err
		case <-t.C:
			return fmt.Errorf("the command did not finish within %v", timeout)
		}
	}
}

// freeLoopbackPorts picks n distinct UDP ports that are free on 127.0.0.1
// right now.
func freeLoopbackPorts(n int) ([]uint16, error) {
	var conns []net.PacketConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	ports := make([]uint16, 0, n)
	for range n {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		conns = append(conns, c)
		ports = append(ports, uint16(c.LocalAddr().(*net.UDPAddr).Port))
	}
	return ports, nil
}
