package app

import (
	"net/netip"
	"testing"

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
		if got := p.unacked(c.g); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
