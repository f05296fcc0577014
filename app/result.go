package app

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"dht/dataset"
)

// Command names a user command. Its String is the name the user types and
// the stdout contract opens each result line with.
type Command uint8

const (
	// CmdUnknown is a line whose first word names no command; its Result
	// carries the word typed.
	CmdUnknown Command = iota
	CmdRegister
	CmdSetupDHT
	CmdDHTComplete
	CmdQueryDHT
	CmdLeaveDHT
	CmdDHTRebuilt
	CmdDeregister
	CmdTeardownDHT
	CmdTeardownComplete
	CmdJoinDHT
	CmdSleep
	CmdHelp
	// CmdRebuildDHT is no command a user types: it reports, at the node
	// asked to lead the rebuild of a leave or a join, that the rebuild
	// failed there.
	CmdRebuildDHT
	// CmdHeal is no command a user types: it reports, at the node the
	// server asked to lead the heal of a ring that lost members, how the
	// heal went there.
	CmdHeal
	// CmdResume is no command a user types: a peer started on the file of
	// a registration rejoins the server, and says how that went.
	CmdResume
)

var commandNames = [...]string{
	CmdUnknown:          "unknown",
	CmdRegister:         "register",
	CmdSetupDHT:         "setup-dht",
	CmdDHTComplete:      "dht-complete",
	CmdQueryDHT:         "query-dht",
	CmdLeaveDHT:         "leave-dht",
	CmdDHTRebuilt:       "dht-rebuilt",
	CmdDeregister:       "deregister",
	CmdTeardownDHT:      "teardown-dht",
	CmdTeardownComplete: "teardown-complete",
	CmdJoinDHT:          "join-dht",
	CmdSleep:            "sleep",
	CmdHelp:             "help",
	CmdRebuildDHT:       "rebuild-dht",
	CmdHeal:             "heal",
	CmdResume:           "resume",
}

func (c Command) String() string {
	if int(c) < len(commandNames) {
		return commandNames[c]
	}
	return "command(" + strconv.Itoa(int(c)) + ")"
}

// commandNamed returns the command the user's word names.
func commandNamed(word string) (Command, bool) {
	for c, name := range commandNames[:CmdHelp+1] {
		if name == word && Command(c) != CmdUnknown {
			return Command(c), true
		}
	}
	return CmdUnknown, false
}

// Result is what a command yields for the user: the outcome of the command,
// or of a stage of it that the stdout contract gives a line of its own
// (setup-dht's SUCCESS, then dht-complete's). The runner writes it to stdout
// with AppendText, the one place where results become text; drivers that
// run peers in this process (the demo, play, the bench) read its fields.
type Result struct {
	Cmd Command
	// Word is what was typed as the command, for CmdUnknown.
	Word string
	OK   bool
	// Reason says why, on FAILURE.
	Reason string
	// Ring is the ring setup-dht built, leader first (setup-dht SUCCESS).
	Ring []string
	// NewLeader is the leader of the rebuilt ring (dht-rebuilt SUCCESS).
	NewLeader string
	// Answer is the ring's answer to a query (query-dht, Answered set).
	Answer Answer
	// Text is the help text (help).
	Text string
	// Detail follows SUCCESS after a colon (resume: who, where, which
	// state).
	Detail string
}

// ResultWriter is an Out that takes each result as it is instead of its
// text: a driver that runs peers in this process (dht demo, play, bench, the
// tests) reads the fields, and formats a result, if it shows one, with
// String.
type ResultWriter interface {
	WriteResult(Result)
}

// Answer is a ring node's answer to a query.
type Answer struct {
	Answered bool   // a node answered (found or not)
	LongName string // what was asked
	Node     string // the node that answered
	NodeID   int
	Hops     int            // forwards between ring nodes
	Record   dataset.Record // when found (Result.OK)
}

// String is the result as stdout shows it, without the final newline.
func (r Result) String() string { return string(r.AppendText(nil)) }

// AppendText appends the result as stdout shows it: one line that starts
// with the command and SUCCESS or FAILURE (a reason after FAILURE), and for
// a found record one "Header: value" line per field, in file order, bytes
// as they are. There is no final newline.
func (r Result) AppendText(b []byte) []byte {
	if r.Cmd == CmdHelp && r.OK {
		// The result line, then the list.
		b = append(b, "help SUCCESS\n"...)
		return append(b, r.Text...)
	}
	if r.Cmd == CmdUnknown {
		b = appendWord(b, r.Word)
	} else {
		b = append(b, r.Cmd.String()...)
	}
	a := &r.Answer
	switch {
	case !r.OK && a.Answered:
		b = append(b, " FAILURE: "...)
		b = strconv.AppendQuote(b, a.LongName)
		b = append(b, " not found in the DHT (answered by node "...)
		b = append(b, a.Node...)
		b = append(b, ", id "...)
		b = strconv.AppendInt(b, int64(a.NodeID), 10)
		b = append(b, ", after "...)
		b = appendHops(b, a.Hops)
		return append(b, ')')
	case !r.OK:
		b = append(b, " FAILURE: "...)
		return append(b, r.Reason...)
	}
	b = append(b, " SUCCESS"...)
	switch {
	case r.Detail != "":
		b = append(b, ": "...)
		b = append(b, r.Detail...)
	case (r.Cmd == CmdSetupDHT || r.Cmd == CmdHeal) && len(r.Ring) > 0:
		b = append(b, ": ring of "...)
		b = strconv.AppendInt(b, int64(len(r.Ring)), 10)
		b = append(b, ':')
		for _, name := range r.Ring {
			b = append(b, ' ')
			b = append(b, name...)
		}
	case r.Cmd == CmdDHTRebuilt && r.NewLeader != "":
		b = append(b, ": new leader "...)
		b = append(b, r.NewLeader...)
	case a.Answered:
		b = append(b, ": found at node "...)
		b = append(b, a.Node...)
		b = append(b, " (id "...)
		b = strconv.AppendInt(b, int64(a.NodeID), 10)
		b = append(b, ") after "...)
		b = appendHops(b, a.Hops)
		for i, f := range a.Record.Fields() {
			b = append(b, '\n')
			b = append(b, dataset.Headers[i]...)
			b = append(b, ": "...)
			b = append(b, f...)
		}
	}
	return b
}

func appendHops(b []byte, n int) []byte {
	b = strconv.AppendInt(b, int64(n), 10)
	if n == 1 {
		return append(b, " hop"...)
	}
	return append(b, " hops"...)
}

// resultOK and resultFailed build the two plain kinds of result.
func resultOK(c Command) Result { return Result{Cmd: c, OK: true} }

func resultFailed(c Command, reason string) Result { return Result{Cmd: c, Reason: reason} }

// appendWord appends a word typed as a command as it was typed, or quoted
// (Go syntax) if it holds a control character or bytes that are not UTF-8,
// which would reach the terminal reading stdout as they are.
func appendWord(b []byte, word string) []byte {
	if utf8.ValidString(word) && !strings.ContainsFunc(word, func(r rune) bool { return !unicode.IsGraphic(r) }) {
		return append(b, word...)
	}
	return strconv.AppendQuote(b, word)
}
