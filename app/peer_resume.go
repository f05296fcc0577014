package app

import (
	"fmt"
	"time"

	"dht/app/state"
	"dht/wire"
)

// Resume (docs/DESIGN.md §6, Resume): a peer started on a file that holds a
// registration takes it back without being told. It binds the registered
// address and sends a register of the same name from it, carrying the
// epoch of the ring its file holds a place in: a rejoin (Server.rejoin).
// The server answers with the user's state and, for a ring member, the
// DHT's epoch. If the server counts it in the ring its file holds (the
// same epoch), the peer takes back its id, ring size, neighbours and table
// and answers queries again; otherwise it discards that ring state (the
// server, if it still counts it a member, heals the ring with it). One
// result line says which: resume SUCCESS: … or resume FAILURE: reason.

// Resume starts the rejoin of the registration id, read from the peer's
// file (whose table the runner has given the core with SetTable). Input
// lines wait until it is done.
func (p *Peer) Resume(now time.Time, id state.Identity) []Output {
	if p.registered || p.op != nil || id.Name == "" {
		return []Output{resultFailed(CmdResume, "nothing to resume")}
	}
	o := &registerOp{bind: id.Addr, resume: &id}
	// The file's credentials: the rejoin is signed with the secret (none
	// in a file written before secrets: the server challenges it).
	p.cred.secret = id.Secret
	p.setRing(id.KeyEpoch, id.RingKey)
	// The file does not keep the sequence number: count from a
	// millisecond past the clock, where the process before, which counted
	// from its clock too, cannot have got to.
	p.cred.seq = uint64(now.Add(time.Millisecond).UnixNano())
	var epoch uint64
	if id.InRing {
		epoch = id.Epoch
	}
	o.rq.prepare(CmdResume, wire.Register{Name: id.Name, Addr: id.Addr, Epoch: epoch})
	p.op = o
	return []Output{Bind{Name: id.Name, Addr: id.Addr}}
}

// resumed: the server took the rejoin.
func (p *Peer) resumed(now time.Time, id state.Identity, r wire.Reply, anew bool, cmd Command) []Output {
	st := state.State(r.State)
	detail := fmt.Sprintf("%s %s %s", id.Name, id.Addr, st)
	if anew {
		detail += ", " + registeredAnew(id.Name)
	}

	member := st == state.Leader || st == state.InDHT
	if member && id.InRing && r.Epoch == id.Epoch && id.Epoch != 0 {
		p.inRing, p.id, p.n, p.epoch = true, id.ID, id.N, id.Epoch
		p.left, p.right, p.neighbours = id.Left, id.Right, id.Left.Name != ""
		p.resumedIn = id.Epoch
		detail += fmt.Sprintf(", id %d of a ring of %d, epoch %d, its table taken back", id.ID, id.N, id.Epoch)
		return p.finish(now, []Output{p.persist(false, nil)}, Result{Cmd: cmd, OK: true, Detail: withNote(detail, r)})
	}
	// The ring epoch it last held stays its floor, as in a process that
	// ran on (a late copy of that ring's heal is stale here too), unless
	// the server gave a new secret: then it may count its epochs anew
	// (registerOp.answered).
	if r.Key.IsZero() {
		p.epoch = max(p.epoch, id.Epoch)
	}
	if id.InRing || id.Left.Name != "" {
		p.clearTable()
		p.leaveRing(false)
		switch {
		case !id.InRing:
			// Only neighbours: it was giving up its id in a leave or a join
			// (a teardown that keeps them) when it stopped.
			detail += "; the neighbours it kept from a leave or join under way were discarded"
			if member {
				detail += ", and the ring heals with it"
			}
		case member:
			// Not the server's epoch: it is the heal's this rejoin
			// started, which the server's note says, with why (its ring
			// is an older one, or a store round of it was under way: a
			// chaos review found "no longer the server's" said of the
			// server's own epoch, the resume come during a join).
			detail += fmt.Sprintf("; its place in the ring it held (epoch %d) and its table were discarded, and the ring heals with it", id.Epoch)
		default:
			detail += fmt.Sprintf("; the ring it held (epoch %d) no longer counts it: its place and table were discarded", id.Epoch)
		}
		return p.finish(now, []Output{p.persist(true, nil)}, Result{Cmd: cmd, OK: true, Detail: withNote(detail, r)})
	}
	// No place, so no table: one an earlier build left (a register after a
	// failed resume kept it) is cleared.
	return p.finish(now, []Output{p.persist(true, nil)}, Result{Cmd: cmd, OK: true, Detail: withNote(detail, r)})
}

// registeredAnew says that the server, which did not hold the user's
// secret (it was started on a new file or put back on an older one, or the
// user deregistered), registered it anew, with a new secret, once its
// address answered a challenge.
func registeredAnew(name string) string {
	return fmt.Sprintf("registered anew (the server did not hold %s's secret)", name)
}

// withNote adds to a resume's detail what the server said of the DHT: why
// the ring heals with this peer, and what became of a setup, leave or join
// in progress.
func withNote(detail string, r wire.Reply) string {
	if r.Reason == "" {
		return detail
	}
	return detail + "; " + r.Reason
}
