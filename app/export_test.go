package app

import (
	"net/netip"
	"time"

	"dht/app/state"
	"dht/dataset"
	"dht/wire"
)

// What the tests in package app_test see of the inside of package app.
// They live there because they run the state machines in the simulated
// network of dht/internal/simnet, which imports this package.

var Records = records

const OwnChunk = ownChunk

// Identity is the place in the ring p holds in memory, as it writes it to
// its file.
func Identity(p *Peer) state.Identity { return p.identity() }

// Lookup reads a record from p's table as p does to answer a query.
func Lookup(p *Peer, longName string) (dataset.Record, bool, error) { return p.lookup(longName) }

// QueryToken is the key p's ring signs the queries of querier with, which
// the server gives querier with its query-dht answer.
func QueryToken(p *Peer, querier netip.AddrPort) wire.Key { return p.cred.queryToken(querier) }

// NextID is the id p's link gives the next ring message it sends.
func NextID(p *Peer) uint32 { return p.link.nextID }

// Abandon drops the command p has in progress, as if its process had died
// with it.
func Abandon(p *Peer) { p.op = nil }

// Walks is how many of p's queries are in the ring.
func Walks(p *Peer) (n int) {
	for _, w := range p.walks {
		if !w.done && w.q != nil {
			n++
		}
	}
	return n
}

// ServerNote is what the server says of its last rollback, heal or
// dissolve.
func ServerNote(s *Server) string { return s.note }

// AlivePeriod is the period p sends its alives at.
func AlivePeriod(p *Peer) time.Duration { return p.alivePeriodOrUntold() }

// ClearPending reports that the peer's next commit clears its table (a
// new place taken, its stores to come).
func ClearPending(p *Peer) bool { return p.unsaved && p.clearSaved }

// ForgetCopies empties p's record of the ring messages it took, as a
// restarted process starts with none.
func ForgetCopies(p *Peer) { p.link.seen = newDedup(p.link.seen.size, 1) }
