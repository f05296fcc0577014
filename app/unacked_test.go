package app

import (
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"dht/wire"
)

// A command that fails because the link gave up names whom it gave up
// on where the node knows the name, and, for a store, says that the
// silent node may be further on: a node acknowledges a store only once
// it has passed on what it forwards.
func TestUnackedNamesTheSilentMember(t *testing.T) {
	p := ringNode(t) // carol, between bob and dave
	stranger := netip.MustParseAddrPort("10.0.0.99:5000")
	eve := wire.Member{Name: "eve", Addr: netip.MustParseAddrPort("10.0.0.15:5000")}
	p.formerRight = eve // as the teardown it started left it
	for _, c := range []struct {
		name string
		op   operation
		g    failure
		want string
	}{
		{"store to the right", nil, failure{to: p.right.Addr, msg: wire.Store{N: 8}},
			"store sent to dave (10.0.0.14:5000) was not acknowledged within 10s (it, or a node after it, stopped taking stores)"},
		{"flush to the right", nil, failure{to: p.right.Addr, msg: wire.Flush{}},
			"flush sent to dave (10.0.0.14:5000) was not acknowledged within 10s"},
		{"reset-right to the left", nil, failure{to: p.left.Addr, msg: wire.ResetRight{}},
			"reset-right sent to bob (10.0.0.12:5000) was not acknowledged within 10s"},
		{"set-id to a member of the setup", &setupOp{members: []wire.Member{p.self, eve}}, failure{to: eve.Addr, msg: wire.SetID{}},
			"set-id sent to eve (10.0.0.15:5000) was not acknowledged within 10s"},
		{"teardown to the right it forgot", &teardownOp{right: eve.Addr}, failure{to: eve.Addr, msg: wire.Teardown{}},
			"teardown sent to eve (10.0.0.15:5000) was not acknowledged within 10s"},
		{"an address it knows no name for", nil, failure{to: stranger, msg: wire.Query{}},
			"query sent to 10.0.0.99:5000 was not acknowledged within 10s"},
	} {
		p.op = c.op
		if got := p.unacked(time.Time{}, c.g); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// A send this host refused (the runner's socket returned an error) is said
// in the line that names its address, instead of that address's silence:
// a register from a loopback address to a server on another host says
// what to register with; a ring message's give-up says the host refused
// it. A ring message sent from an address other hosts reach to a loopback
// address (a user registered at 127.0.0.1 on another host) says what that
// address reaches.
func TestARefusedSendIsSaid(t *testing.T) {
	server := netip.MustParseAddrPort("10.222.0.1:4000")
	p := NewPeer(PeerConfig{Server: server})
	now := time.Unix(1e9, 0)
	self := netip.MustParseAddrPort("127.0.0.1:5002")
	refuse := func(out []Output) []Output {
		for _, o := range out {
			if s, ok := o.(Send); ok {
				p.SendFailed(now, s.To, syscall.EINVAL)
			}
		}
		return out
	}
	out := refuse(p.Input(now, "register bob 127.0.0.1 5002"))
	out = append(out, refuse(p.Bound(now, self, nil))...)
	var res, notes []string
	for i := 0; len(res) == 0 && i < 1000; i++ {
		for _, o := range out {
			switch o := o.(type) {
			case Result:
				res = append(res, o.String())
			case Notice:
				notes = append(notes, o.Line)
			}
		}
		at, ok := p.NextDeadline()
		if !ok {
			break
		}
		now = at
		out = refuse(p.Tick(now))
	}
	want := "register FAILURE: no answer from the server at 10.222.0.1:4000 within 10s (this host refused to send there: invalid argument; 127.0.0.1 is a loopback address, which reaches this host only: register with an address of this host that 10.222.0.1 reaches)"
	if len(res) != 1 || res[0] != want {
		t.Fatalf("printed %q, want %q", res, want)
	}
	// The note of the wait says it too, 2 s in.
	wantNote := "register: waiting for the server at 10.222.0.1:4000 to answer register (this peer gives up in 8s), for 2s so far; this host refused to send there: invalid argument; 127.0.0.1 is a loopback address, which reaches this host only: register with an address of this host that 10.222.0.1 reaches"
	if len(notes) == 0 || notes[0] != wantNote {
		t.Fatalf("notes %q, want first %q", notes, wantNote)
	}

	r := ringNode(t) // carol, between bob and dave
	ivy := wire.Member{Name: "ivy", Addr: netip.MustParseAddrPort("127.0.0.1:5020")}
	r.op = &setupOp{members: []wire.Member{r.self, ivy}}
	if got, want := r.unacked(now, failure{to: ivy.Addr, msg: wire.SetID{}}), "set-id sent to ivy (127.0.0.1:5020) was not acknowledged within 10s (127.0.0.1 is a loopback address: from this host it reaches this host only; a user whose peer runs on another host must register with an address the other hosts reach)"; got != want {
		t.Errorf("to a loopback address: %q, want %q", got, want)
	}
	r.op = nil
	r.SendFailed(now.Add(-time.Second), r.right.Addr, syscall.ENETUNREACH)
	if got, want := r.unacked(now, failure{to: r.right.Addr, msg: wire.Flush{}}), "flush sent to dave (10.0.0.14:5000) was not acknowledged within 10s (this host refused to send there: network is unreachable; is this host's network down?)"; got != want {
		t.Errorf("refused: %q, want %q", got, want)
	}
	// One refused before this give-up's wait began is not its cause.
	if got, want := r.unacked(now.Add(20*time.Second), failure{to: r.right.Addr, msg: wire.Flush{}}), "flush sent to dave (10.0.0.14:5000) was not acknowledged within 10s"; got != want {
		t.Errorf("refused long before: %q, want %q", got, want)
	}
}

// A peer on the server's host (it reaches the server at a loopback address,
// or at its own) sends to a member registered at 127.0.0.1 on that host:
// the server heard that member from there, so the datagram reached its
// host; its silence is not the address's. Nor does a register to a server
// on this host ask whether the server can reach this host's address.
func TestALoopbackMemberOnTheServersHostIsNotBlamedOnItsAddress(t *testing.T) {
	for _, server := range []string{"192.0.2.2:4000", "127.0.0.1:4000"} {
		r := ringNode(t)
		r.cfg.Server = netip.MustParseAddrPort(server)
		r.self.Addr = netip.MustParseAddrPort("192.0.2.2:5000")
		m := wire.Member{Name: "m", Addr: netip.MustParseAddrPort("127.0.0.1:5020")}
		r.op = &setupOp{members: []wire.Member{r.self, m}}
		if got := r.unacked(time.Unix(1e9, 0), failure{to: m.Addr, msg: wire.SetID{}}); strings.Contains(got, "loopback") {
			t.Errorf("server %s: %q blames the member's loopback address", server, got)
		}
	}
	p := NewPeer(PeerConfig{Server: netip.MustParseAddrPort("127.0.0.1:4000")})
	now := time.Unix(1e9, 0)
	self := netip.MustParseAddrPort("127.0.0.1:5008")
	out := p.Input(now, "register hank 127.0.0.1 5008")
	res := untilResult(t, p, append(out, p.Bound(now, self, nil)...))
	if len(res) != 1 || strings.Contains(res[0], "can it reach") {
		t.Fatalf("printed %q: a server on this host reaches this host's addresses", res)
	}
}

// A store the host refused to send is not blamed on a node that stopped
// taking stores as well.
func TestARefusedStoreIsNotSaidStopped(t *testing.T) {
	r := ringNode(t)
	now := time.Unix(1e9, 0)
	r.SendFailed(now.Add(-time.Second), r.right.Addr, syscall.ENETUNREACH)
	got := r.unacked(now, failure{to: r.right.Addr, msg: wire.Store{}})
	if !strings.Contains(got, "refused") || strings.Contains(got, "stopped taking stores") {
		t.Fatalf("%q: want the refusal as the one cause", got)
	}
}
