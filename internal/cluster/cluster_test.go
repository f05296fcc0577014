package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"dht/app"
	"dht/dataset"
	"dht/internal/loopback"
	"dht/store"
)

// A cluster hands each command's results back typed, waits for a Long Name
// when the peer does, knows a peer that exited, and keeps its files where
// the real commands would.
func TestCluster(t *testing.T) {
	recs, _, err := dataset.LoadOrEmbedded("")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cl, err := Start(Config{Dir: dir, Data: func() (dataset.Source, error) { return dataset.Records(recs), nil }, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			cl.Stop()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	users := []string{"alice", "bob", "carol"}
	ports, err := loopback.FreePorts(len(users))
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range users {
		out, err := cl.Peer(u).Must(ctx, fmt.Sprintf("register %s 127.0.0.1 %d", u, ports[i]))
		if err != nil || len(out) != 1 || out[0].Cmd != app.CmdRegister {
			t.Fatalf("register %s: %q, %v", u, out, err)
		}
	}

	out, err := cl.Peer("alice").Must(ctx, "setup-dht 2 alice")
	if err != nil || len(out) != 2 || out[0].Cmd != app.CmdSetupDHT || out[1].Cmd != app.CmdDHTComplete {
		t.Fatalf("setup-dht: %q, %v", out, err)
	}
	ring := out[0].Ring
	if len(ring) != 2 || ring[0] != "alice" {
		t.Fatalf("setup-dht built the ring %q", ring)
	}
	free := users[1]
	if slices.Contains(ring, free) {
		free = users[2]
	}

	// A query-dht without its Long Name waits for the next line.
	p := cl.Peer(free)
	if out, err := p.Do(ctx, "query-dht "+free); err != nil || len(out) != 0 || !p.WantsLongName() {
		t.Fatalf("query-dht without a Long Name: %q, %v, wants the Long Name: %v", out, err, p.WantsLongName())
	}
	var aruba dataset.Record
	for _, r := range recs {
		if r.LongName == "Aruba" {
			aruba = r
		}
	}
	sent := time.Now()
	out, err = p.Do(ctx, "Aruba")
	if err != nil || len(out) != 1 || !out[0].OK || out[0].Answer.Record != aruba || out[0].Answer.Hops > 1 || p.WantsLongName() {
		t.Fatalf("query-dht's Long Name: %q, %v", out, err)
	}
	if !strings.HasPrefix(out[0].String(), "query-dht SUCCESS: found at node ") {
		t.Fatalf("the answer shows as %q", out[0])
	}
	if at := p.PrintedAt(); at.Before(sent) || at.After(time.Now()) {
		t.Fatalf("printed at %v, typed at %v", at, sent)
	}

	out, err = cl.Peer(ring[1]).Must(ctx, "leave-dht "+ring[1])
	if err != nil || len(out) != 2 || out[1].Cmd != app.CmdDHTRebuilt || out[1].NewLeader != "alice" {
		t.Fatalf("leave-dht: %q, %v", out, err)
	}
	if out, err := p.Do(ctx, "frobnicate"); err != nil || len(out) != 1 || out[0].OK || out[0].Cmd != app.CmdUnknown {
		t.Fatalf("an unknown command: %q, %v", out, err)
	}

	if _, err := p.Must(ctx, "deregister "+free); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Do(ctx, "help"); !errors.Is(err, ErrExited) {
		t.Fatalf("typing at a peer that exited: %v, want ErrExited", err)
	}

	want := []string{filepath.Join(dir, "dht-server.db")}
	for _, u := range users {
		want = append(want, filepath.Join(dir, "dht-peer-"+u+".db"))
	}
	slices.Sort(want[1:])
	if got := cl.Files(); !slices.Equal(got, want) {
		t.Fatalf("files %q, want %q", got, want)
	}
	if tr := cl.Traffic(); tr.Datagrams == 0 || tr.Bytes == 0 || tr.Stores == 0 || tr.Lost != 0 {
		t.Fatalf("traffic %+v", tr)
	}
	stopped = true
	if err := cl.Stop(); err != nil {
		t.Fatal(err)
	}
	if st := cl.Stats(); st.Sent == 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := cl.Peer("alice").Do(ctx, "help"); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("typing at a stopped cluster: %v, want ErrInterrupted", err)
	}
}

// A cluster starts only in a new or empty folder: the files of an earlier
// run would change the outcome.
func TestClusterRefusesAFolderInUse(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dht-server.db"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(Config{Dir: dir}); err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Fatalf("Start in a folder in use: %v", err)
	}
}

// The seed picks (ring members, the node a query starts at, the loss) but
// gives away no key: play's and bench's seed is 1 unless told, and demo
// prints its own, so keys drawn from it would let anyone who knew it sign
// as any user of the run (an attacker's review signed alice's deregister
// with her secret worked out from seed 1). Two runs of one seed give the
// same user different secrets, and her peer's requests different ids.
func TestTheSeedGivesAwayNoKey(t *testing.T) {
	type run struct {
		secret [16]byte
		id     uint32 // of her register's last request, kept with its reply
	}
	secret := func() run {
		dir := t.TempDir()
		cl, err := Start(Config{Dir: dir, Data: func() (dataset.Source, error) { return dataset.Records(nil), nil }, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ports, err := loopback.FreePorts(1)
		if err != nil {
			cl.Stop()
			t.Fatal(err)
		}
		if out, err := cl.Peer("alice").Must(ctx, fmt.Sprintf("register alice 127.0.0.1 %d", ports[0])); err != nil {
			cl.Stop()
			t.Fatalf("register: %q, %v", out, err)
		}
		if err := cl.Stop(); err != nil {
			t.Fatal(err)
		}
		db, err := store.OpenServer(filepath.Join(dir, "dht-server.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		st, replies, err := db.Load()
		if err != nil || len(st.Users) != 1 || len(replies) != 1 {
			t.Fatalf("the server's file holds %+v and %d replies, %v", st.Users, len(replies), err)
		}
		return run{st.Users[0].Secret, replies[0].ID}
	}
	a, b := secret(), secret()
	if a.secret == b.secret {
		t.Fatalf("two runs of seed 1 gave alice the same secret %x", a.secret)
	}
	if a.id == b.id {
		t.Fatalf("two runs of seed 1 gave alice's register the same id %d", a.id)
	}
}
