package app

// The peer's side of "who may command whom" (docs/DESIGN.md §9): which key
// each datagram it takes must be signed with, and the keys it signs with.

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"dht/wire"
)

// credentials are what a peer holds to prove itself and to check others:
// the secret the server gave it at register, the sequence numbers of its
// requests and alives, and the ring it last took a place in (its epoch and
// key). They are kept in the peer's file (state.Identity).
type credentials struct {
	secret   wire.Key
	seq      uint64
	aliveSeq uint64
	epoch    uint64
	ringKey  wire.Key

	// tokens caches the query tokens of the ring (tokensOf) by querier:
	// a query's hop verifies its token and signs its forward with it, and
	// deriving it is an HMAC of its own.
	tokens   map[netip.AddrPort]wire.Key
	tokensOf ringID
}

// ringID names a ring's keys: its epoch and its key.
type ringID struct {
	epoch uint64
	key   wire.Key
}

// maxTokens bounds the query-token cache; a full cache is emptied.
const maxTokens = 4096

// queryToken is queryToken of this peer's ring, derived once a querier
// while the ring lasts.
func (c *credentials) queryToken(querier netip.AddrPort) wire.Key {
	ring := ringID{c.epoch, c.ringKey}
	if c.tokens == nil || c.tokensOf != ring || len(c.tokens) >= maxTokens {
		c.tokens, c.tokensOf = make(map[netip.AddrPort]wire.Key), ring
	}
	t, ok := c.tokens[querier]
	if !ok {
		t = queryToken(c.ringKey, c.epoch, querier)
		c.tokens[querier] = t
	}
	return t
}

// setRing takes the ring (epoch, key): the link signs with it from now on.
func (p *Peer) setRing(epoch uint64, key wire.Key) {
	if epoch != p.cred.epoch || key != p.cred.ringKey {
		p.unsaved = true
	}
	p.cred.epoch, p.cred.ringKey = epoch, key
	p.link.sg = signer{seq: epoch, key: key, from: p.self.Addr}
}

// requestSigner signs the next request to the server: with the secret, and
// a sequence number larger than any before (none before register).
func (p *Peer) requestSigner(now time.Time) signer {
	if p.cred.secret.IsZero() {
		return signer{}
	}
	p.cred.seq = nextSeq(p.cred.seq, now)
	return signer{seq: p.cred.seq, key: p.cred.secret, toServer: true}
}

// ringSigned reports whether h is signed with the ring this peer holds.
func (p *Peer) ringSigned(from netip.AddrPort, h wire.Header) bool {
	return !p.cred.ringKey.IsZero() && h.Seq == p.cred.epoch && p.signedBetween(p.cred.ringKey, h, from)
}

// signedBetween: h is signed with key by the peer at from for this one
// (wire.AppendSignedBetween), so a copy sent again with another source
// is not.
func (p *Peer) signedBetween(key wire.Key, h wire.Header, from netip.AddrPort) bool {
	return wire.VerifyBetween(key, h, from, p.self.Addr)
}

// holdsRing reports whether this node is in the ring of its key, or on its
// way into it or out of it: it holds a place or neighbours, a teardown
// passes it, its own join waits for its leader, its leave or teardown goes
// round, or the server counts it in the ring though it has no place yet.
// A node that left the ring keeps the key (its epoch is the floor of the
// set-ids it takes), but takes no set-id signed with it other than a copy
// of one it took, to acknowledge it again: a set-id captured from that
// ring and replayed would place it in a ring that is gone. The ring's other
// messages it takes only to drop them, acknowledged so that a sender
// stops (ofEarlierRing, expected).
func (p *Peer) holdsRing() bool {
	if p.inRing || p.neighbours || p.tearing != nil || p.counted {
		return true
	}
	switch o := p.op.(type) {
	case *joinOp:
		return o.stage == joinWaiting
	case *leaveOp:
		return leaveRunning(o.stage)
	case *teardownOp:
		return o.stage == teardownTearing
	}
	return false
}

// leftRing: the datagram (h from from), signed with the key this node
// holds, belongs to a ring it has left and is no copy of one it took.
func (p *Peer) leftRing(from netip.AddrPort, h wire.Header) bool {
	return !p.holdsRing() && !p.link.seen.has(from, h.ID)
}

// authentic says why the datagram (h, m) from `from` is not to be acted
// on, or "" if it is: a reply, challenge or pace must come from the server,
// signed with this peer's secret (a register's reply, before there is one,
// with the challenge's cookie; an unsigned FAILURE is taken, and can do no
// more than fail the request); a set-id must carry a ticket the server
// made for this peer for a ring newer than any it took; a query must be
// signed with the token the server gave its querier, or by a member of the
// ring; its answer with the token of the query in progress; every other
// ring message by a member of the ring this peer is in.
func (p *Peer) authentic(from netip.AddrPort, h wire.Header, m wire.Message) string {
	switch m := m.(type) {
	case wire.Reply, wire.Challenge:
		if from != p.cfg.Server {
			if from.Port() == p.cfg.Server.Port() {
				p.strayServer = from
			}
			return m.Type().String() + " not from the server"
		}
		if r, ok := m.(wire.Reply); ok && !r.OK && h.Flags&wire.FlagAuth == 0 {
			return ""
		}
		if _, ok := m.(wire.Challenge); ok {
			if p.replied.has(h.ID) {
				// A copy of a challenge answered (a register sent twice
				// before the first challenge came is challenged twice).
				return challengeAgain
			}
			if o, ok := p.op.(*registerOp); ok && o.rq.live {
				return ""
			}
			return "challenge while no register waits for one"
		}
		if _, ok := m.(wire.Reply); ok {
			if rq, _ := p.requestOf(h.ID); rq == nil {
				if key, ok := p.replied.key(h.ID); ok && wire.VerifyAt(key, h, p.self.Addr) {
					return replyAgain
				}
				return "reply matches no request (a late copy)"
			}
		}
		key := p.replyKey()
		if key.IsZero() || !wire.VerifyAt(key, h, p.self.Addr) {
			return "reply not signed with this peer's secret"
		}
	case wire.Pace:
		if p.cred.secret.IsZero() || !wire.VerifyAt(p.cred.secret, h, p.self.Addr) {
			return "pace not signed with this peer's secret"
		}
	case wire.Heal:
		if from != p.cfg.Server || p.cred.secret.IsZero() || !wire.VerifyAt(p.cred.secret, h, p.self.Addr) {
			return "heal not signed with this peer's secret by the server"
		}
	case wire.SetID:
		if m.Ticket == (wire.Tag{}) {
			// A joiner's: it holds the ring's key from its join-dht reply.
			if !p.ringSigned(from, h) {
				return "set-id without a ticket, not signed with this peer's ring"
			}
			if p.leftRing(from, h) {
				return "set-id without a ticket, of a ring this node left"
			}
			return ""
		}
		if p.cred.secret.IsZero() {
			return "set-id for a peer the server gave no secret"
		}
		key := ringKeyOf(p.cred.secret, h.Seq, m.Ticket)
		switch {
		case !p.signedBetween(key, h, from):
			return "set-id whose ticket the server did not make for this peer"
		case h.Seq < p.cred.epoch || h.Seq == p.cred.epoch && key != p.cred.ringKey:
			return "set-id of an earlier ring"
		case h.Seq == p.cred.epoch && p.leftRing(from, h):
			return "set-id of a ring this node left"
		}
		p.ticketRing = signer{seq: h.Seq, key: key, from: p.self.Addr}
	case wire.Query:
		if p.cred.ringKey.IsZero() || h.Seq != p.cred.epoch {
			return "query for another ring"
		}
		if from != m.Querier.Addr && !(p.neighbours && from == p.left.Addr) {
			// A query comes from its querier or round the ring: from
			// anywhere else, its source is forged (by a holder of the
			// token), and its ack would go there.
			return "query from neither its querier nor the left neighbour"
		}
		if from != m.Querier.Addr && h.Flags&wire.FlagNoAck == 0 {
			// Forwarded reliably, it is the left neighbour's ring message,
			// signed with the ring's key: its id goes into the duplicate
			// filter as one of the neighbour's. Signed with a token, its
			// source may be forged by the token's holder, who reads the
			// neighbour's next ids off its answers: the neighbour's real
			// message with such an id (a store, a teardown) would be
			// acknowledged and dropped as a copy.
			if !p.signedBetween(p.cred.ringKey, h, from) {
				return "query forwarded reliably, not signed with this peer's ring"
			}
			break
		}
		if !p.signedBetween(p.cred.queryToken(m.Querier.Addr), h, from) && !p.signedBetween(p.cred.ringKey, h, from) {
			return "query the server did not authorize"
		}
	case wire.QueryResult:
		w, ok := p.walkOf(m.ReqID)
		if !ok {
			if key, ok := p.answered.key(m.ReqID); ok && p.signedBetween(key, h, from) {
				return answerAgain
			}
			return "answers no query in progress (a late copy)"
		}
		if key, _ := w.q.keyOf(m.ReqID); key.IsZero() || !p.signedBetween(key, h, from) {
			return "answer not signed with the token of the query in progress"
		}
	case wire.Ack:
		// Signed with the key of the message it acknowledges (a query's
		// token, for a querier), or, for one no longer in flight, the ring's.
		if sg, ok := p.link.signerOf(from, h.ID); ok && !sg.key.IsZero() {
			// The server's is signed for this peer only: it may answer
			// from any of its addresses.
			if h.Seq != sg.seq || sg.toServer && !wire.VerifyAt(sg.key, h, p.self.Addr) || !sg.toServer && !p.signedBetween(sg.key, h, from) {
				return "ack not signed with the key of the message it acknowledges"
			}
			return ""
		}
		if !p.ringSigned(from, h) {
			if p.link.ackedBefore(from, h.ID) || p.link.ackDropped(from, h.ID) {
				// Its first id answers a copy, but one in More may be
				// fresh (its receiver acknowledges what one batch brought
				// together): checked with that message's key.
				for _, id := range m.More {
					if sg, ok := p.link.signerOf(from, id); ok && !sg.key.IsZero() && !sg.toServer {
						if h.Seq != sg.seq || !p.signedBetween(sg.key, h, from) {
							return "ack not signed with the key of the message it acknowledges"
						}
						return ""
					}
				}
				// Its message was acknowledged before, or given up: a
				// querier's query sent twice gets two acks, the second
				// after the first ended it, and a querier holds no ring
				// key to check it with. Dropped all the same, quietly.
				return ackAgain
			}
			return "ack not signed with this peer's ring"
		}
	default:
		if !p.ringSigned(from, h) {
			switch m.(type) {
			case wire.Store, wire.Flush, wire.Committed:
				if h.Seq > p.cred.epoch {
					return newerRing
				}
			}
			return m.Type().String() + " not signed with this peer's ring"
		}
	}
	return ""
}

// replyKey is the key the server signs its replies to this peer with: the
// user's secret, or, for a register before there is one, its cookie.
func (p *Peer) replyKey() wire.Key {
	key := p.cred.secret
	if o, ok := p.op.(*registerOp); ok && key.IsZero() {
		key = wire.Key(o.rq.msg.(wire.Register).Cookie)
	}
	return key
}

// newerRing is why a setup's store, flush or committed that claims a
// newer ring than this peer holds is dropped without a warning: its set-id
// was lost, and comes again, as do they (a chaos review: the one warning
// left in healthy runs at 15% loss). One that claims this peer's ring and
// fails its tag still warns.
const newerRing = "store round of a newer ring than this peer's: its set-id has not come yet"

// answerAgain is why the second answer to a query answered here, signed
// with its token, is dropped without a warning: the first attempt's answer,
// slow, arriving behind the answer to the reliable retry (or the other way
// round).
const answerAgain = "answer again to a query answered before"

// replyAgain is why a second answer from the server, signed with this
// peer's secret, to a request answered before is dropped without a
// warning: a copy the network made, or the answer to an id a query-dht was
// asked with again before the first answer came.
const replyAgain = "reply again to a request answered before"

// challengeAgain is why a challenge of a register already challenged and
// sent again with its cookie is dropped without a warning.
const challengeAgain = "challenge again of a register answered before"

// ackAgain is why an ack of a message no longer in flight, that this peer
// cannot check, is dropped without a warning.
const ackAgain = "ack again of a message acknowledged or given up before"

// maxChallenges bounds how often one register answers a challenge: the
// server challenges again only if its cookie key changed (it restarted).
const maxChallenges = 3

// onChallenge sends the register in progress again, with the cookie: the
// server sent it to this peer's address, and only a process that receives
// there can send it back.
func (p *Peer) onChallenge(now time.Time, from netip.AddrPort, h wire.Header, c wire.Challenge) []Output {
	o, ok := p.op.(*registerOp)
	if !ok || from != p.cfg.Server || !o.rq.live || h.ID != o.rq.id {
		return []Output{dropped("challenge matches no request", from, slog.Uint64("id", uint64(h.ID)))}
	}
	if o.challenges++; o.challenges > maxChallenges {
		return p.failed(now, nil, resultFailed(o.failing(), fmt.Sprintf("the server challenged this register %d times", maxChallenges)))
	}
	p.serverHeard = true
	if rtt, ok := o.rq.tries.roundTrip(now); ok {
		p.serverRTT.sample(rtt)
	}
	if r := o.resume; r != nil && !o.typed && !p.cred.secret.IsZero() && r.Server.IsValid() && r.Server != p.cfg.Server {
		// The resume at the start, of a file registered with another
		// server, which does not hold the user's secret: most likely the peer was
		// started with a mistyped server address. Registered anew here,
		// the user would lose its place in the ring of the file's server.
		o.elsewhere = true
		return p.failed(now, nil, resultFailed(CmdResume, fmt.Sprintf(
			"the server at %s does not hold %s's secret, and %s's file was registered with the server at %s: nothing was changed; to resume there, start the peer with %s %d (typing 'register %s %s %d' registers %s anew with this server if the name is free there, and its place in a ring is discarded)",
			p.cfg.Server, r.Name, r.Name, r.Server, r.Server.Addr(), r.Server.Port(), r.Name, r.Addr.Addr(), r.Addr.Port(), r.Name)))
	}
	if !p.cred.secret.IsZero() {
		// The server challenges a register signed with a secret only when
		// it does not know the user (started on a new file, or the user
		// deregistered): the secret is of no use any more, and the
		// register goes unsigned, with the cookie, for a new one.
		p.cred.secret, p.cred.seq = wire.Key{}, 0
		o.anew = true
	}
	p.replied.add(h.ID, wire.Key{}) // a copy of this challenge is no sign of trouble
	m := o.rq.msg.(wire.Register)
	m.Cookie = c.Cookie
	// Still a resume, when it is one: its result is the resume line.
	return p.ask(now, nil, &o.rq, o.failing(), m)
}

// secretSigner signs what this peer sends the server outside a request (a
// heal's ack, healed), with the next sequence number.
func (p *Peer) secretSigner(now time.Time) signer {
	p.cred.seq = nextSeq(p.cred.seq, now)
	return signer{seq: p.cred.seq, key: p.cred.secret, toServer: true}
}

// tokenSigner signs a query from querier, and its answer, in the ring this
// peer is in.
func (p *Peer) tokenSigner(querier netip.AddrPort) signer {
	return signer{seq: p.cred.epoch, key: p.cred.queryToken(querier), from: p.self.Addr}
}

// requestOf is the request waiting for the reply with id: the command in
// progress's, or a query's typed ahead (with its walk); nil if none.
func (p *Peer) requestOf(id uint32) (*request, *walk) {
	if p.op != nil {
		if rq := p.op.asking(); rq != nil && rq.live && rq.id == id {
			return rq, nil
		}
	}
	for _, w := range p.walks {
		if !w.done && w.q != nil && w.q.rq.live && (w.q.rq.id == id || slices.ContainsFunc(w.q.rq.asked, func(a askedAs) bool { return a.id == id })) {
			return &w.q.rq, w
		}
	}
	return nil, nil
}

// walkRoundTrip is the round trip a reply with id times for the query-dht
// rq, asked again as new requests, each sent once: exact.
func walkRoundTrip(rq *request, id uint32, now time.Time) time.Duration {
	if id == rq.id {
		return now.Sub(rq.sentAt)
	}
	for _, a := range rq.asked {
		if a.id == id {
			return now.Sub(a.at)
		}
	}
	return 0
}
