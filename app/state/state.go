// Package state declares the protocol's domain types, once: a user's state
// (Free, Leader, InDHT) and the server's registry of users, the one DHT and
// its phase, the reply the server keeps for a retransmitted request, a
// peer's identity (its place in the ring) and the batch of changes a peer
// writes to its table, with the rules a state the protocol saves keeps.
//
// The protocol core (package app) works on these values; package store
// persists them, in a layout of its own, without owning them. The numeric
// values of State and Phase are stored in files: their constants are
// append only.
package state

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"dht/wire"
)

// State is a registered user's state in the server's registry.
type State uint8

// User states. Values are stored in files: append only.
const (
	Free   State = 0
	Leader State = 1
	InDHT  State = 2
)

func (s State) String() string {
	switch s {
	case Free:
		return "Free"
	case Leader:
		return "Leader"
	case InDHT:
		return "InDHT"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// User is one registration.
type User struct {
	Name  string
	Addr  netip.AddrPort
	State State
	// LastSeen is the user's last sign of life the server wrote down,
	// in unix nanoseconds, to the second; 0 if none was. It is for
	// inspect: a restarted server does not judge liveness by it.
	LastSeen int64
	// Secret is the key the server gave the user at register: every later
	// request of the user is signed with it. Zero for a file written
	// before secrets existed (the user must register again from its
	// address, and answer a challenge, to get one).
	Secret wire.Key
	// Seq is the sequence number of the user's last request the server
	// acted on: a request is acted on only with a larger one.
	Seq uint64
	// AliveSeq is the sequence number of the user's last alive the server
	// took: an alive counts only with a larger one. Written as LastSeen
	// is (coarsely, never a commit per alive), so that alives captured
	// before a server restart, replayed after it, do not count again but
	// for the last few seconds' before it. 0: none since a rejoin with a
	// new secret.
	AliveSeq uint64
	// Via is the address of the server's host that the user's last
	// authentic request or alive was sent to, on a server bound to every
	// address where the system says (zero otherwise): what the server
	// sends the user goes from there, after a restart too (a peer takes
	// only what comes from the address it was given). Written as LastSeen.
	Via netip.Addr
}

// Phase is where the one DHT the server knows about stands.
type Phase uint8

// DHT phases. Values are stored in files: append only.
const (
	PhaseNone     Phase = 0 // no DHT
	PhaseBuilding Phase = 1 // set up, waiting for dht-complete
	PhaseReady    Phase = 2 // usable
	PhaseLeaving  Phase = 3 // a member is leaving, waiting for dht-rebuilt
	PhaseTearing  Phase = 4 // waiting for teardown-complete
	PhaseJoining  Phase = 5 // a Free user is joining, waiting for dht-rebuilt
	PhaseHealing  Phase = 6 // offline members removed, waiting for the new leader's healed
)

func (p Phase) String() string {
	switch p {
	case PhaseNone:
		return "none"
	case PhaseBuilding:
		return "building"
	case PhaseReady:
		return "ready"
	case PhaseLeaving:
		return "leaving"
	case PhaseTearing:
		return "tearing-down"
	case PhaseJoining:
		return "joining"
	case PhaseHealing:
		return "healing"
	}
	return fmt.Sprintf("Phase(%d)", uint8(p))
}

// DHT is the server's view of the DHT.
type DHT struct {
	Phase   Phase
	Leader  string
	Members []string // ring order, leader first
	Leaver  string
	Joiner  string // the Free user joining, while the DHT is joining
	Since   int64  // unix nanoseconds when the current wait started; 0 if none
	// Epoch numbers the rings this DHT has been: it grows at every setup,
	// heal, leave and join, so that a peer back from a crash can tell
	// whether the ring it remembers is still the server's. It is kept
	// when the DHT is dissolved: epochs never repeat.
	Epoch uint64
	// Removed are the users the heal in progress took out of the ring as
	// offline (now Free); only while the DHT is healing.
	Removed []string
	// RingKey signs every ring message of this DHT, with KeyEpoch (the
	// Epoch of the setup or heal that made it) as the trailer's seq
	// (docs/DESIGN.md §9). A leave or a join keeps them.
	KeyEpoch uint64
	RingKey  wire.Key
}

// Waiting reports that the phase is a wait for the end of an operation
// (dht-complete, dht-rebuilt or teardown-complete), which the server
// bounds by its op timeout.
func (p Phase) Waiting() bool {
	return p == PhaseBuilding || p == PhaseLeaving || p == PhaseTearing || p == PhaseJoining || p == PhaseHealing
}

// ServerState is everything the server keeps across restarts except the
// reply cache.
type ServerState struct {
	Users []User // sorted by name when loaded
	DHT   DHT
}

// CachedReply is the last reply sent to a client address, kept so that a
// retransmitted request gets the same answer after a restart.
type CachedReply struct {
	Addr     netip.AddrPort
	ID       uint32
	Datagram []byte
	// Key checks a retransmission of the request when its user's secret
	// does not: the secret of a user the request deregistered, or the
	// cookie a register was acted on by (zero for every other reply,
	// checked with its user's secret).
	Key wire.Key
}

// Check reports the first rule st breaks of those every state the server
// saves keeps (a file whose state breaks one is refused when it is opened
// or inspected): addresses valid and unique; with no DHT, no leader,
// member, leaver, joiner or wait, and every user Free; with one, at most
// wire.MaxMembers members that are registered users, listed once, the leader
// first and in state Leader, the others InDHT, every other user Free, a
// wait exactly while the DHT is being built, left, torn down or joined, a
// leaver, one of two or more members, exactly while it is left, and a
// joiner, a registered Free user outside a ring of fewer than wire.MaxMembers,
// exactly while it is joined, and removed users, registered, Free and
// listed once, only while it heals.
func (st ServerState) Check() error {
	users := make(map[string]User, len(st.Users))
	addrs := make(map[netip.AddrPort]string, len(st.Users))
	for _, u := range st.Users {
		if why := badUser("user", u.Name, u.Addr); why != "" {
			return errors.New(why)
		}
		if other, ok := addrs[u.Addr]; ok {
			return fmt.Errorf("users %s and %s have the same address %s", quote(other), quote(u.Name), u.Addr)
		}
		users[u.Name], addrs[u.Addr] = u, u.Name
	}
	d := st.DHT
	if d.Phase == PhaseNone {
		if d.Leader != "" || len(d.Members) != 0 || d.Leaver != "" || d.Joiner != "" || d.Since != 0 {
			return errors.New("no DHT, but a leader, members, a leaver, a joiner or a wait")
		}
		if len(d.Removed) != 0 {
			return errors.New("no DHT, but members removed from it")
		}
		for _, u := range st.Users {
			if u.State != Free {
				return fmt.Errorf("user %s is %s, but there is no DHT", quote(u.Name), u.State)
			}
		}
		return nil
	}
	if len(d.Members) == 0 || d.Members[0] != d.Leader {
		return fmt.Errorf("the DHT's members do not start with its leader %s", quote(d.Leader))
	}
	if len(d.Members) > wire.MaxMembers {
		return fmt.Errorf("the DHT has %d members, more than %d", len(d.Members), wire.MaxMembers)
	}
	for i, m := range d.Members {
		if slices.Index(d.Members, m) != i {
			return fmt.Errorf("member %s is listed twice", quote(m))
		}
		u, ok := users[m]
		if !ok {
			return fmt.Errorf("member %s is not registered", quote(m))
		}
		want := InDHT
		if i == 0 {
			want = Leader
		}
		if u.State != want {
			return fmt.Errorf("member %s is %s, not %s", quote(m), u.State, want)
		}
	}
	for _, u := range st.Users {
		if u.State != Free && !slices.Contains(d.Members, u.Name) {
			return fmt.Errorf("user %s is %s, but not a member of the DHT", quote(u.Name), u.State)
		}
	}
	if d.Phase.Waiting() != (d.Since != 0) {
		return fmt.Errorf("DHT %s with a wait started at %d", d.Phase, d.Since)
	}
	if (d.Phase == PhaseLeaving) != (d.Leaver != "") {
		return fmt.Errorf("DHT %s with leaver %s", d.Phase, quote(d.Leaver))
	}
	if d.Leaver != "" && (!slices.Contains(d.Members, d.Leaver) || len(d.Members) < 2) {
		return fmt.Errorf("leaver %s is not one of two or more members", quote(d.Leaver))
	}
	if (d.Phase == PhaseJoining) != (d.Joiner != "") {
		return fmt.Errorf("DHT %s with joiner %s", d.Phase, quote(d.Joiner))
	}
	if d.Joiner != "" {
		switch u, ok := users[d.Joiner]; {
		case !ok || u.State != Free || slices.Contains(d.Members, d.Joiner):
			return fmt.Errorf("joiner %s is not a registered Free user outside the DHT", quote(d.Joiner))
		case len(d.Members) >= wire.MaxMembers:
			return fmt.Errorf("joiner %s joins a DHT of %d members, the most there may be", quote(d.Joiner), len(d.Members))
		}
	}
	if d.Phase != PhaseHealing && len(d.Removed) != 0 {
		return fmt.Errorf("DHT %s with %d removed members", d.Phase, len(d.Removed))
	}
	for i, r := range d.Removed {
		switch u, ok := users[r]; {
		case !ok || u.State != Free || slices.Contains(d.Members, r):
			return fmt.Errorf("removed member %s is not a registered Free user outside the DHT", quote(r))
		case slices.Index(d.Removed, r) != i:
			return fmt.Errorf("removed member %s is listed twice", quote(r))
		}
	}
	return nil
}

// quote is for names in error messages: they may hold any bytes.
func quote(s string) string { return fmt.Sprintf("%q", s) }

// MaxNameLen is the longest user name.
const MaxNameLen = 15

// ValidName reports whether name is a legal user name: ASCII letters only,
// 1 to MaxNameLen.
func ValidName(name string) bool {
	if len(name) < 1 || len(name) > MaxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// NotUnicast says why ip cannot be a user's address (nor the server's, to
// send to): it is not IPv4, or is the unspecified address, a broadcast or
// multicast address, or in a block no host holds. It is "" for an address a
// peer can bind and receive its own replies at.
func NotUnicast(ip netip.Addr) string {
	switch {
	case !ip.Is4():
		return "not an IPv4 address"
	case ip.IsUnspecified():
		return "0.0.0.0 means any address, not one host"
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "255.255.255.255 is the broadcast address"
	case ip.IsMulticast():
		return ip.String() + " is a multicast address (224.0.0.0/4)"
	case ip.As4()[0] == 0:
		return ip.String() + " is in 0.0.0.0/8, which names no host"
	case ip.As4()[0] >= 240:
		return ip.String() + " is in the reserved block 240.0.0.0/4"
	}
	return ""
}

// badUser says what a register would have refused in a user's name or
// address as a file holds them ("" when nothing): the file was not written
// by a dht.
func badUser(what, name string, addr netip.AddrPort) string {
	switch {
	case !ValidName(name):
		return fmt.Sprintf("%s name %s is not 1 to %d ASCII letters", what, quote(name), MaxNameLen)
	case !addr.IsValid() || addr.Port() == 0:
		return fmt.Sprintf("%s %s has no address", what, quote(name))
	case NotUnicast(addr.Addr()) != "":
		return fmt.Sprintf("%s %s at %s: %s", what, quote(name), addr, NotUnicast(addr.Addr()))
	}
	return ""
}
