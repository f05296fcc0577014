// Package app holds the dht protocol: the server (registry) and the peer as
// pure state machines that never touch a socket, a clock or a file, and the
// runners that own a UDP socket, timers and stdin and feed them.
//
// A state machine is driven by three kinds of input — a datagram (Step), the
// passing of time (Tick) and, for the peer, a line typed by the user (Input) —
// and answers each with a list of Outputs that the runner carries out in
// order: persist this, send that, print this line. Order matters: a batch is
// persisted before the acknowledgement or reply that follows it is sent, so
// nothing acknowledged is ever lost.
package app

import (
	"log/slog"
	"net/netip"

	"dht/app/state"
	"dht/wire"
)

// Output is one thing a state machine asks its runner to do.
type Output interface{ isOutput() }

// Send asks the runner to encode Msg with the given header id and flags and
// send it to To; with Sign, signed with Key and Seq for To
// (wire.AppendSignedTo: the tag covers the address, so the datagram is
// good nowhere else) and, from a peer, from Self, the peer's own address
// (wire.AppendSignedBetween: a copy sent again from anywhere else is
// good nowhere), or, with ToServer, for whatever address the server
// was reached at (wire.AppendSigned: a user's requests, alives and acks,
// signed with its secret, which no other peer holds).
// Raw, when set, is the datagram already encoded (a reply the server
// answered before and kept), sent as it is; Msg is then for the trace.
type Send struct {
	To netip.AddrPort
	// From is the address to send it from, on a socket bound to every
	// address (the server's runner fills it in: Server.ReplyFrom); zero,
	// the system's choice.
	From     netip.Addr
	ID       uint32
	Flags    wire.Flags
	Msg      wire.Message
	Sign     bool
	ToServer bool
	Seq      uint64
	Key      wire.Key
	// Self: a peer's own address, which the tag of its datagram to
	// another peer covers too; zero from the server, which may answer
	// from any of its addresses.
	Self netip.AddrPort
	Raw  []byte
	// Quiet: the runner traces the datagram as drops are (quietLines): at
	// the info level the first of its type in a window, the others
	// at the debug level only (an answer to one counted with the drops).
	Quiet bool
}

// Append appends the datagram s sends to b.
func (s Send) Append(b []byte) ([]byte, error) {
	switch {
	case s.Raw != nil:
		return append(b, s.Raw...), nil
	case s.Sign && s.ToServer:
		return wire.AppendSigned(b, s.ID, s.Flags, s.Msg, s.Seq, s.Key)
	case s.Sign && s.Self.IsValid():
		return wire.AppendSignedBetween(b, s.ID, s.Flags, s.Msg, s.Seq, s.Key, s.Self, s.To)
	case s.Sign:
		return wire.AppendSignedTo(b, s.ID, s.Flags, s.Msg, s.Seq, s.Key, s.To)
	}
	return wire.Append(b, s.ID, s.Flags, s.Msg)
}

// A Result (result.go) is what a command yields for the user (stdout).

// Event is a trace line about something other than a datagram sent or
// received: a drop, a timeout, a rollback. Level is LevelWarn for what a
// user should look into, LevelDebug for what a working network does on its
// own (the trace on stderr leaves those out).
type Event struct {
	Msg   string
	Level slog.Level
	Attrs []slog.Attr
	// Drop marks a datagram dropped, from From: a runner summarises a
	// flood of them rather than tracing each (dropSummary).
	Drop bool
	From netip.AddrPort
}

// PersistServer asks the server's runner to write the whole registry and, if
// Reply is set, the reply cached for that client, in one transaction, and
// to delete the replies cached for the addresses in Forget.
type PersistServer struct {
	State  state.ServerState
	Reply  *state.CachedReply
	Forget []netip.AddrPort
}

// PersistPeer asks the peer's runner to apply one batch to its table file in
// one transaction.
type PersistPeer struct {
	Batch state.Batch
	// Tidy: no output before it waits for this commit (the file catches
	// up with a change the server already holds), so the runner may let
	// the results queued before it be written while the disk works.
	Tidy bool
	// Forget: the deregister's, which clears the registration the server
	// has already removed. Its result goes before it: a commit refused
	// here stops the process still, but the user is deregistered all the
	// same, and a file left holding the registration registers the user
	// anew when a peer is started on it.
	Forget string
}

// Bind asks the peer's runner to bind its UDP socket to Addr and to report
// the result with Peer.Bound.
type Bind struct {
	Name string // the user registering: names the table file
	Addr netip.AddrPort
}

// DiscardStore tells the peer's runner that the register its table file
// was opened for failed: close the file, and remove it if nothing was ever
// written to it, so that a refused register leaves nothing behind.
type DiscardStore struct{}

// Unbind tells the peer's runner that the register it bound the socket for
// failed: close the socket, so that the address is free again.
type Unbind struct{}

// Notice is a line for the person at the peer that is no command's result
// (stderr, beside the trace but not silenced with it): that the ring was
// healed without this node while it did not run, say.
type Notice struct{ Line string }

// Exit tells the peer's runner that the user is deregistered and the process
// should end once pending output is written.
type Exit struct{}

// TableUnreadable tells the peer's runner that its table file could not be
// read (damaged, cut short under it): the process stops, as on a commit
// its file refuses, rather than answer for records it cannot see; the ring
// heals round it and places them again.
type TableUnreadable struct{ Err error }

func (Send) isOutput()            {}
func (Result) isOutput()          {}
func (Event) isOutput()           {}
func (PersistServer) isOutput()   {}
func (PersistPeer) isOutput()     {}
func (Bind) isOutput()            {}
func (DiscardStore) isOutput()    {}
func (Unbind) isOutput()          {}
func (Notice) isOutput()          {}
func (Exit) isOutput()            {}
func (TableUnreadable) isOutput() {}

func event(msg string, attrs ...slog.Attr) Event {
	return Event{Msg: msg, Level: slog.LevelWarn, Attrs: attrs}
}

// dropped is the Event of a datagram from `from` dropped, and why.
func dropped(why string, from netip.AddrPort, attrs ...slog.Attr) Event {
	if from.IsValid() {
		attrs = append([]slog.Attr{attrAddr(from)}, attrs...)
	}
	return Event{Msg: "dropped: " + why, Level: slog.LevelWarn, Attrs: attrs, Drop: true, From: from}
}

func debugEvent(msg string, attrs ...slog.Attr) Event {
	return Event{Msg: msg, Level: slog.LevelDebug, Attrs: attrs}
}
