package app

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"dht/app/state"
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
	TraceExit    = "exit"    // the peer ends after deregister
)

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
// each. In every window the first dropsShown drops of each reason, and
// dropsShownAll of all, are traced as they come; the others are counted,
// with how many sources they came from, and traced as one line per reason
// when the window is over (or the runner stops). A window lasts a second;
// one that starts as the last one ends with drops counted (a flood goes
// on) lasts twice as long as the last, up to dropSpanMax: a flood of any
// shape costs a few lines a second at first, and a few lines a minute
// after a few minutes, in bounded memory.
type dropSummary struct {
	since time.Time
	span  time.Duration // of the window that started at since
	tally map[string]*dropTally
	// shown: drops traced one by one in this window.
	shown int
	// counted: drops counted, not yet traced; their line is due at the
	// window's end, whether more come or not (the runner's timer).
	counted int
	// flooded: this window counted drops (its lines may be out already).
	flooded bool
}

type dropTally struct {
	shown, more int
	sources     map[netip.Addr]struct{}
	level       slog.Level // the highest of its drops': a count of challenged registers is no warning
}

const (
	dropsShown    = 5                // a window, for each reason
	dropsShownAll = 10               // a window, all reasons
	dropReasons   = 16               // told apart in a window; the rest count as one
	dropSources   = 1024             // counted apart in a window, for each reason
	dropSpanMax   = 64 * time.Second // the longest window
)

// traceDropMore is the message of the line that counts the drops of a
// reason not traced one by one.
const traceDropMore = "dropped, and more like it"

func (d *dropSummary) trace(log *slog.Logger, now time.Time, ev Event) {
	if d.tally == nil || !now.Before(d.since.Add(d.span)) || now.Before(d.since) {
		d.next(log, now)
	}
	key := ev.Msg
	t := d.tally[key]
	if t == nil && len(d.tally) >= dropReasons {
		key = "dropped: other reasons"
		t = d.tally[key]
	}
	if t == nil {
		t = &dropTally{sources: map[netip.Addr]struct{}{}, level: ev.Level}
		d.tally[key] = t
	}
	t.level = max(t.level, ev.Level)
	if t.shown < dropsShown && d.shown < dropsShownAll {
		t.shown++
		d.shown++
		traceEvent(log, ev)
		return
	}
	t.more++
	d.counted++
	d.flooded = true
	if len(t.sources) < dropSources {
		t.sources[ev.From.Addr()] = struct{}{}
	}
}

// next ends the window, tracing its counts, and starts one at now: twice
// as long as the last when the last counted drops and now is within a
// window's length of its end, a second otherwise.
func (d *dropSummary) next(log *slog.Logger, now time.Time) {
	goesOn := d.flooded && !now.Before(d.since) && now.Before(d.since.Add(2*d.span))
	d.flush(log)
	d.since, d.shown, d.flooded = now, 0, false
	if goesOn {
		d.span = min(2*d.span, dropSpanMax)
	} else {
		d.span = time.Second
	}
}

// due is when the counts of this window are to be traced, if any wait.
func (d *dropSummary) due() (time.Time, bool) {
	return d.since.Add(d.span), d.counted > 0
}

// tick traces the counts once their window is over.
func (d *dropSummary) tick(log *slog.Logger, now time.Time) {
	if at, ok := d.due(); ok && !now.Before(at) {
		d.flush(log)
	}
}

// flush traces the count of each reason's drops not traced one by one.
func (d *dropSummary) flush(log *slog.Logger) {
	keys := make([]string, 0, len(d.tally))
	for k, t := range d.tally {
		if t.more > 0 {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		t := d.tally[k]
		log.LogAttrs(context.Background(), t.level, traceDropMore,
			slog.String("reason", strings.TrimPrefix(k, "dropped: ")), slog.Int("count", t.more),
			slog.Int("sources", len(t.sources)), slog.Duration("within", d.span))
	}
	d.tally = map[string]*dropTally{}
	d.counted = 0
}
