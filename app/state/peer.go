package state

import (
	"errors"
	"fmt"
	"net/netip"

	"dht/dataset"
	"dht/wire"
)

// Member is one user as the ring knows it: a peer's neighbour.
type Member = wire.Member

// Identity is who a peer is and where it stands in the ring, as its file
// keeps it.
type Identity struct {
	Name   string
	Addr   netip.AddrPort
	Server netip.AddrPort
	InRing bool
	ID     int
	N      int
	Left   Member
	Right  Member
	// Epoch is the server's number for the ring this place is in (DHT
	// Epoch), 0 if none is known: a peer back from a crash keeps its
	// place only if the server still counts it in that ring. Outside a
	// ring it is the epoch of the last ring the peer held a place in,
	// kept after it left: a heal of that epoch or an earlier one is a
	// copy of the past (Peer.staleHeal), after a restart too.
	Epoch uint64
	// Secret is the key the server gave at register (zero before);
	// KeyEpoch and RingKey the ring key this peer last took (with a set-id
	// or a join ticket), kept after it leaves the ring: a set-id of a key
	// epoch not larger is refused.
	Secret   wire.Key
	KeyEpoch uint64
	RingKey  wire.Key
}

// Batch is one logical change to a peer's file, written in one transaction.
// It is applied in field order: Clear, then Identity, then Put.
type Batch struct {
	Identity *Identity // nil: unchanged
	Clear    bool      // delete every record first
	Put      []dataset.Record
}

// Check reports the first rule a peer's saved identity breaks (a file
// whose identity breaks one is refused when it is opened or inspected): it
// names the peer and its address and the server's, each as a register
// would take it; in a ring its id is below the ring size, at most
// wire.MaxMembers, outside one both are 0; a neighbour has an address
// exactly when it has a name, both as a register would take them.
func (id Identity) Check() error {
	if id == (Identity{}) {
		return nil // none saved
	}
	if id.Name == "" || !id.Addr.IsValid() || id.Addr.Port() == 0 || !id.Server.IsValid() || id.Server.Port() == 0 {
		return errors.New("the identity lacks the peer's name, its address or the server's")
	}
	if why := badUser("the peer's", id.Name, id.Addr); why != "" {
		return errors.New(why)
	}
	if why := NotUnicast(id.Server.Addr()); why != "" {
		return fmt.Errorf("the server's address %s: %s", id.Server, why)
	}
	if id.InRing && (id.N < 1 || id.N > wire.MaxMembers || id.ID >= id.N) {
		return fmt.Errorf("id %d in a ring of %d (rings have 1 to %d nodes)", id.ID, id.N, wire.MaxMembers)
	}
	if !id.InRing && (id.ID != 0 || id.N != 0) {
		return fmt.Errorf("id %d in a ring of %d, but not in a ring", id.ID, id.N)
	}
	for _, m := range [2]Member{id.Left, id.Right} {
		if (m.Name != "") != (m.Addr.IsValid() && m.Addr.Port() != 0) {
			return fmt.Errorf("neighbour %s at %v", quote(m.Name), m.Addr)
		}
		if why := badUser("neighbour", m.Name, m.Addr); m.Name != "" && why != "" {
			return errors.New(why)
		}
	}
	return nil
}

// CheckTable reports the first record of a peer's table in a ring that
// its place does not own: a node keeps only the records whose id in its
// ring is its own. A table outside any ring is not checked: no commit
// writes one now (a change of place clears the table in the commit that
// writes the place), but builds before 56e5909 left one after a register
// that followed a failed resume, and a resume clears it.
func (id Identity) CheckTable(recs []dataset.Record) error {
	if !id.InRing {
		return nil
	}
	for _, r := range recs {
		if owner := r.Pos() % id.N; owner != id.ID {
			return fmt.Errorf("record %s (slot %d) belongs to id %d of a ring of %d, not to this node's id %d", quote(r.LongName), r.Pos(), owner, id.N, id.ID)
		}
	}
	return nil
}
