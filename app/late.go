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
// silent since before the stall: the judgement waits drainWait, while the
// socket is read, then is made on what it brought.
const (
	lateTick  = 25 * time.Millisecond
	drainWait = 25 * time.Millisecond
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
	at     time.Time // judge no sooner (zero: no Tick came late)
	drains int       // waits in a row so far
}

// judging reports whether a Tick at now may judge, the first judgement
// having fallen due at due (ok false: none is due): not when that was more
// than lateTick ago (late says by how much, and the judgement waits
// drainWait), nor until drainWait after such a Tick.
func (g *lateGuard) judging(now, due time.Time, ok bool) (judge bool, late time.Duration) {
	if !ok || now.Before(due) {
		g.at, g.drains = time.Time{}, 0
		return true, 0 // nothing to judge
	}
	if !g.at.IsZero() {
		if now.Before(g.at) {
			return false, 0 // the socket is being read
		}
		due = g.at
	}
	if late := now.Sub(due); late > lateTick && g.drains < maxDrains {
		g.at = now.Add(drainWait)
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
