package app

// Who may command whom (docs/DESIGN.md §9): the keys the protocol signs
// with, how they are derived, and the checks a server and a peer make on
// every datagram before its message is acted on. Package wire appends and
// checks the trailer; this file decides which key and which sequence
// number a message must carry.

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/netip"
	"time"

	"dht/wire"
)

// newKey reads a fresh key from r: crypto/rand in a real server, a seeded
// source in a simulation.
func newKey(r io.Reader) wire.Key {
	var k wire.Key
	if _, err := io.ReadFull(r, k[:]); err != nil {
		panic(fmt.Sprintf("app: no randomness for a key: %v", err))
	}
	return k
}

// defaultKeys is where a server's keys come from unless configured.
var defaultKeys io.Reader = rand.Reader

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func addrBytes(a netip.AddrPort) []byte {
	v4 := a.Addr().As4()
	return binary.BigEndian.AppendUint16(v4[:], a.Port())
}

var (
	labelTicket  = []byte("dht ticket")
	labelQuery   = []byte("dht query")
	labelRebuilt = []byte("dht rebuilt")
	labelCookie  = []byte("dht cookie")
)

// ticketPad is what a member's secret makes of a ring's epoch: the ring
// key xor it is the member's ticket, so that only the member (and the
// server) can recover the ring key from the ticket.
func ticketPad(secret wire.Key, epoch uint64) wire.Tag {
	return wire.MAC(secret, labelTicket, u64(epoch))
}

// ticket is the ticket of the member with the given secret for the ring
// (epoch, key).
func ticket(secret wire.Key, epoch uint64, ringKey wire.Key) wire.Tag {
	pad := ticketPad(secret, epoch)
	for i := range pad {
		pad[i] ^= ringKey[i]
	}
	return pad
}

// rebuiltProof is a new leader's word, with its secret, that it rebuilt
// the ring of epoch for the leaver or joiner user, led by newLeader: the
// server takes that user's dht-rebuilt only with it, so that no one ends a
// leave or a join that did not happen (a Free user's join-dht and
// dht-rebuilt made it a member of a ring that never took it in), nor names
// a leader the ring does not have (a joiner named itself, and the server
// sent the next joiner to a node that leads nothing). Names are letters,
// each after its length.
func rebuiltProof(secret wire.Key, user, newLeader string, epoch uint64) wire.Tag {
	return wire.MAC(secret, labelRebuilt, []byte{byte(len(user))}, []byte(user),
		[]byte{byte(len(newLeader))}, []byte(newLeader), u64(epoch))
}

// ringKeyOf recovers the ring key from the member's ticket.
func ringKeyOf(secret wire.Key, epoch uint64, t wire.Tag) wire.Key {
	return wire.Key(ticket(secret, epoch, wire.Key(t)))
}

// queryToken is the key a query from querier, and its answer, are signed
// with in ring (epoch, key): the server hands it to the querier with its
// query-dht reply, every member derives it, and nobody else can.
func queryToken(ringKey wire.Key, epoch uint64, querier netip.AddrPort) wire.Key {
	return wire.Key(wire.MAC(ringKey, labelQuery, addrBytes(querier), u64(epoch)))
}

// cookieWindow is how long a challenge's cookie is good for: it changes
// every cookieWindow and the one before is still taken.
const cookieWindow = 30 * time.Second

// cookie is the server's cookie for a register of name at addr sent from
// from, in window w, while the registration of name is bound (see
// Server.cookieBinding): a cookie is taken once, as the registration it
// made, or a rejoin's new secret, changes bound.
func cookie(key wire.Key, w int64, name string, addr, from netip.AddrPort, bound []byte) wire.Tag {
	return wire.MAC(key, labelCookie, u64(uint64(w)), []byte(name), addrBytes(addr), addrBytes(from), bound)
}

// nextSeq is the sequence number after last at now: larger than last, and
// at least now in nanoseconds, so that a peer restarted on a file that
// does not record it still counts upwards (it would have to have sent
// more requests than nanoseconds passed before it restarted).
func nextSeq(last uint64, now time.Time) uint64 {
	if last == math.MaxUint64 {
		return last // never wraps to 0, below every number taken
	}
	seq := last + 1
	if t := uint64(now.UnixNano()); t > seq {
		seq = t
	}
	return seq
}

// KeysFrom is a source of keys as reproducible as r, for simulations and
// tests that replay a seed (ServerConfig.Keys). A real server uses
// crypto/rand.
func KeysFrom(r *mrand.Rand) io.Reader { return randKeys{r} }

type randKeys struct{ r *mrand.Rand }

func (k randKeys) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(k.r.Uint32())
	}
	return len(b), nil
}
