package app

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"dht/app/state"
	"dht/wire"
)

// Besides one line per datagram (LevelInfo) and one per Event (at its
// level: LevelWarn, or LevelDebug for what a working network does),
// the runners trace what a process does on its own at LevelDebug: a line
// typed by the user, a result line printed, a change persisted. The human
// trace on stderr runs at LevelInfo and never shows them; a structured
// trace (dht --trace-json) records them, so that a time-space diagram can
// show the actions taken on each lifeline. The messages and keys below are
// stable: docs/DESIGN.md's diagrams are drawn from them.
const (
	TraceInput   = "input"   // line: the line typed; queued: it waits for the command in progress
	TracePrint   = "print"   // line: the result line (its first line)
	TracePersist = "persist" // see tracePersistPeer and tracePersistServer
	TraceExit    = "exit"    // the peer ends after deregister (debug); a process stopped, with why (info)
)

// traceStopped ends the trace of a runner stopped by ctx with a cause (a
// signal: "terminated signal received") with why, at the info level: an
// operator reading the server's log then knows it was stopped, not that
// it crashed. A runner stopped with no cause (dht play, demo, bench, which
// end their cluster so) writes nothing.
func traceStopped(log *slog.Logger, ctx context.Context) {
	why := context.Cause(ctx)
	if why == nil || why == context.Canceled { // a signal's cause wraps context.Canceled: not errors.Is
		return
	}
	log.LogAttrs(context.Background(), slog.LevelInfo, TraceExit, slog.String("why", why.Error()))
}

func traceDebug(log *slog.Logger, msg string, attrs ...slog.Attr) {
	log.LogAttrs(context.Background(), slog.LevelDebug, msg, attrs...)
}

func debugOn(log *slog.Logger) bool { return log.Enabled(context.Background(), slog.LevelDebug) }

// traceInput records a line read from the user; queued says that a
// command was in progress, so the line waits its turn.
func traceInput(log *slog.Logger, line string, queued bool) {
	if debugOn(log) {
		traceDebug(log, TraceInput, slog.String("line", strings.TrimRight(line, "\r\n")), slog.Bool("queued", queued))
	}
}

// traceResult records the first line of a result; a query's record lines
// follow it and are counted.
func traceResult(log *slog.Logger, r Result) {
	if !debugOn(log) {
		return
	}
	first, rest, more := strings.Cut(r.String(), "\n")
	attrs := []slog.Attr{slog.String("line", first)}
	if more {
		attrs = append(attrs, slog.Int("more_lines", strings.Count(rest, "\n")+1))
	}
	traceDebug(log, TracePrint, attrs...)
}

// tracePersistPeer records one batch written to a peer's table file:
// records put, whether the table was cleared first, and the identity it
// saves (in_ring, node_id, ring, left, right: neighbour names, "" for none).
func tracePersistPeer(log *slog.Logger, b state.Batch) {
	if !debugOn(log) {
		return
	}
	attrs := []slog.Attr{slog.Int("records", len(b.Put)), slog.Bool("clear", b.Clear)}
	if id := b.Identity; id != nil {
		attrs = append(attrs, slog.Bool("in_ring", id.InRing), slog.Int("node_id", id.ID), slog.Int("ring", id.N),
			slog.String("left", id.Left.Name), slog.String("right", id.Right.Name))
	}
	traceDebug(log, TracePersist, attrs...)
}

// tracePersistServer records the registry the server just made durable:
// users as "name:State" joined by ",", the DHT's phase, leader, members in
// ring order, leaver and joiner.
func tracePersistServer(log *slog.Logger, st state.ServerState) {
	if !debugOn(log) {
		return
	}
	users := make([]string, len(st.Users))
	for i, u := range st.Users {
		users[i] = u.Name + ":" + u.State.String()
	}
	traceDebug(log, TracePersist, slog.String("users", strings.Join(users, ",")),
		slog.String("dht", st.DHT.Phase.String()), slog.String("leader", st.DHT.Leader),
		slog.String("members", strings.Join(st.DHT.Members, ",")), slog.String("leaver", st.DHT.Leaver),
		slog.String("joiner", st.DHT.Joiner))
}

// Whatever runs the state machines besides the runners (the simulation)
// traces through the functions below, which the runners' own tracing is
// built on, so that its trace has the same messages, levels and keys.

// TraceTyped records a line typed at a peer, as a runner does when it reads
// one; queued says that a command was in progress, so the line waits its
// turn.
func TraceTyped(log *slog.Logger, line string, queued bool) { traceInput(log, line, queued) }

// TraceSend records a datagram sent, as a runner's socket does.
func TraceSend(log *slog.Logger, s Send) {
	if log.Enabled(context.Background(), slog.LevelInfo) {
		log.LogAttrs(context.Background(), slog.LevelInfo, "send", traceAttrs(s.To, s.ID, s.Flags, s.Msg)...)
	}
}

// TraceRecv records a datagram received and decoded, as a runner's socket
// does.
func TraceRecv(log *slog.Logger, d Datagram) {
	if log.Enabled(context.Background(), slog.LevelInfo) {
		log.LogAttrs(context.Background(), slog.LevelInfo, "recv", traceAttrs(d.From, d.Header.ID, d.Header.Flags, d.Msg)...)
	}
}

// TraceOutput records o as a runner does once it has carried it out: a
// Result's first line, an Event at its level, a Notice as a runner without
// Notes does, what a PersistServer or PersistPeer made durable, an Exit. A
// Send is traced where it is written (TraceSend); Bind, Unbind and
// DiscardStore leave no line.
func TraceOutput(log *slog.Logger, o Output) {
	switch o := o.(type) {
	case Result:
		traceResult(log, o)
	case Event:
		traceEvent(log, o)
	case Notice:
		traceEvent(log, event(o.Line))
	case PersistServer:
		tracePersistServer(log, o.State)
	case PersistPeer:
		tracePersistPeer(log, o.Batch)
	case Exit:
		traceDebug(log, TraceExit)
	}
}

// logger is the peer's trace logger: once bound, the endpoint's, which
// names the node and its address.
func (r *PeerRunner) logger(base *slog.Logger) *slog.Logger {
	if r.ep != nil {
		return r.ep.log
	}
	return base
}

// dropSummary keeps a flood of dropped datagrams from writing a trace line
// each. Each reason has a window of its own (dropReasons told apart, more
// than an off-path sender can bring about; the rest as one), and traces
// the first drop of each window as it comes; the others are counted, with
// how many sources they came from, and traced as one line when the window
// is over (or the runner stops). A reason's first window lasts a second;
// while the reason comes back within dropSpanMax of its window's end, each
// window lasts twice the last, up to dropSpanMax. So the drop of a reason
// new, or quiet for dropSpanMax, is traced at once; a reason that comes
// back, steadily or in bursts, at any rate, costs at most two lines a
// window: 14 in its first two minutes (windows of 1 to 64 s), then two a
// minute, in bounded memory.
type dropSummary struct {
	tally map[string]*dropTally
	// counted: drops counted, not yet traced; their lines are due at
	// their windows' ends, whether more come or not (the runner's timer).
	counted int
}

// dropTally is a reason's window: since its first drop, traced, for span;
// more drops counted, not yet traced, from sources.
type dropTally struct {
	since   time.Time
	span    time.Duration
	more    int
	sources map[netip.Addr]struct{}
	level   slog.Level // the highest of its drops': a count of challenged registers is no warning
	recvs   int        // datagrams of the window whose line was traced
}

const (
	dropsShown  = 1                // a window, for each reason
	dropReasons = 128              // told apart (more than the code has for datagrams that prove nothing); the rest count as one
	dropSources = 128              // counted apart in a window, for each reason
	dropRecvs   = 256              // datagrams dropped traced (debug) a window, for each reason
	dropSpanMax = 64 * time.Second // the longest window, and the quiet that makes a reason new
	dropOthers  = "dropped: other reasons"
)

// traceDropMore is the message of the line that counts the drops of a
// reason not traced one by one.
const traceDropMore = "dropped, and more like it"

func (d *dropSummary) trace(log *slog.Logger, now time.Time, ev Event) {
	if show, _ := d.enter(log, now, ev); show {
		traceEvent(log, ev)
	}
}

// enter counts the drop ev at now in its reason's window, tracing the
// count of the window before if this one starts a new one, and reports
// whether ev is to be traced (the first of its window) and whether the
// datagram's own line is (the first dropRecvs of its window, at the debug
// level: for the diagrams of --trace-json, which a flood must not grow
// without bound either).
func (d *dropSummary) enter(log *slog.Logger, now time.Time, ev Event) (show, recv bool) {
	if d.tally == nil {
		d.tally = map[string]*dropTally{}
	}
	key := ev.Msg
	t := d.tally[key]
	if t == nil && len(d.tally) >= dropReasons {
		d.forgetQuiet(now)
		if len(d.tally) >= dropReasons {
			key = dropOthers
			t = d.tally[key]
		}
	}
	switch {
	case t == nil:
		d.tally[key] = &dropTally{since: now, span: time.Second, sources: map[netip.Addr]struct{}{}, level: ev.Level, recvs: 1}
		return true, true
	case !now.Before(t.end()) || now.Before(t.since):
		goesOn := !now.Before(t.since) && now.Before(t.end().Add(dropSpanMax))
		d.flushOne(log, key, t, t.end())
		t.since, t.level = now, ev.Level
		if goesOn {
			t.span = min(2*t.span, dropSpanMax)
		} else {
			t.span = time.Second
		}
		t.recvs = 1
		return true, true
	}
	t.level = max(t.level, ev.Level)
	t.more++
	d.counted++
	if len(t.sources) < dropSources {
		t.sources[ev.From.Addr()] = struct{}{}
	}
	if t.recvs < dropRecvs {
		t.recvs++
		return false, true
	}
	return false, false
}

func (t *dropTally) end() time.Time { return t.since.Add(t.span) }

// forgetQuiet forgets the reasons quiet for dropSpanMax since their
// window's end (their next window would last a second, as a new reason's),
// with nothing left to trace: room for a new one.
func (d *dropSummary) forgetQuiet(now time.Time) {
	for k, t := range d.tally {
		if t.more == 0 && !now.Before(t.end().Add(dropSpanMax)) {
			delete(d.tally, k)
		}
	}
}

// due is when the first of the counts waiting is to be traced, if any
// waits.
func (d *dropSummary) due() (at time.Time, ok bool) {
	if d.counted == 0 {
		return time.Time{}, false
	}
	for _, t := range d.tally {
		if t.more > 0 && (!ok || t.end().Before(at)) {
			at, ok = t.end(), true
		}
	}
	return at, ok
}

// tick traces the counts whose window is over.
func (d *dropSummary) tick(log *slog.Logger, now time.Time) {
	if d.counted == 0 {
		return
	}
	for _, k := range d.reasons() {
		if t := d.tally[k]; t.more > 0 && !now.Before(t.end()) {
			d.flushOne(log, k, t, t.end())
		}
	}
}

// flush traces every count waiting, as the runner stops at now.
func (d *dropSummary) flush(log *slog.Logger, now time.Time) {
	for _, k := range d.reasons() {
		t := d.tally[k]
		end := t.end()
		if now.Before(end) {
			end = now
		}
		if end.Before(t.since) {
			end = t.since
		}
		d.flushOne(log, k, t, end)
	}
}

// reasons are the reasons told apart, in order.
func (d *dropSummary) reasons() []string {
	keys := make([]string, 0, len(d.tally))
	for k := range d.tally {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// flushOne traces the count of a reason's drops not traced one by one, in
// its window up to end, if there are any.
func (d *dropSummary) flushOne(log *slog.Logger, key string, t *dropTally, end time.Time) {
	if t.more == 0 {
		return
	}
	log.LogAttrs(context.Background(), t.level, traceDropMore,
		slog.String("reason", strings.TrimPrefix(key, "dropped: ")), slog.Int("count", t.more),
		slog.Int("sources", len(t.sources)), slog.Duration("within", end.Sub(t.since)))
	d.counted -= t.more
	t.more = 0
	clear(t.sources)
}

// quietLines traces the sends marked Quiet (a challenge, a refusal, the ack
// of a copy: what anyone can make a process send) as the drops they answer
// are: for each type of message, the first of a window at the info level,
// the next dropRecvs-1 of that window at the debug level only, and the
// others not at all; a window lasts a
// second, and twice the last while they keep coming, up to dropSpanMax.
// The drops they answer count them (the summary lines). So a user's
// register alone has its challenge traced as every datagram is (SPEC §5),
// and a flood of forged requests, from any number of sources, costs a few
// lines in its first minutes, then about one a minute (§7). Destinations
// are not told apart: a forged source costs nothing.
type quietLines map[wire.Type]*quietWindow

type quietWindow struct {
	since time.Time
	span  time.Duration
	shown int // sends of the window traced
}

// show reports at which level a quiet send of type t at now is traced,
// if at all.
func (q *quietLines) show(t wire.Type, now time.Time) (slog.Level, bool) {
	if *q == nil {
		*q = quietLines{}
	}
	w := (*q)[t]
	if w == nil {
		w = &quietWindow{}
		(*q)[t] = w
	}
	end := w.since.Add(w.span)
	if w.span != 0 && !now.Before(w.since) && now.Before(end) {
		if w.shown < dropRecvs {
			w.shown++
			return slog.LevelDebug, true
		}
		return 0, false
	}
	if w.span != 0 && !now.Before(w.since) && now.Before(end.Add(dropSpanMax)) {
		w.span = min(2*w.span, dropSpanMax)
	} else {
		w.span = time.Second
	}
	w.since, w.shown = now, 1
	return slog.LevelInfo, true
}
