package app

import (
	"net/netip"
	"time"

	"dht/wire"
)

// Credentials of the peers the unit tests build (fuzzPeer): its secret,
// and the ring it is in.
var (
	fzSecret  = wire.Key{0x5e, 0xc2}
	fzRingKey = wire.Key{0x71, 0x6e}
	fzEpoch   = uint64(7)
)

// signedFor returns the header a legitimate sender would put on m for peer
// p, and m as it would send it: the server signs with p's secret (a
// register's reply with its cookie, and carries a secret); a set-id
// without a ticket is made one of a new ring the server vouches for; a
// query is signed with its querier's token, an answer with the token of
// p's query; any other ring message with p's ring. The unit tests of the
// protocol's rules use it so that their datagrams pass the checks of
// auth.go, which have tests of their own. from is where it comes from: a
// peer's tag covers its own address.
func signedFor(p *Peer, from netip.AddrPort, h wire.Header, m wire.Message) (wire.Header, wire.Message) {
	var sg signer
	switch mm := m.(type) {
	case wire.Reply, wire.Challenge, wire.Pace:
		from = netip.AddrPort{}               // the server signs for the peer alone
		sg.key, sg.seq = p.cred.secret, h.Seq // the sequence number of what it answers, if given
		if o, ok := p.op.(*registerOp); ok && sg.key.IsZero() {
			if o.rq.msg.(wire.Register).Cookie == (wire.Tag{}) {
				// The server challenges a register first: the peer sends
				// it again, with the cookie, under a new id.
				for _, out := range p.Step(time.Unix(1_700_000_000, 0), p.cfg.Server, wire.Header{ID: h.ID}, wire.Challenge{Cookie: wire.Tag{0xc0}}) {
					if s, ok := out.(Send); ok {
						h.ID = s.ID
					}
				}
			}
			sg.key = wire.Key(o.rq.msg.(wire.Register).Cookie)
			if r, ok := m.(wire.Reply); ok && r.OK && r.Key.IsZero() {
				r.Key = fzSecret
				m = r
			}
		}
		if o, ok := p.op.(*joinOp); ok && o.stage == joinAsking {
			if r, ok := m.(wire.Reply); ok && r.OK && r.Key.IsZero() {
				r.KeyEpoch, r.Key = fzEpoch, wire.Key(ticket(p.cred.secret, fzEpoch, fzRingKey))
				m = r
			}
		}
	case wire.SetID:
		if mm.Ticket == (wire.Tag{}) && !p.cred.secret.IsZero() {
			epoch := p.cred.epoch + 1
			key := wire.Key{0x72, byte(epoch)}
			mm.Ticket = ticket(p.cred.secret, epoch, key)
			m, sg = mm, signer{seq: epoch, key: key}
		} else {
			sg = p.link.sg
		}
	case wire.Query:
		sg = p.tokenSigner(mm.Querier.Addr)
	case wire.QueryResult:
		if w, ok := p.walkOf(mm.ReqID); ok {
			sg = w.q.sg
		}
	default:
		sg = p.link.sg
	}
	return signedWith(h, m, sg, from, p.self.Addr)
}

// signedWith is m with header h signed by sg for the peer at self, as the
// peer at from sends it; from the server (sg.toServer, or a zero from),
// for self alone.
func signedWith(h wire.Header, m wire.Message, sg signer, from, self netip.AddrPort) (wire.Header, wire.Message) {
	if sg.key.IsZero() {
		return h, m
	}
	sg.from = from
	b, err := sg.send(self, h.ID, h.Flags, m).Append(nil)
	if err != nil {
		panic(err)
	}
	h2, m2, err := wire.Decode(b)
	if err != nil {
		panic(err)
	}
	return h2, m2
}

// as is sg as the peer at from signs with it (signer.from).
func (sg signer) as(from netip.AddrPort) signer {
	sg.from = from
	return sg
}

// stepSigned is p.Step of m signed as signedFor says; a query that a
// member forwards reliably (from another than its querier), with the
// ring's key.
func stepSigned(p *Peer, now time.Time, from netip.AddrPort, h wire.Header, m wire.Message) []Output {
	if q, ok := m.(wire.Query); ok && from != q.Querier.Addr && h.Flags&wire.FlagNoAck == 0 {
		h, m = signedWith(h, m, p.link.sg, from, p.self.Addr)
	} else {
		h, m = signedFor(p, from, h, m)
	}
	return p.Step(now, from, h, m)
}

// giveCredentials makes p a registered peer holding fzSecret, in the ring
// (fzEpoch, fzRingKey).
func giveCredentials(p *Peer) {
	p.cred.secret = fzSecret
	p.setRing(fzEpoch, fzRingKey)
	p.unsaved = false
}
