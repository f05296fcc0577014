package diagram

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2020, 2, 2, 12, 0, 0, 0, time.UTC)

// trace builds events for tests: each call adds one, a microsecond after
// the previous.
type trace struct {
	evs []Event
	now time.Time
}

func (tr *trace) add(e Event) *trace {
	if tr.now.IsZero() {
		tr.now = t0
	}
	tr.now = tr.now.Add(time.Microsecond)
	if e.Time.IsZero() {
		e.Time = tr.now
	}
	tr.evs = append(tr.evs, e)
	return tr
}

var addrs = map[string]string{"server": "0.0.0.0:4000", "alice": "127.0.0.1:5001", "bob": "127.0.0.1:5002", "carol": "127.0.0.1:5003"}

// dgram adds the send at from and the receipt at to of one datagram.
func (tr *trace) dgram(from, to, typ string, id uint32, msg map[string]any) *trace {
	tr.send(from, to, typ, id, msg)
	return tr.recv(from, to, typ, id, msg)
}

func (tr *trace) send(from, to, typ string, id uint32, msg map[string]any) *trace {
	return tr.add(Event{Process: from, Dir: DirSend, Local: addrs[from], Remote: dial(to), Type: typ, ID: id, Msg: msg})
}

func (tr *trace) recv(from, to, typ string, id uint32, msg map[string]any) *trace {
	return tr.add(Event{Process: to, Dir: DirRecv, Local: addrs[to], Remote: dial(from), Type: typ, ID: id, Msg: msg})
}

func (tr *trace) note(proc, event string, attrs map[string]any) *trace {
	return tr.add(Event{Process: proc, Dir: DirEvent, Event: event, Level: "DEBUG", Local: addrs[proc], Attrs: attrs})
}

// dial is the address others send to: the server listens on 0.0.0.0.
func dial(proc string) string {
	if proc == "server" {
		return "127.0.0.1:4000"
	}
	return addrs[proc]
}

func build(t *testing.T, opt Options, files ...[]Event) *Diagram {
	t.Helper()
	d, err := Build(files, opt)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// arrows renders d's items one a line, for comparison.
func lines(d *Diagram) []string {
	var out []string
	for _, it := range d.Items {
		text := strings.Join(it.Text(), " / ")
		switch {
		case it.Kind == Note:
			out = append(out, fmt.Sprintf("%s: %s", d.Lifelines[it.From], text))
		default:
			arrow := "->"
			switch it.Kind {
			case Response:
				arrow = "-->"
			case Ack:
				arrow = "~~>"
			}
			if it.Lost {
				arrow += "x"
			}
			out = append(out, fmt.Sprintf("%s %s %s: %s", d.Lifelines[it.From], arrow, d.Lifelines[it.To], text))
		}
	}
	return out
}

func wantLines(t *testing.T, d *Diagram, want ...string) {
	t.Helper()
	got := lines(d)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("items:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestRequestReplyAndNotes(t *testing.T) {
	tr := &trace{}
	tr.note("alice", "input", map[string]any{"line": "register alice 127.0.0.1 5001"})
	tr.send("alice", "server", "register", 7, map[string]any{"name": "alice", "addr": "127.0.0.1:5001"})
	tr.recv("alice", "server", "register", 7, map[string]any{"name": "alice", "addr": "127.0.0.1:5001"})
	tr.note("server", "persist", map[string]any{"users": "alice:Free", "dht": "none"})
	tr.dgram("server", "alice", "reply", 7, map[string]any{"ok": true})
	tr.note("alice", "persist", map[string]any{"records": 0.0, "clear": false, "in_ring": false})
	tr.note("alice", "print", map[string]any{"line": "register SUCCESS"})
	d := build(t, Options{}, tr.evs)
	if got := strings.Join(d.Lifelines, ","); got != "server,alice" {
		t.Fatalf("lifelines %s, want the server first", got)
	}
	wantLines(t, d,
		"alice: $ register alice 127.0.0.1 5001",
		"alice -> server: register alice 127.0.0.1:5001",
		"server: db: alice Free",
		"server --> alice: SUCCESS",
		"alice: db: save identity, in no ring / register SUCCESS",
	)
}

// A receipt is drawn after its sending even when the receiver's clock is
// behind; each process keeps its own order.
func TestCausalOrderAcrossFiles(t *testing.T) {
	alice := (&trace{}).send("alice", "bob", "set-id", 1, map[string]any{"node_id": 1.0, "ring": 2.0, "left": "alice@x", "right": "alice@x"})
	bob := &trace{now: t0.Add(-time.Second)} // bob's clock is a second behind
	bob.note("bob", "print", map[string]any{"line": "before"})
	bob.recv("alice", "bob", "set-id", 1, map[string]any{"node_id": 1.0, "ring": 2.0, "left": "alice@x", "right": "alice@x"})
	bob.send("bob", "alice", "ack", 1, nil)
	alice.recv("bob", "alice", "ack", 1, nil)
	d := build(t, Options{Acks: AcksShow}, bob.evs, alice.evs)
	wantLines(t, d,
		"bob: before",
		"alice -> bob: set-id: id 1 in a ring of 2, left alice, right alice",
		"bob ~~> alice: ack",
	)
}

func TestLostDuplicateRetransmitAndUnknownPeer(t *testing.T) {
	tr := &trace{}
	tr.send("alice", "bob", "teardown", 9, map[string]any{"origin": "alice"}) // lost
	tr.add(Event{Process: "alice", Dir: DirSend, Local: addrs["alice"], Remote: addrs["bob"], Type: "teardown", ID: 9, Flags: "retransmit", Msg: map[string]any{"origin": "alice"}})
	tr.add(Event{Process: "bob", Dir: DirRecv, Local: addrs["bob"], Remote: addrs["alice"], Type: "teardown", ID: 9, Flags: "retransmit", Msg: map[string]any{"origin": "alice"}})
	tr.add(Event{Process: "bob", Dir: DirRecv, Local: addrs["bob"], Remote: addrs["alice"], Type: "teardown", ID: 9, Flags: "retransmit", Msg: map[string]any{"origin": "alice"}}) // a network duplicate
	tr.send("bob", "carol", "teardown", 3, map[string]any{"origin": "alice"})                                                                                                      // carol wrote no trace
	d := build(t, Options{}, tr.evs)
	wantLines(t, d,
		"alice ->x bob: teardown from alice [lost]",
		"alice -> bob: teardown from alice [retransmit]",
		"alice -> bob: teardown from alice [retransmit] [duplicate]",
		"bob -> 127.0.0.1:5003: teardown from alice",
	)
	if !d.Items[0].Lost || d.Items[1].Lost {
		t.Fatalf("lost flags: %+v", d.Items[:2])
	}
}

func TestFoldStores(t *testing.T) {
	tr := &trace{}
	tr.dgram("alice", "bob", "set-id", 1, nil).dgram("bob", "alice", "ack", 1, nil)
	for i := uint32(10); i < 16; i++ {
		tr.dgram("alice", "bob", "store", i, map[string]any{"records": 10.0})
		if i%2 == 0 {
			tr.dgram("bob", "carol", "store", 100+i, map[string]any{"records": 4.0})
			tr.dgram("carol", "bob", "ack", 100+i, nil)
		}
		tr.dgram("bob", "alice", "ack", i, nil)
	}
	// A retransmission (its ack was lost) carries the same records again.
	re := Event{Process: "alice", Dir: DirSend, Local: addrs["alice"], Remote: addrs["bob"], Type: "store", ID: 15, Flags: "retransmit", Msg: map[string]any{"records": 10.0}}
	tr.add(re)
	re.Process, re.Dir, re.Local, re.Remote = "bob", DirRecv, addrs["bob"], addrs["alice"]
	tr.add(re)
	tr.dgram("alice", "bob", "flush", 20, map[string]any{"leader": "alice"})
	tr.dgram("bob", "alice", "ack", 20, nil)

	d := build(t, Options{Acks: AcksShow}, tr.evs)
	wantLines(t, d,
		"alice -> bob: set-id: id  in a ring of , left , right ",
		"bob ~~> alice: ack",
		"alice -> bob: store ×7 (60 records) [1 retransmitted]",
		"bob -> carol: store ×3 (12 records)",
		"carol ~~> bob: ack ×3",
		"bob ~~> alice: ack ×6",
		"alice -> bob: flush of alice's round",
		"bob ~~> alice: ack",
	)
	if d.Items[2].Count != 7 {
		t.Fatalf("folded count %d, want 7", d.Items[2].Count)
	}
	if n := len(build(t, Options{Fold: -1, Acks: AcksShow}, tr.evs).Items); n != 2+6*2+3*2+1+2 {
		t.Fatalf("unfolded: %d items", n)
	}
	if n := len(build(t, Options{Fold: 100, Acks: AcksShow}, tr.evs).Items); n != 2+6*2+3*2+1+2 {
		t.Fatalf("run shorter than Fold: %d items, want it unfolded", n)
	}
	// With the acks folded into what they acknowledge, the stores' runs
	// meet; the retransmission came after the last ack.
	wantLines(t, build(t, Options{}, tr.evs),
		"alice -> bob: set-id: id  in a ring of , left , right  · acked",
		"alice -> bob: store ×7 (60 records) [1 retransmitted] · 6 of 7 acked",
		"bob -> carol: store ×3 (12 records) · all acked",
		"alice -> bob: flush of alice's round · acked",
	)
}

func TestAckModes(t *testing.T) {
	tr := &trace{}
	setID := map[string]any{"node_id": 1.0, "ring": 3.0, "left": "alice@x", "right": "carol@x"}
	tr.dgram("alice", "bob", "set-id", 1, setID)
	tr.dgram("alice", "bob", "teardown", 2, map[string]any{"origin": "alice"})
	tr.dgram("bob", "alice", "ack", 1, map[string]any{"more": "[2]"}) // one ack for both, as the trace writes it
	tr.dgram("carol", "alice", "ack", 9, nil)                         // acknowledges nothing drawn
	for _, tc := range []struct {
		mode AckMode
		want []string
	}{
		{AcksFold, []string{
			"alice -> bob: set-id: id 1 in a ring of 3, left alice, right carol · acked",
			"alice -> bob: teardown from alice · acked",
			"carol ~~> alice: ack",
		}},
		{AcksShow, []string{
			"alice -> bob: set-id: id 1 in a ring of 3, left alice, right carol",
			"alice -> bob: teardown from alice",
			"bob ~~> alice: ack",
			"carol ~~> alice: ack",
		}},
		{AcksHide, []string{
			"alice -> bob: set-id: id 1 in a ring of 3, left alice, right carol",
			"alice -> bob: teardown from alice",
		}},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			wantLines(t, build(t, Options{Acks: tc.mode}, tr.evs), tc.want...)
		})
	}
	for _, s := range []string{"fold", "show", "hide"} {
		if m, err := ParseAckMode(s); err != nil || m.String() != s {
			t.Errorf("ParseAckMode(%q) = %v, %v", s, m, err)
		}
	}
	if _, err := ParseAckMode("lighter"); err == nil {
		t.Error("ParseAckMode accepts \"lighter\"")
	}
}

// A run that meets the ring's members out of id order draws them in id
// order after the server, the users outside the ring last; the ids are
// those held when the diagram starts.
func TestRingOrder(t *testing.T) {
	addrs["dave"], addrs["eve"] = "127.0.0.1:5004", "127.0.0.1:5005"
	defer delete(addrs, "dave")
	defer delete(addrs, "eve")
	tr := &trace{}
	inRing := func(p string, id int) {
		tr.note(p, "persist", map[string]any{"records": 0.0, "in_ring": true, "node_id": float64(id), "ring": 4.0, "left": "x", "right": "y"})
	}
	inRing("alice", 0)
	inRing("dave", 3)
	inRing("carol", 2)
	inRing("bob", 1)
	tr.note("eve", "input", map[string]any{"line": "query-dht eve X"})
	tr.dgram("eve", "server", "query-dht", 1, map[string]any{"name": "eve"})
	tr.dgram("server", "eve", "reply", 1, map[string]any{"ok": true, "members": "dave@127.0.0.1:5004"})
	tr.dgram("eve", "dave", "query", 2, map[string]any{"long_name": "X"})
	tr.dgram("dave", "alice", "query", 2, map[string]any{"long_name": "X", "hops": 1.0})
	tr.dgram("alice", "bob", "query", 2, map[string]any{"long_name": "X", "hops": 2.0})
	tr.dgram("bob", "carol", "query", 2, map[string]any{"long_name": "X", "hops": 3.0})
	// bob leaves afterwards: the order keeps the ids it started with.
	tr.note("carol", "persist", map[string]any{"records": 0.0, "in_ring": true, "node_id": 0.0, "ring": 3.0, "left": "x", "right": "y"})
	m, err := ParseMatch("eve:event:input")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		order Order
		want  string
	}{
		{OrderRing, "server,alice,bob,carol,dave,eve"},
		{OrderAppearance, "server,eve,dave,alice,bob,carol"},
	} {
		d := build(t, Options{From: m, Order: tc.order}, tr.evs)
		if got := strings.Join(d.Lifelines, ","); got != tc.want {
			t.Errorf("order %s: lifelines %s, want %s", tc.order, got, tc.want)
		}
		// A reply says what it means for the request it answers.
		if got := lines(d)[2]; got != "server --> eve: SUCCESS: ask dave" {
			t.Errorf("the reply to query-dht reads %q", got)
		}
	}
	// Without the peers' own lines, set-id tells the ids: the receiver's,
	// and its neighbours'.
	tr = &trace{}
	tr.dgram("alice", "carol", "set-id", 1, map[string]any{"node_id": 2.0, "ring": 3.0, "left": "bob@x", "right": "alice@x"})
	tr.dgram("alice", "bob", "set-id", 2, map[string]any{"node_id": 1.0, "ring": 3.0, "left": "alice@x", "right": "carol@x"})
	tr.dgram("alice", "server", "dht-complete", 3, map[string]any{"name": "alice"})
	if got := strings.Join(build(t, Options{}, tr.evs).Lifelines, ","); got != "server,alice,bob,carol" {
		t.Errorf("lifelines %s, want server,alice,bob,carol", got)
	}
}

// The ring messages that come back to where they started say what their
// return means.
func TestReturnLabels(t *testing.T) {
	for _, tc := range []struct {
		typ      string
		msg      map[string]any
		to, want string
	}{
		{"reset-id", map[string]any{"origin": "bob", "node_id": 1.0, "ring": 2.0}, "alice", "reset-id from bob: id 1 in a ring of 2"},
		{"reset-id", map[string]any{"origin": "bob", "node_id": 2.0, "ring": 2.0}, "bob", "reset-id back at bob: renumbering complete, ring of 2"},
		{"flush", map[string]any{"leader": "alice"}, "bob", "flush of alice's round"},
		{"flush", map[string]any{"leader": "alice"}, "alice", "flush back at alice: every record received"},
		{"committed", map[string]any{"leader": "alice"}, "alice", "committed back at alice: every table on disk"},
		{"committed", map[string]any{"leader": "alice"}, "bob", "committed: every table from alice's to the sender's on disk"},
		{"teardown", map[string]any{"origin": "alice"}, "alice", "teardown back at alice"},
		{"torn-down", map[string]any{"origin": "alice"}, "alice", "torn-down back at alice: every table emptied on disk"},
		{"teardown", map[string]any{"origin": "bob", "keep_neighbours": true}, "carol", "teardown from bob, keep neighbours"},
		{"join", map[string]any{"joiner": "dave@192.0.2.14:5000", "ring": 3.0}, "alice", "join: take dave in, ring of 3 → 4"},
		{"teardown", map[string]any{"origin": "bob", "keep_neighbours": true}, "bob", "teardown back at bob: every other table cleared"},
	} {
		if got := label(&Event{Type: tc.typ, Msg: tc.msg}, tc.to, ""); got != tc.want {
			t.Errorf("%s to %s: %q, want %q", tc.typ, tc.to, got, tc.want)
		}
	}
}

func TestFrom(t *testing.T) {
	tr := &trace{}
	tr.note("alice", "persist", map[string]any{"records": 0.0, "in_ring": true, "node_id": 0.0, "ring": 3.0, "left": "carol", "right": "bob"})
	tr.note("alice", "input", map[string]any{"line": "one"})
	tr.note("bob", "print", map[string]any{"line": "x"})
	tr.note("alice", "input", map[string]any{"line": "two"})
	tr.note("alice", "persist", map[string]any{"records": 0.0, "clear": true, "in_ring": false, "left": "", "right": ""})
	m, err := ParseMatch("alice:event:input@2")
	if err != nil {
		t.Fatal(err)
	}
	d := build(t, Options{From: m}, tr.evs)
	// The persist before the window still counts: the note says what changed.
	wantLines(t, d, "alice: $ two / db: clear table / forget id / forget neighbours")
	if _, err := Build([][]Event{tr.evs}, Options{From: Match{Process: "nobody"}}); err == nil {
		t.Fatal("a --from that matches nothing must fail")
	}
}

func TestParseMatch(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Match
		ok   bool
	}{
		{"carol:send:flush", Match{"carol", "send", "flush", 1}, true},
		{"::teardown", Match{"", "", "teardown", 1}, true},
		{"bob:event:input@3", Match{"bob", "event", "input", 3}, true},
		{"bob:send", Match{}, false},
		{"bob:sent:x", Match{}, false},
		{"bob:send:x@0", Match{}, false},
		{"bob:send:x@y", Match{}, false},
	} {
		got, err := ParseMatch(tc.in)
		if (err == nil) != tc.ok || tc.ok && got != tc.want {
			t.Errorf("ParseMatch(%q) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok && got.String() != tc.in {
			t.Errorf("String() = %q, want %q", got.String(), tc.in)
		}
	}
}

func TestServerNotes(t *testing.T) {
	tr := &trace{}
	tr.note("server", "persist", map[string]any{"users": "alice:Free,bob:Free", "dht": "none"})
	tr.dgram("server", "alice", "reply", 1, map[string]any{"ok": true}) // keeps the notes apart
	tr.note("server", "persist", map[string]any{"users": "alice:Leader,bob:InDHT", "dht": "building", "members": "alice,bob", "leader": "alice"})
	tr.dgram("server", "alice", "reply", 2, map[string]any{"ok": false, "reason": "r"})
	tr.note("server", "persist", map[string]any{"users": "alice:Leader", "dht": "building", "members": "alice,bob", "leader": "alice"})
	tr.note("server", "persist", map[string]any{"users": "alice:Leader", "dht": "building", "members": "alice,bob", "leader": "alice"})
	d := build(t, Options{}, tr.evs)
	wantLines(t, d,
		"server: db: alice Free, bob Free",
		"server --> alice: SUCCESS",
		"server: db: alice Leader, bob InDHT / DHT building [alice bob]",
		"server --> alice: FAILURE: r",
		"server: db: bob removed / db: save",
	)
}

func TestRead(t *testing.T) {
	in := `{"time":"2020-02-02T12:00:00Z","process":"","dir":"event","event":"input","attrs":{"line":"register bob 127.0.0.1 5002"}}

{"time":"2020-02-02T12:00:01Z","process":"bob","dir":"send","local":"127.0.0.1:5002","remote":"127.0.0.1:4000","type":"register","id":4294967295,"msg":{"name":"bob"}}
`
	evs, err := Read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Process != "bob" || evs[1].ID != 4294967295 || str(evs[1].Msg, "name") != "bob" {
		t.Fatalf("read %+v", evs)
	}
	if _, err := Read(strings.NewReader("{\"time\":\n")); err == nil || !strings.Contains(err.Error(), "line 1: not a line of a --trace-json trace (JSON: ") {
		t.Fatalf("a broken line: %v", err)
	}
	// Two processes in one file: unnamed lines stay unnamed.
	line := func(process string) string {
		return `{"time":"2020-02-02T12:00:00Z","dir":"event","process":"` + process + `"}` + "\n"
	}
	two := line("") + line("a") + line("b")
	if evs, err := Read(strings.NewReader(two)); err != nil || evs[0].Process != "" {
		t.Fatalf("unnamed line given to %q (%v)", evs[0].Process, err)
	}
	// JSON that is no trace's (a new user's review: it drew a diagram of
	// one empty note).
	for _, other := range []string{`{"a":1}`, `{"time":"2020-02-02T12:00:00Z"}`, `{"dir":"send"}`, `{"time":"2020-02-02T12:00:00Z","dir":"sideways"}`, `[]`, `"x"`} {
		if _, err := Read(strings.NewReader(line("a") + other + "\n")); err == nil || !strings.Contains(err.Error(), "line 2: not a line of a --trace-json trace") {
			t.Errorf("%s: %v", other, err)
		}
	}
}

func TestMermaid(t *testing.T) {
	d := &Diagram{
		Title:     "a # title; here",
		Lifelines: []string{"server", "end", "127.0.0.1:9"},
		Items: []Item{
			{Kind: Message, From: 1, To: 0, Lines: []string{"FAILURE: a; b #1 <x> 50%"}},
			{Kind: Response, From: 0, To: 1, Lines: []string{"ack", "two"}},
			{Kind: Message, From: 1, To: 2, Lines: []string{"gone"}, Lost: true},
			{Kind: Response, From: 2, To: 1, Lines: []string{"gone too"}, Lost: true},
			{Kind: Note, From: 2, To: 2, Lines: []string{"note"}},
		},
	}
	want := `sequenceDiagram
    title a   title, here
    participant server
    participant p1 as end
    participant p2 as 127.0.0.1:9
    p1->>server: FAILURE: a#59; b #35;1 #lt;x#gt; 50#37;
    server-->>p1: ack<br/>two
    p1-xp2: gone
    p2--xp1: gone too
    Note over p2: note
`
	if got := string(d.Mermaid()); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

// The SVG is well-formed XML, escapes text, and draws every lifeline and
// label.
func TestSVG(t *testing.T) {
	d := &Diagram{
		Title:     "t <&>",
		Lifelines: []string{"server", "alice"},
		Items: []Item{
			{Kind: Message, From: 1, To: 0, Lines: []string{"query \"A & B\" <1>"}, Count: 1},
			{Kind: Response, From: 0, To: 1, Lines: []string{"store ×3"}, Count: 3},
			{Kind: Message, From: 1, To: 1, Lines: []string{"self"}, Count: 1},
			{Kind: Message, From: 1, To: 0, Lines: []string{"lost"}, Lost: true, Count: 1},
			{Kind: Note, From: 0, To: 0, Lines: []string{"db: x", "warn"}, Warn: true},
		},
	}
	svg := d.SVG()
	dec := xml.NewDecoder(bytes.NewReader(svg))
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, svg)
		}
		if cd, ok := tok.(xml.CharData); ok {
			text.Write(cd)
		}
	}
	for _, s := range []string{"t <&>", "server", "alice", `query "A & B" <1>`, "store ×3", "self", "lost", "db: x", "warn"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("SVG text lacks %q", s)
		}
	}
	if !bytes.Equal(svg, d.SVG()) {
		t.Fatal("SVG is not deterministic")
	}
}

func TestWrap(t *testing.T) {
	for _, tc := range []struct {
		in    string
		width int
		want  []string
	}{
		{"short", 10, []string{"short"}},
		{"db: alice InDHT, bob Free, carol Leader", 38, []string{"db: alice InDHT, bob Free,", "carol Leader"}},
		{"one two three four", 9, []string{"one two", "three", "four"}},
		{"abcdefghijkl", 5, []string{"abcde", "fghij", "kl"}},
		{"tab\there\xff", 20, []string{"tab here\uFFFD"}},
		{"ünïcödé wörds", 7, []string{"ünïcödé", "wörds"}},
	} {
		got := wrap(tc.in, tc.width)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("wrap(%q, %d) = %q, want %q", tc.in, tc.width, got, tc.want)
		}
	}
}
