// Package cluster runs a whole dht system in this process: a server and any
// number of peers, each with its own UDP socket on 127.0.0.1 and its own
// bbolt file, the real runners speaking the real protocol, each peer typed
// at line by line as a user at a terminal would. dht demo, dht play and dht
// bench are built on it, and so are the tests that need real sockets.
//
// What a peer prints comes back as it is, typed (app.Result): drivers read
// its fields, and format a result, if they show it, with its String.
package cluster

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"dht/app"
	"dht/dataset"
	"dht/internal/loopback"
	"dht/internal/udpio"
	"dht/store"
)

// Config says where a cluster keeps its files and how it behaves.
type Config struct {
	// Dir holds the bbolt files, named as the real commands name them:
	// dht-server.db, and dht-peer-USER.db for the peer USER types at. It
	// must be new or empty: the files of an earlier run would change the
	// outcome.
	Dir string
	// Data is what a peer spreads when it leads a ring, called each time
	// one does, as a real peer reads its --data file again.
	Data func() (dataset.Source, error)
	// Seed seeds every choice: the server's (ring members, the node a
	// query starts at) and the loss. Keys and message ids, which no one
	// may guess, come from crypto/rand.
	Seed uint64
	// Port is the server's port on 127.0.0.1 (0: any free port).
	Port uint16
	// Loss, if positive, makes every socket (the server's too) drop that
	// fraction of the datagrams it sends.
	Loss float64
	// Link tunes the peers' reliable delivery (zero: the defaults).
	Link app.LinkConfig
	// Log gets the trace of every process, each line naming its node (nil:
	// none).
	Log *slog.Logger
	// Ctx stops the cluster when it is done (SIGINT, SIGTERM): what is in
	// progress then fails with ErrInterrupted. Nil: never.
	Ctx context.Context
}

var (
	// ErrExited says a peer is gone (after deregister) and reads no more
	// lines.
	ErrExited = errors.New("the peer has exited (deregistered)")
	// ErrInterrupted says the cluster was stopped from outside (Config.Ctx)
	// or by Stop.
	ErrInterrupted = errors.New("interrupted")
)

// Cluster is a running Config.
type Cluster struct {
	cfg    Config
	server netip.AddrPort
	srv    *app.ServerRunner
	srvDB  *store.ServerDB
	ctx    context.Context
	cancel context.CancelFunc
	// srvDone is closed when the server has stopped, srvErr then says why.
	srvDone chan struct{}
	srvErr  error

	mu    sync.Mutex
	peers map[string]*Peer
	order []*Peer
}

// Start opens the server's file and socket and starts serving. Peers start
// when first typed at (Peer).
func Start(cfg Config) (*Cluster, error) {
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
	conn, err := udpio.Listen(netip.AddrPortFrom(loopback.Addr, cfg.Port))
	if err == nil {
		if err = conn.Stamp(); err != nil {
			conn.Close()
		}
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("server: %w", err)
	}
	c := &Cluster{cfg: cfg, srvDB: db, srvDone: make(chan struct{}), peers: map[string]*Peer{}}
	c.server = conn.LocalAddr()
	parent := cfg.Ctx
	if parent == nil {
		parent = context.Background()
	}
	c.ctx, c.cancel = context.WithCancel(parent)
	c.srv = &app.ServerRunner{
		Conn: conn,
		// The seed picks; the keys (users' secrets, ring keys, the cookie
		// key) come from crypto/rand, as a real server's: play's and
		// bench's seed is 1 unless told, demo prints its own, and keys
		// drawn from it would let whoever knows it sign as any user (an
		// attacker's review signed alice's deregister so).
		Core:   app.NewServer(app.ServerConfig{Rand: rand.New(rand.NewPCG(cfg.Seed, 0x5e57e7))}, st, replies),
		Store:  db,
		Log:    c.logger("server"),
		Faults: c.faults(0),
	}
	go func() {
		err := c.srv.Run(c.ctx)
		conn.Close()
		c.srvErr = err
		close(c.srvDone)
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

// logger is the trace of one process ("": a peer, which the runner names
// once it knows its user); nil without Config.Log. All share one handler,
// so lines from different processes never interleave.
func (c *Cluster) logger(node string) *slog.Logger {
	if c.cfg.Log == nil || node == "" {
		return c.cfg.Log
	}
	return c.cfg.Log.With(slog.String("node", node))
}

// faults is the loss of socket i (0: the server's), nil without loss.
func (c *Cluster) faults(i uint64) *app.Faults {
	if c.cfg.Loss <= 0 {
		return nil
	}
	return &app.Faults{Loss: c.cfg.Loss, Rand: rand.New(rand.NewPCG(c.cfg.Seed, 0xfa17+i))}
}

// Server is the server's address.
func (c *Cluster) Server() netip.AddrPort { return c.server }

// Dir is the folder of the bbolt files.
func (c *Cluster) Dir() string { return c.cfg.Dir }

// Files lists the bbolt files the cluster wrote, the server's first.
func (c *Cluster) Files() []string {
	fs := []string{filepath.Join(c.cfg.Dir, "dht-server.db")}
	m, _ := filepath.Glob(filepath.Join(c.cfg.Dir, "dht-peer-*.db"))
	return append(fs, m...)
}

// Peer returns the peer that user types at, starting it on first use. Its
// table file is named after user, not after the name it registers: two
// terminals that try the same name must not fight over one file.
func (c *Cluster) Peer(user string) *Peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.peers[user]; ok {
		return p
	}
	k := uint64(len(c.order))
	p := &Peer{User: user, c: c, lines: make(chan string), kick: make(chan struct{}, 1), done: make(chan struct{})}
	p.wantsAt.Store(-1)
	ctx, cancel := context.WithCancel(c.ctx)
	p.cancel = cancel
	p.runner = &app.PeerRunner{
		Core: app.NewPeer(app.PeerConfig{
			Server:   c.server,
			LoadData: c.cfg.Data,
			Rand:     strongRand(), // message ids must not be guessed (DESIGN §9)
			Link:     c.cfg.Link,
		}),
		Lines:  p.lines,
		Out:    p,
		Log:    c.logger(""),
		Faults: c.faults(k + 1),
		OpenStore: func(string) (app.PeerStore, error) {
			return store.OpenPeer(filepath.Join(c.cfg.Dir, "dht-peer-"+user+".db"))
		},
		Idle:      p.idle,
		WantsLine: p.wantsLine,
	}
	go func() {
		p.err = p.runner.Run(ctx)
		close(p.done)
	}()
	c.peers[user] = p
	c.order = append(c.order, p)
	return p
}

func (c *Cluster) started() []*Peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.order)
}

// Sleep pauses for d, or less if the cluster is stopped (ErrInterrupted).
func (c *Cluster) Sleep(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-c.ctx.Done():
		return ErrInterrupted
	}
}

// Wait blocks until the cluster is stopped from outside (nil) or its server
// fails (the error it stopped with).
func (c *Cluster) Wait() error {
	select {
	case <-c.ctx.Done():
		return nil
	case <-c.srvDone:
		return c.srvErr
	}
}

// Traffic counts what the sockets of a cluster sent.
type Traffic struct {
	Datagrams uint64 // written to the sockets
	Bytes     uint64 // in those datagrams
	Stores    uint64 // store datagrams among them, retransmissions included
	Lost      uint64 // dropped on purpose (Config.Loss) instead of being written
}

// Traffic sums what every socket of the cluster sent so far.
func (c *Cluster) Traffic() Traffic {
	var t Traffic
	add := func(r *app.Traffic) {
		t.Datagrams += r.Datagrams.Load()
		t.Bytes += r.Bytes.Load()
		t.Stores += r.Stores.Load()
		t.Lost += r.Lost.Load()
	}
	add(&c.srv.Traffic)
	for _, p := range c.started() {
		add(&p.runner.Traffic)
	}
	return t
}

// Stats sums the peers' link counters. Call it only after Stop: the cores
// belong to their runners while they run.
func (c *Cluster) Stats() app.Stats {
	var s app.Stats
	for _, p := range c.started() {
		t := p.runner.Core.Stats()
		s.Sent += t.Sent
		s.Retransmits += t.Retransmits
		s.DupsSuppressed += t.DupsSuppressed
		s.GaveUp += t.GaveUp
	}
	return s
}

// Stop ends every peer (as SIGINT would: files closed cleanly, tables
// intact) and then the server, and reports the first failure.
func (c *Cluster) Stop() error {
	var errs []error
	for _, p := range c.started() {
		p.cancel()
		<-p.done
		if p.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.User, p.err))
		}
	}
	c.cancel()
	<-c.srvDone
	if c.srvErr != nil {
		errs = append(errs, c.srvErr)
	}
	if err := c.srvDB.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Peer is one in-process peer and the terminal its user types at. One
// goroutine at a time types at a peer; different peers may be typed at
// at once.
type Peer struct {
	// User is the label of the terminal (usually the name it registers).
	User   string
	c      *Cluster
	runner *app.PeerRunner
	lines  chan string
	cancel context.CancelFunc
	done   chan struct{}
	err    error // valid once done is closed

	// The typing goroutine's:
	sent      int       // lines handed to the runner
	printedAt time.Time // when the last result Do returned was printed

	// Set by the runner's hooks, one call at a time, read by Do: the runner
	// was idle, or wanted a Long Name, after reading idleAt lines; it
	// wanted a Long Name after reading wantsAt lines (-1: not since).
	idleAt, wantsAt atomic.Int64
	kick            chan struct{}

	mu      sync.Mutex
	printed []app.Result // since the last Do
	lastAt  time.Time    // when the last of them was printed
}

// Do types line at the peer and waits until the peer has finished it, or
// waits for the next line as its Long Name (a query-dht typed without one,
// which the server answered SUCCESS). It returns the results the peer
// printed since the previous Do: one, or two for setup-dht, leave-dht and
// teardown-dht when the first succeeds. ctx bounds the wait (a context, not
// a timer per line: arming a timer costs a wake-up of the runtime's poller,
// which would show in the latencies the bench measures).
func (p *Peer) Do(ctx context.Context, line string) ([]app.Result, error) {
	err := p.send(ctx, line)
	if err == nil {
		err = p.wait(ctx)
	}
	if p.c.ctx.Err() != nil {
		err = ErrInterrupted
	}
	return p.take(), err
}

// Must is Do that fails unless every result is a SUCCESS.
func (p *Peer) Must(ctx context.Context, line string) ([]app.Result, error) {
	got, err := p.Do(ctx, line)
	if err != nil {
		return got, fmt.Errorf("%s: %q: %w", p.User, line, err)
	}
	for _, r := range got {
		if !r.OK {
			return got, fmt.Errorf("%s: %q: %s", p.User, line, r)
		}
	}
	return got, nil
}

// PrintedAt is when the peer printed the last result that Do returned.
func (p *Peer) PrintedAt() time.Time { return p.printedAt }

// WantsLongName reports that the peer, after the last line typed at it,
// waits for the next as a Long Name.
func (p *Peer) WantsLongName() bool { return p.wantsAt.Load() == int64(p.sent) }

func (p *Peer) send(ctx context.Context, line string) error {
	select {
	case p.lines <- line:
		p.sent++
		return nil
	case <-p.done:
		if p.err != nil {
			return p.err
		}
		return ErrExited
	case <-ctx.Done():
		return fmt.Errorf("the peer did not read the line: %w", context.Cause(ctx))
	}
}

// wait blocks until the peer is idle after every line sent to it, or gone.
func (p *Peer) wait(ctx context.Context) error {
	for {
		if p.idleAt.Load() >= int64(p.sent) {
			return nil
		}
		select {
		case <-p.kick:
		case <-p.done:
			return p.err
		case <-ctx.Done():
			return fmt.Errorf("the command did not finish: %w", context.Cause(ctx))
		}
	}
}

// take returns and forgets the results printed so far.
func (p *Peer) take() []app.Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.printed
	if len(out) > 0 {
		p.printedAt = p.lastAt
	}
	p.printed = nil
	return out
}

// WriteResult is the runner's Out: it keeps each result, and when it came.
func (p *Peer) WriteResult(r app.Result) {
	at := time.Now()
	p.mu.Lock()
	p.printed = append(p.printed, r)
	p.lastAt = at
	p.mu.Unlock()
}

// Write is there for Out to be an io.Writer; a runner gives a ResultWriter
// its results as they are, and nothing else.
func (p *Peer) Write(b []byte) (int, error) {
	return 0, errors.New("cluster: a peer's results are taken typed (app.ResultWriter), not as text")
}

// idle is the runner's Idle hook. A ring member calls it on every datagram
// it serves while its user types nothing: that costs two atomic loads.
func (p *Peer) idle(linesRead int) {
	n := int64(linesRead)
	if p.idleAt.Load() == n && p.wantsAt.Load() < 0 {
		return
	}
	p.wantsAt.Store(-1)
	p.idleAt.Store(n)
	p.wake()
}

// wantsLine is the runner's WantsLine hook.
func (p *Peer) wantsLine(linesRead int) {
	n := int64(linesRead)
	if p.idleAt.Load() == n && p.wantsAt.Load() == n {
		return
	}
	p.wantsAt.Store(n)
	p.idleAt.Store(n)
	p.wake()
}

func (p *Peer) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// strongRand is a source seeded from crypto/rand.
func strongRand() *rand.Rand {
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // Read never fails on the systems Go supports
	}
	return rand.New(rand.NewChaCha8(seed))
}
