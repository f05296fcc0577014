package app

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dht/dataset"
	"dht/store"
)

// A register refused by the server may be retried at another address. When
// the retry was typed while the first was in flight, the peer starts it as
// the refusal arrives: in the old socket's reader, in its turn. The rebind
// there must not wait for that turn to end (closing a socket waits for its
// reader), and the new socket must work.
func TestRunnerRebindsInTheOldSocketsTurn(t *testing.T) {
	cl, err := StartCluster(ClusterConfig{Dir: t.TempDir(), Users: 1, Data: dataset.SyntheticSource{N: 10, Seed: 1}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cl.Stop(); err != nil {
			t.Error(err)
		}
	}()
	taken := cl.Users[0].Name
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 3)
	out := make(chan printed, 8)
	dir := t.TempDir()
	r := &PeerRunner{
		Core: NewPeer(PeerConfig{
			Server:   netip.MustParseAddrPort(cl.Server.Conn.LocalAddr().String()),
			LoadData: func() (dataset.Source, error) { return dataset.SyntheticSource{N: 10, Seed: 1}, nil },
			Rand:     rand.New(rand.NewPCG(1, 2)),
		}),
		Lines: lines,
		Out:   lineWriter(out),
		OpenStore: func(name string) (PeerStore, error) {
			return store.OpenPeer(filepath.Join(dir, "dht-peer-"+name+".db"))
		},
	}
	// Both typed at once: the second waits in the core for the first.
	lines <- fmt.Sprintf("register %s 127.0.0.1 %d", taken, ports[0])
	lines <- fmt.Sprintf("register newcomer 127.0.0.1 %d", ports[1])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	next := func() string {
		t.Helper()
		select {
		case p := <-out:
			return p.line
		case err := <-done:
			t.Fatalf("the peer stopped: %v", err)
		case <-ctx.Done():
			t.Fatal("no result within a minute: the rebind is stuck")
		}
		return ""
	}
	if got := next(); !strings.HasPrefix(got, "register FAILURE") {
		t.Fatalf("first register: %q, want a refusal (%s is taken)", got, taken)
	}
	if got := next(); got != "register SUCCESS" {
		t.Fatalf("second register, at another port: %q", got)
	}
	// The new socket answers: the server's reply to deregister reaches
	// it, and the peer exits.
	lines <- "deregister newcomer"
	if got := next(); got != "deregister SUCCESS" {
		t.Fatalf("deregister: %q", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
