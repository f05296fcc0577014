package wire

import (
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// layoutSample is one message of a type and the lengths the layout tables
// of docs/DESIGN.md name by letter (n, m, L, ...) as they are in it; cells
// holds the value of a whole size cell the tables give in words (the sum
// over a list, "…" for what follows).
type layoutSample struct {
	msg   Message
	vars  map[string]int
	cells map[string]int
}

func layoutSamples() map[Type]layoutSample {
	member := func(name string) Member {
		return Member{Name: name, Addr: netip.MustParseAddrPort("192.0.2.7:5000")}
	}
	rec := Record{"ABW", "Aruba", "Aruba", "Aruba", "AW", "Aruban florin", "Latin America & Caribbean", "AW", "2010"}
	n := func(name string) map[string]int { return map[string]int{"n": len(name)} }
	return map[Type]layoutSample{
		TypeRegister:         {msg: Register{Name: "alice", Addr: netip.MustParseAddrPort("127.0.0.1:5001")}, vars: n("alice")},
		TypeSetupDHT:         {msg: SetupDHT{N: 4, Name: "bob"}, vars: map[string]int{"m": 3}},
		TypeDHTComplete:      {msg: DHTComplete{Name: "carol"}, vars: n("carol")},
		TypeQueryDHT:         {msg: QueryDHT{Name: "dave"}, vars: n("dave")},
		TypeLeaveDHT:         {msg: LeaveDHT{Name: "erin"}, vars: n("erin")},
		TypeDHTRebuilt:       {msg: DHTRebuilt{Name: "erin", NewLeader: "alice"}, vars: map[string]int{"n": 4, "m": 5}},
		TypeDeregister:       {msg: Deregister{Name: "frank"}, vars: n("frank")},
		TypeTeardownDHT:      {msg: TeardownDHT{Name: "al"}, vars: n("al")},
		TypeTeardownComplete: {msg: TeardownComplete{Name: "alice"}, vars: n("alice")},
		TypeReply: {msg: Reply{Reason: "no", Members: []Member{member("alice"), member("bo")}, State: 2, Epoch: 8, KeyEpoch: 7, Key: Key{1}, Tickets: []Tag{{2}}},
			vars: map[string]int{"r": 2, "k": 2, "s": 7 + 5 + 7 + 2, "c": 16, "t": 1}, cells: map[string]int{"Σ(7+*nᵢ*)": 7 + 5 + 7 + 2}},
		TypeSetID:     {msg: SetID{ID: 1, N: 3, Left: member("alice"), Right: member("bo"), Epoch: 3}, vars: map[string]int{"a": 5, "b": 2}},
		TypeChallenge: {msg: Challenge{Cookie: Tag{1}}},
		TypeTickets:   {msg: Tickets{Name: "alice", From: 30}, vars: n("alice")},
		TypeStore: {msg: Store{N: 3, Records: []Record{rec, rec}},
			vars: map[string]int{"k": 2}, cells: map[string]int{"…": 2 * RecordLen(rec)}},
		TypeFlush: {msg: Flush{Leader: "alice", N: 4, After: []uint32{5, 6}}, vars: map[string]int{"n": 5, "k": 2}},
		TypeQuery: {msg: Query{ReqID: 9, Querier: member("dave"), Hops: 2, LongName: "Aruba"}, vars: map[string]int{"q": 4, "L": 5}},
		TypeQueryResult: {msg: QueryResult{ReqID: 9, Found: true, Node: "bob", NodeID: 1, Hops: 2, LongName: "Aruba", Record: rec},
			vars: map[string]int{"n": 3, "L": 5}, cells: map[string]int{"…": RecordLen(rec)}},
		TypeTeardown:   {msg: Teardown{Origin: "alice", KeepNeighbours: true}, vars: n("alice")},
		TypeTornDown:   {msg: TornDown{Origin: "alice"}, vars: n("alice")},
		TypeCommitted:  {msg: Committed{Leader: "alice"}, vars: n("alice")},
		TypeResetID:    {msg: ResetID{Origin: "erin", N: 3}, vars: n("erin")},
		TypeResetLeft:  {msg: ResetLeft{Left: member("carol")}, vars: n("carol")},
		TypeResetRight: {msg: ResetRight{Right: member("al")}, vars: n("al")},
		TypeRebuildDHT: {msg: RebuildDHT{Leaver: member("erin")}, vars: n("erin")},
		TypeRebuilt:    {msg: Rebuilt{Reason: "why", NewLeader: "bob"}, vars: map[string]int{"r": 3, "n": 3}},
		TypeAck:        {msg: Ack{More: []uint32{2, 3, 4}}, vars: map[string]int{"k": 3}},
		TypeJoinDHT:    {msg: JoinDHT{Name: "grace"}, vars: n("grace")},
		TypeJoin:       {msg: Join{Joiner: member("grace"), N: 3}, vars: map[string]int{"j": 5}},
		TypeAlive:      {msg: Alive{Name: "heidi", PeriodMS: 5000, Epoch: 4, QuitOp: TypeTeardownDHT, Quit: 4, KeyEpoch: 3}, vars: n("heidi")},
		TypePace:       {msg: Pace{PeriodMS: 5000, Gone: 4}},
		TypeHeal: {msg: Heal{Epoch: 3, Members: []Member{member("bob"), member("carol")}, KeyEpoch: 2, Tickets: []Tag{{1}, {2}}},
			vars: map[string]int{"s": 7 + 3 + 7 + 5, "t": 2}, cells: map[string]int{"Σ(7+*nᵢ*)": 7 + 3 + 7 + 5}},
		TypeHealed: {msg: Healed{Name: "bob", Epoch: 3}, vars: n("bob")},
		TypeBroken: {msg: Broken{Node: member("carol"), What: TypeTeardown, Epoch: 4}, vars: n("carol")},
	}
}

var (
	layoutHeading = regexp.MustCompile(`^#### (.*)$`)
	layoutTypeNum = regexp.MustCompile(`(?:^|, )(\d+) [a-z-]+`)
	layoutTotal   = regexp.MustCompile(`^Total (\S+) bytes\.`)
	layoutTerm    = regexp.MustCompile(`^(\d*)\*([^*]+)\*$`)
)

// evalCell is a table cell's number of bytes for sample s: a sum of
// numbers and letters (a letter may carry a factor, as in 4*k*), or a cell
// s gives as a whole.
func evalCell(s layoutSample, cell string) (int, bool) {
	if v, ok := s.cells[cell]; ok {
		return v, true
	}
	total := 0
	for _, term := range strings.Split(cell, "+") {
		if v, err := strconv.Atoi(term); err == nil {
			total += v
			continue
		}
		m := layoutTerm.FindStringSubmatch(term)
		if m == nil {
			return 0, false
		}
		v, ok := s.vars[m[2]]
		if !ok {
			return 0, false
		}
		factor := 1
		if m[1] != "" {
			factor, _ = strconv.Atoi(m[1])
		}
		total += factor * v
	}
	return total, true
}

// The byte layouts of docs/DESIGN.md §3 agree with the encoder. For every
// message type a heading names, a sample message of that type is encoded:
// the table's rows start at the header's end (9) and each where the one
// before ends, the last ends where the datagram does, and the Total line,
// where there is one, is the datagram's length. Every type has a table.
func TestDesignDocLayouts(t *testing.T) {
	doc, err := os.ReadFile("../docs/DESIGN.md")
	if err != nil {
		t.Fatal(err)
	}
	samples := layoutSamples()
	seen := map[Type]bool{}
	lines := strings.Split(string(doc), "\n")
	for i := 0; i < len(lines); i++ {
		h := layoutHeading.FindStringSubmatch(lines[i])
		if h == nil {
			continue
		}
		var types []Type
		for _, m := range layoutTypeNum.FindAllStringSubmatch(h[1], -1) {
			v, _ := strconv.Atoi(m[1])
			types = append(types, Type(v))
		}
		if len(types) == 0 {
			t.Fatalf("heading %q names no message type", lines[i])
		}
		// The table: rows of | offset | size | field | meaning |, then the
		// Total line if any, before the next heading.
		var rows [][2]string
		total := ""
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "#"); i++ {
			if m := layoutTotal.FindStringSubmatch(lines[i]); m != nil {
				total = m[1]
			}
			cells := strings.Split(lines[i], "|")
			if len(cells) < 4 || !strings.HasPrefix(lines[i], "| ") {
				continue
			}
			off, size := strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])
			if off == "offset" {
				continue
			}
			rows = append(rows, [2]string{off, size})
		}
		i--
		for _, typ := range types {
			s, ok := samples[typ]
			if !ok {
				t.Errorf("%q: no sample of type %d to check it with", h[1], typ)
				continue
			}
			seen[typ] = true
			dg, err := Append(nil, 1, 0, s.msg)
			if err != nil {
				t.Fatalf("type %d: %v", typ, err)
			}
			at := HeaderLen
			for _, r := range rows {
				off, ok1 := evalCell(s, r[0])
				size, ok2 := evalCell(s, r[1])
				if !ok1 || !ok2 {
					t.Errorf("%q, type %d: row %q | %q: cannot evaluate", h[1], typ, r[0], r[1])
					break
				}
				if off != at {
					t.Errorf("%q, type %d: row %q | %q starts at %d, the row before ends at %d", h[1], typ, r[0], r[1], off, at)
				}
				at = off + size
			}
			if at != len(dg) {
				t.Errorf("%q, type %d: the rows end at %d; the sample %+v encodes to %d bytes", h[1], typ, at, s.msg, len(dg))
			}
			if total != "" {
				if v, ok := evalCell(s, total); !ok || v != len(dg) {
					t.Errorf("%q, type %d: Total %s is %d; the sample %+v encodes to %d bytes", h[1], typ, total, v, s.msg, len(dg))
				}
			}
		}
	}
	for typ := range samples {
		if !seen[typ] {
			t.Errorf("DESIGN.md has no layout table for type %d", typ)
		}
	}
}

// The worked example under the header's table in docs/DESIGN.md is the
// encoder's bytes: a first register of alice at 127.0.0.1:5001 with id
// 0x01020304, its length as the text gives it, and its retransmission
// differing only in the flags byte.
func TestDesignDocHeaderExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/DESIGN.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)Example, a first `register alice 127\\.0\\.0\\.1 5001` with id 0x01020304.*?`([0-9a-f ×|]+)`\\s*\\((\\d+) bytes\\); its retransmission differs only in the flags byte \\(`(\\d\\d)`\\)").FindSubmatch(doc)
	if m == nil {
		t.Fatal("DESIGN.md has no worked example of the header")
	}
	var want []byte
	fields := strings.Fields(strings.ReplaceAll(string(m[1]), "|", " "))
	for i := 0; i < len(fields); i++ {
		v, err := strconv.ParseUint(fields[i], 16, 8)
		if err != nil {
			t.Fatalf("byte %q: %v", fields[i], err)
		}
		times := 1
		if i+1 < len(fields) && strings.HasPrefix(fields[i+1], "×") {
			times, _ = strconv.Atoi(strings.TrimPrefix(fields[i+1], "×"))
			i++
		}
		for range times {
			want = append(want, byte(v))
		}
	}
	reg := Register{Name: "alice", Addr: netip.MustParseAddrPort("127.0.0.1:5001")}
	got, err := Append(nil, 0x01020304, 0, reg)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("the example reads\n% x\nthe encoder gives\n% x", want, got)
	}
	if n, _ := strconv.Atoi(string(m[2])); n != len(got) {
		t.Errorf("the example says %d bytes; the encoder gives %d", n, len(got))
	}
	again, err := Append(nil, 0x01020304, FlagRetransmit, reg)
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := strconv.ParseUint(string(m[3]), 16, 8); again[8] != byte(f) || string(again[:8]) != string(got[:8]) || string(again[9:]) != string(got[9:]) {
		t.Errorf("the retransmission is % x; the example says flags %s", again, m[3])
	}
}
