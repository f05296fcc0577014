package app

import (
	"dht/app/state"
	"dht/dataset"
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
