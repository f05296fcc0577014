package app

import (
	"log/slog"
	"time"
)

// A Tick more than lateTick after a judgement fell due (a member silent
// for DeadAfter, an operation's or a query's limit, a give-up) means the
// core's process did not run when it was due: stopped, starved of CPU, or
// its commit held up by the disk. The alives, acks and answers that came
// meanwhile wait on its socket, unread, and judged now everyone would look
// silent since before the stall: the judgement waits until what waited on
// the socket has been read (lateGuard.drained), at most maxDrainWait, then
// is made on what it brought. A fixed wait was not enough: a server
// stopped for ten minutes had 2,006 alives queued, and dissolved a live
// ring 26 ms after it ran again, before it had read the first (a new
// user's review).
const (
	lateTick  = 25 * time.Millisecond
	drainWait = 25 * time.Millisecond
	// maxDrainWait bounds the wait for the socket to go quiet: a flood of
	// datagrams does not hold judgements back for longer.
	maxDrainWait = time.Second
	// maxDrains bounds the waits in a row: a process whose every Tick
	// comes late (a CPU quota of a few percent, a stop-and-continue
	// cycle) still judges, on what it read in between, rather than never
	// (a code review: a query to a silent member was neither sent again
	// nor given up, for ever).
	maxDrains = 2
)

// lateGuard holds a core's judgements back after a late Tick (the server's
// and the peer's each keep one).
type lateGuard struct {
	at    time.Time // judge no sooner (zero: no Tick came late)
	since time.Time // when the late Tick came
	read  time.Time // when a datagram was last read (heard)
	// stamped: the socket says when each datagram came (the server's,
	// SO_TIMESTAMPNS); caught: one read since the late Tick came after
	// it, so that what waited before it has all been read (a socket's
	// queue is read in order).
	stamped, caught bool
	drains          int // waits in a row so far
	// ran: when this process last ran (a datagram read, a Tick); from:
	// when it last ran before the late Tick, the stall's start; spoke: a
	// datagram read since came during the stall. muted, mutedFrom: a
	// stall no datagram came in, once its wait has ended (takeMute).
	ran, from time.Time
	spoke     bool
	muted     time.Duration
	mutedFrom time.Time
	// pace: how often the other side sends its signs of life (the
	// server's alive period; zero: no such promise). After a stall
	// longer than that, what it sent meanwhile may not be on the socket
	// at all: a queue that filled up (a flood of junk while the process
	// did not run) dropped it. Its next sign comes within pace after the
	// process runs again: the judgement waits until then (hold). An
	// attacker's review: a flood the server kept up with running filled
	// its queue during a 5 s stop, the members' alives were dropped, and
	// four live members were healed out 280 ms after it ran again.
	pace time.Duration
	hold time.Time
	// woke: when the process last ran again after not running for pace
	// or more (a read may come before the late Tick: the runner's reader
	// and its timer race for the lock once the process runs again).
	woke time.Time
}

// run notes that the process runs at now, and returns when it last ran
// before.
func (g *lateGuard) run(now time.Time) time.Time {
	ran := g.ran
	if g.pace > 0 && !ran.IsZero() && now.Sub(ran) >= g.pace {
		g.woke = now
	}
	g.ran = now
	return ran
}

// heard notes a datagram read at now that came at came (zero: the socket
// does not say).
func (g *lateGuard) heard(now, came time.Time) {
	g.read = now
	g.run(now)
	if !came.IsZero() {
		g.stamped = true
		if !g.at.IsZero() && !came.Before(g.since) {
			g.caught = true
		}
		if !g.at.IsZero() && !came.Before(g.from) && came.Before(g.since) {
			g.spoke = true
		}
	}
}

// takeMute returns, once, a stall whose wait has ended during which
// nothing came on the socket, where the socket says when each datagram
// came: its start and length (zero: none). Every process of the host was
// stopped as long (a laptop's lid closed), or no one had anything to say:
// no one's silence then counts, however the processes run again (a chaos
// review: a server that ran again 40 ms before its peers judged the first
// alive read the end of its backlog, and healed a live ring of 5 to 1).
func (g *lateGuard) takeMute() (time.Time, time.Duration) {
	from, d := g.mutedFrom, g.muted
	g.mutedFrom, g.muted = time.Time{}, 0
	return from, d
}

// drained reports whether what waited on the socket when the late Tick
// came has been read, at now: a datagram that came after it was read
// (where the socket says when each came), or nothing was read for
// drainWait (where it does not: a reader that has not begun to read its
// backlog looks the same, which a stopped server met once), or
// maxDrainWait has passed (a flood holds judgements back no longer). The
// second is when to ask again.
func (g *lateGuard) drained(now time.Time) (bool, time.Time) {
	if now.Before(g.hold) {
		return false, g.hold
	}
	limit := g.since.Add(maxDrainWait)
	if g.caught || !now.Before(limit) {
		return true, time.Time{}
	}
	next := now.Add(drainWait)
	if !g.stamped {
		quiet := g.read.Add(drainWait)
		if !now.Before(quiet) {
			return true, time.Time{}
		}
		next = quiet
	}
	if limit.Before(next) {
		next = limit
	}
	return false, next
}

// judging reports whether a Tick at now may judge, the first judgement
// having fallen due at due (ok false: none is due): not when that was more
// than lateTick ago (late says by how much, and the judgement waits), nor
// after such a Tick until what waited on the socket has been read
// (drained).
func (g *lateGuard) judging(now, due time.Time, ok bool) (judge bool, late time.Duration) {
	ran := g.run(now)
	if !ok || now.Before(due) {
		g.at, g.drains = time.Time{}, 0
		return true, 0 // nothing to judge
	}
	if !g.at.IsZero() {
		if now.Before(g.at) {
			return false, 0 // the socket is being read
		}
		if done, next := g.drained(now); !done {
			g.at = next
			return false, 0
		}
		if g.stamped && !g.spoke && g.from.Before(g.since) {
			g.mutedFrom, g.muted = g.from, g.since.Sub(g.from)
		}
		due = g.at
		if g.hold.After(due) {
			due = g.hold // a Tick no sooner was not late
		}
	}
	if late := now.Sub(due); late > lateTick && g.drains < maxDrains {
		g.at, g.since, g.caught, g.from, g.spoke, g.hold = now.Add(drainWait), now, false, ran, false, time.Time{}
		// Keyed on how long the process did not run too, not only on
		// how late the Tick is: a stall of DeadAfter less an alive
		// period is enough for a member whose alives were dropped to
		// look silent.
		if g.pace > 0 && (late >= g.pace || !g.woke.IsZero() && now.Sub(g.woke) <= drainWait) {
			g.hold = now.Add(g.pace)
		}
		g.drains++
		return false, late
	}
	g.at, g.drains = time.Time{}, 0
	return true, 0
}

// deadline is when the next judgement may be made, given that the first
// falls due at t: no sooner than a late Tick's wait ends.
func (g *lateGuard) deadline(t time.Time, ok bool) (time.Time, bool) {
	if !g.at.IsZero() && (!ok || t.Before(g.at)) {
		return g.at, true
	}
	// A judgement pending: run at least every half pace, so that ran
	// says when the process last ran, not when it last had work: an idle
	// spell is no stall (takeMute would spare it).
	if beat := g.ran.Add(g.pace / 2); ok && g.pace > 0 && !g.ran.IsZero() && beat.Before(t) {
		return beat, true
	}
	return t, ok
}

// lateWarn: a Tick this late or later is warned of (a stopped process, a
// machine out of memory); one less late, which a loaded machine's
// scheduling gives (tens, a few hundred milliseconds), is traced at the
// info level: far short of the limits the judgements it holds back count
// with (a give-up, --dead-after: seconds), and held back all the same.
const lateWarn = time.Second

// lateEvent is the event of a Tick late by late, saying what waits.
func lateEvent(what string, late time.Duration) Event {
	ev := event("late: this process did not run for a while (stopped, or starved of CPU); it reads what came meanwhile before "+what, slog.Duration("late", late))
	if late < lateWarn {
		ev.Level = slog.LevelInfo
	}
	return ev
}
