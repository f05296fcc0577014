package app

import (
	"context"
	"log/slog"
	"strings"

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

// logger is the peer's trace logger: once bound, the endpoint's, which
// names the node and its address.
func (r *PeerRunner) logger(base *slog.Logger) *slog.Logger {
	if r.ep != nil {
		return r.ep.log
	}
	return base
}
