package app

import (
	"fmt"
	"time"
)

// A command that waits says what for, as it waits: a person at the peer
// who typed register at a server that is down, or teardown-dht in a ring
// with a stopped member, would otherwise see nothing until the command's
// limit (10 s for the server, --op-timeout for the ring), when its FAILURE
// names the cause. Once a command has waited waitNoteAfter, and again
// every waitNoteEvery, the peer writes a note (stderr, not stdout: results
// only go there) naming what it waits for and when it gives up.
const (
	waitNoteAfter = 2 * time.Second
	waitNoteEvery = 10 * time.Second
)

// waitNote is when the command op next says what it still waits for,
// once it has said it.
type waitNote struct {
	op   operation
	next time.Time
}

// waiting is what the command in progress waits for: the server's
// answer to rq, or, with rq nil, the end of its ring phase (ring); since is
// when that wait began.
type waiting struct {
	since time.Time
	rq    *request
	ring  interface{ waited() string }
}

// waitingOn says what the command in progress waits for; false when it
// waits for nothing a person would not expect: the next input line, the
// end of a sleep.
func (p *Peer) waitingOn() (waiting, bool) {
	if p.op == nil {
		return waiting{}, false
	}
	if rq := p.op.asking(); rq != nil && rq.live {
		return waiting{since: rq.tries.firstSent, rq: rq}, true
	}
	if r, ok := p.op.(interface{ waited() string }); ok {
		if d := p.op.due(); !d.IsZero() {
			return waiting{since: d.Add(-p.cfg.OpTimeout), ring: r}, true // its ring phase's limit
		}
	}
	return waiting{}, false
}

// waitNoteDue is when the command in progress next says what it waits for.
func (p *Peer) waitNoteDue() (time.Time, bool) {
	w, ok := p.waitingOn()
	if !ok {
		return time.Time{}, false
	}
	next := w.since.Add(waitNoteAfter)
	if p.wait.op == p.op && p.wait.next.After(next) {
		next = p.wait.next
	}
	return next, true
}

// noteWait appends to out, when its time has come, the note of what the
// command in progress waits for, and when it gives up.
func (p *Peer) noteWait(now time.Time, out []Output) []Output {
	next, ok := p.waitNoteDue()
	if !ok || now.Before(next) {
		return out
	}
	p.wait = waitNote{op: p.op, next: now.Add(waitNoteEvery)}
	w, _ := p.waitingOn()
	var what string
	if w.rq != nil {
		what = fmt.Sprintf("the server at %s to answer %s (it gives up in %s)", p.cfg.Server, w.rq.cmd, roundWait(p.serverRetry.GiveUp-now.Sub(w.since)))
	} else {
		what = fmt.Sprintf("%s (it fails in %s, at --op-timeout %s)", w.ring.waited(), roundWait(p.op.due().Sub(now)), p.cfg.OpTimeout)
	}
	return append(out, Notice{Line: fmt.Sprintf("%s: waiting for %s, for %s so far", p.op.failing(), what, roundWait(now.Sub(w.since)))})
}

// roundWait is d as a person reads it: whole seconds, at least 1s.
func roundWait(d time.Duration) time.Duration {
	return max(d.Round(time.Second), time.Second)
}
