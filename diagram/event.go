// Package diagram draws time-space (sequence) diagrams of dht runs from
// their structured traces: one lifeline per process, one arrow per datagram
// in causal order, notes for the actions a process takes, and long runs of
// store traffic folded into one labelled arrow.
//
// It is pure: trace events in, Mermaid sequenceDiagram text or SVG bytes
// out. The trace is what `dht server` and `dht peer` write with
// --trace-json, one JSON object per line (see Event).
package diagram

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Directions of an Event.
const (
	DirSend  = "send"  // a datagram written to the socket
	DirRecv  = "recv"  // a datagram read and decoded
	DirEvent = "event" // anything else the process did or saw
)

// Event is one line of a structured trace. Its JSON keys are stable.
type Event struct {
	Time time.Time `json:"time"`
	// Process names the process: "server", or the user name of a peer
	// ("" for a peer's lines before it bound its socket; Read fills it in
	// from the other lines of the same file).
	Process string `json:"process"`
	// Dir is DirSend, DirRecv or DirEvent.
	Dir string `json:"dir"`
	// Event says what happened, for Dir == DirEvent: "input", "print",
	// "persist", or a trace message such as "dropped: not a request".
	Event string `json:"event,omitempty"`
	// Level is the slog level of an event ("DEBUG", "INFO", "WARN", …).
	Level string `json:"level,omitempty"`
	// Local and Remote are the IPv4:port of the process's socket and of
	// the other end.
	Local  string `json:"local,omitempty"`
	Remote string `json:"remote,omitempty"`
	// Type, ID and Flags come from the datagram's header.
	Type  string `json:"type,omitempty"`
	ID    uint32 `json:"id,omitempty"`
	Flags string `json:"flags,omitempty"`
	// Msg holds the main fields of the message body.
	Msg map[string]any `json:"msg,omitempty"`
	// Attrs holds every other attribute of the line.
	Attrs map[string]any `json:"attrs,omitempty"`
}

// Retransmit reports whether the datagram was marked as a retransmission.
func (e *Event) Retransmit() bool { return e.Flags == "retransmit" }

// Read reads one trace file: one Event per line (blank lines skipped).
// Lines without a process are attributed to the one process named in the
// file, if there is exactly one (a peer's trace starts before it knows its
// name).
func Read(r io.Reader) ([]Event, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var evs []Event
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		var e Event
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, fmt.Errorf("line %d: not a line of a --trace-json trace (JSON: %w)", line, err)
		}
		// JSON of another kind: every line of a trace has its time and
		// its direction.
		if e.Time.IsZero() || e.Dir != DirSend && e.Dir != DirRecv && e.Dir != DirEvent {
			return nil, fmt.Errorf("line %d: not a line of a --trace-json trace (it needs \"time\" and \"dir\": send, recv or event)", line)
		}
		evs = append(evs, e)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	name := ""
	for i := range evs {
		switch p := evs[i].Process; {
		case p == "" || p == name:
		case name == "":
			name = p
		default:
			return evs, nil // several processes: leave the unnamed lines alone
		}
	}
	for i := range evs {
		if evs[i].Process == "" {
			evs[i].Process = name
		}
	}
	return evs, nil
}

// str returns m[key] as a string ("" when absent); numbers and booleans
// are formatted.
func str(m map[string]any, key string) string {
	v, ok := m[key]
	if !ok || v == nil {
		return ""
	}
	switch v := v.(type) {
	case string:
		return v
	case float64:
		if v == float64(int64(v)) {
			return fmt.Sprint(int64(v))
		}
		return fmt.Sprint(v)
	}
	return fmt.Sprint(v)
}

// num returns m[key] as an int (0 when absent or not a number).
func num(m map[string]any, key string) int {
	switch v := m[key].(type) {
	case float64:
		return int(v)
	case int:
		return v
	case int64:
		return int(v)
	case uint64:
		return int(v)
	}
	return 0
}

// flag returns m[key] as a bool.
func flag(m map[string]any, key string) bool {
	b, _ := m[key].(bool)
	return b
}
