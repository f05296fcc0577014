package simnet

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"dht/dataset"
	"dht/wire"
)

func records(t *testing.T) []dataset.Record {
	t.Helper()
	recs, err := dataset.Load("../../dataset/StatsCountry.csv")
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// runTracedSim runs a short scripted session in Sim and returns its trace.
func runTracedSim(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	s := New(7, netip.MustParseAddrPort("192.0.2.1:4000"))
	s.SetTrace(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	users := []string{"alice", "bob", "carol"}
	for i, u := range users {
		s.AddPeer(u, netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(11 + i)}), 5000), records(t))
	}
	do := func(user, line, want string) {
		t.Helper()
		out, err := s.Do(user, line)
		if err != nil || len(out) == 0 || !strings.HasPrefix(out[len(out)-1].String(), want) {
			t.Fatalf("%s: %q printed %q, %v; want a last line starting %q", user, line, out, err, want)
		}
	}
	for i, u := range users {
		do(u, fmt.Sprintf("register %s 192.0.2.%d 5000", u, 11+i), "register SUCCESS")
	}
	do("alice", "setup-dht 3 alice", "dht-complete SUCCESS")
	do("alice", "teardown-dht alice", "teardown-complete SUCCESS")
	if s.Server().Snapshot().DHT.Phase != 0 {
		t.Fatal("the DHT survived its teardown")
	}
	return buf.String()
}

// The simulation traces as the runners do, stamped with its virtual clock,
// and the same calls trace the same bytes: the diagrams of docs/DESIGN.md
// rely on it.
func TestSimTraceRepeatable(t *testing.T) {
	a, b := runTracedSim(t), runTracedSim(t)
	if a != b {
		t.Fatal("two runs of the same script traced differently")
	}
	for _, want := range []string{
		`"msg":"send","node":"alice","local":"192.0.2.11:5000","addr":"192.0.2.1:4000","type":"register"`,
		`"msg":"recv","node":"server","local":"192.0.2.1:4000","addr":"192.0.2.11:5000","type":"register"`,
		`"msg":"input","node":"alice","local":"192.0.2.11:5000","line":"setup-dht 3 alice","queued":false`,
		`"msg":"print","node":"alice","local":"192.0.2.11:5000","line":"dht-complete SUCCESS"`,
		`"msg":"persist","node":"server"`,
		`"msg":"persist","node":"bob","local":"192.0.2.12:5000","records":`,
		`"time":"2020-02-02T12:00:00.`,
	} {
		if !strings.Contains(a, want) {
			t.Errorf("the trace lacks %s", want)
		}
	}
}

// A removed process is gone until restored: not listed, unreachable, no
// timers. Restored, it retransmits the query whose answer it missed (Busy
// says so) and hears the answer.
func TestRemoveRestore(t *testing.T) {
	s := New(1, netip.MustParseAddrPort("192.0.2.1:4000"))
	addr := netip.MustParseAddrPort("192.0.2.11:5000")
	s.AddPeer("alice", addr, nil)
	if out, err := s.Do("alice", "register alice 192.0.2.11 5000"); err != nil || len(out) != 1 || !out[0].OK {
		t.Fatalf("register printed %q, %v", out, err)
	}
	if s.Busy() {
		t.Fatal("busy after Do")
	}
	if err := s.Input("alice", "query-dht alice Aruba"); err != nil {
		t.Fatal(err)
	}
	p := s.Remove("alice")
	if p == nil || s.Process("alice") != nil || s.Peer("alice") != nil || len(s.Names()) != 0 {
		t.Fatal("alice is still known after Remove")
	}
	for s.Step() { // the server's answer is lost, and alice's timers do not run
	}
	if s.Busy() || len(p.Printed) != 1 {
		t.Fatalf("busy %v, alice printed %q while removed", s.Busy(), p.Printed)
	}
	s.Restore(p)
	if s.Process("alice") != p || !s.Busy() {
		t.Fatal("alice is not back, or has nothing to do")
	}
	for s.Busy() && s.Step() {
	}
	if err := s.Err(); err != nil || len(p.Printed) != 2 || p.Printed[1].String() != "query-dht FAILURE: no DHT exists" {
		t.Fatalf("after Restore alice printed %q (%v)", p.Printed, err)
	}
}

// A stopped process runs nothing, and what comes for it waits, as in its
// socket, until Cont: then it reads it.
func TestStopCont(t *testing.T) {
	s := New(1, netip.MustParseAddrPort("192.0.2.1:4000"))
	addr := netip.MustParseAddrPort("192.0.2.11:5000")
	s.AddPeer("alice", addr, nil)
	if out, err := s.Do("alice", "register alice 192.0.2.11 5000"); err != nil || len(out) != 1 || !out[0].OK {
		t.Fatalf("register printed %q, %v", out, err)
	}
	if err := s.Input("alice", "query-dht alice Aruba"); err != nil {
		t.Fatal(err)
	}
	p := s.Stop("alice")
	if p == nil || s.Process("alice") != nil {
		t.Fatal("alice is still running after Stop")
	}
	for s.Step() { // the server's answer waits; alice's timers do not run
	}
	if len(p.Printed) != 1 {
		t.Fatalf("alice printed %q while stopped", p.Printed)
	}
	asked := 0
	s.Tap = func(from, to netip.AddrPort, b []byte) {
		if _, m, err := wire.Decode(b); err == nil && from == addr && m.Type() == wire.TypeQueryDHT {
			asked++
		}
	}
	s.Cont(p)
	for s.Busy() && s.Step() {
	}
	if err := s.Err(); err != nil || len(p.Printed) != 2 || p.Printed[1].String() != "query-dht FAILURE: no DHT exists" || asked != 0 {
		t.Fatalf("after Cont alice printed %q (%v), asking the server %d more times; want the answer that waited read", p.Printed, err, asked)
	}
}
