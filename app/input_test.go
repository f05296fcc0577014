package app_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"dht/app"
	"dht/internal/loopback"
	"dht/store"
)

// typeAtOnce types every line at user's peer before the network carries
// anything, as a pipe or a file delivers them, then runs the network until
// the peer has finished them all. It returns what the peer printed.
func typeAtOnce(t *testing.T, s *simNet, user string, lines []string) []string {
	t.Helper()
	p := s.Process(user)
	before := len(p.Printed)
	for _, l := range lines {
		s.input(user, l)
	}
	for !p.Core.Idle() {
		if !s.step() {
			t.Fatalf("seed %d: %s: %q never finished (printed %q)", s.Seed(), user, lines, texts(p.Printed[before:]))
		}
	}
	return texts(p.Printed[before:])
}

// typeOneByOne types each line once the peer has done what it can with the
// one before, as a person at a terminal does.
func typeOneByOne(t *testing.T, s *simNet, user string, lines []string) []string {
	t.Helper()
	var out []string
	for _, l := range lines {
		out = append(out, s.do(user, l)...)
	}
	return out
}

// A query-dht typed without its Long Name takes the next line as the Long
// Name once the server has answered SUCCESS, and only then: refused, it
// takes none, and the next line is a command. Blank lines and comments are
// skipped there too (SPEC §5: they are skipped, and no Long Name is blank
// or begins with #). The lines are taken in the order they came, the same
// whether they came at once or one by one.
func TestQueryLongNameOnTheNextLine(t *testing.T) {
	type typing func(*testing.T, *simNet, string, []string) []string
	ways := []struct {
		name string
		do   typing
	}{{"at once", typeAtOnce}, {"one by one", typeOneByOne}}
	// record is the result of a query that found longName: its first line
	// and the Long Name line of the record.
	found := func(longName string) string { return "query-dht SUCCESS\nLong Name: " + longName }
	summary := func(out []string) []string {
		var got []string
		for _, o := range out {
			first, rest, _ := strings.Cut(o, "\n")
			if strings.HasPrefix(first, "query-dht SUCCESS") {
				for _, l := range strings.Split(rest, "\n") {
					if strings.HasPrefix(l, "Long Name: ") {
						first = "query-dht SUCCESS\n" + l
					}
				}
			}
			got = append(got, first)
		}
		return got
	}
	for _, w := range ways {
		t.Run("in a DHT/"+w.name, func(t *testing.T) {
			s, _ := ringOfFour(t, 3)
			free := freeUser(s)
			lines := []string{
				"query-dht " + free,
				"Aruba",
				"# a comment where a command would come",
				"",
				"query-dht " + free,
				"# a comment is no Long Name",
				"",
				"Republic of Chile",
				"query-dht " + free + " Kingdom of Spain",
				"query-dht " + free,
				"Kingdom of Atlantis",
			}
			want := []string{
				found("Aruba"),
				found("Republic of Chile"),
				found("Kingdom of Spain"),
				`query-dht FAILURE: "Kingdom of Atlantis" not found in the DHT`,
			}
			got := summary(w.do(t, s, free, lines))
			if len(got) != len(want) {
				t.Fatalf("printed %q, want %q", got, want)
			}
			for i := range want {
				if !strings.HasPrefix(got[i], want[i]) {
					t.Fatalf("result %d: %q, want %q (all: %q)", i, got[i], want[i], got)
				}
			}
		})
		t.Run("no DHT/"+w.name, func(t *testing.T) {
			s := newSim(t, 3)
			setupFive(t, s)
			lines := []string{"query-dht bob", "Aruba", "query-dht bob Aruba", "", "# comment", "sleep 1ms", "help"}
			want := []string{
				"query-dht FAILURE: no DHT exists",
				"Aruba FAILURE: unknown command (type help for the list)",
				"query-dht FAILURE: no DHT exists",
				"sleep SUCCESS", // every command prints its line (SPEC §5)
				"help SUCCESS",
			}
			if got := summary(w.do(t, s, "bob", lines)); !slices.Equal(got, want) {
				t.Fatalf("printed %q, want %q", got, want)
			}
		})
	}
}

// Input that ends before the Long Name of a query-dht typed without one
// fails the query, saying so, whether it ends once the server said
// SUCCESS or before its answer came; a query-dht the server refused needs
// no Long Name, and says the server's reason.
func TestInputEndsBeforeTheLongName(t *testing.T) {
	s, _ := ringOfFour(t, 3)
	free := freeUser(s)
	p := s.Process(free)
	ended := "query-dht FAILURE: input ended before the Long Name"

	// Once the server said SUCCESS: the peer waits for the next line.
	before := len(p.Printed)
	if out := s.do(free, "query-dht "+free); len(out) != 0 || !p.Core.WantsLongName() {
		t.Fatalf("printed %q, waits for a Long Name: %v", out, p.Core.WantsLongName())
	}
	if err := s.EndOfInput(free); err != nil {
		t.Fatal(err)
	}
	if got := texts(p.Printed[before:]); !slices.Equal(got, []string{ended}) {
		t.Fatalf("printed %q, want %q", got, ended)
	}

	// Before the server's answer came.
	s2, _ := ringOfFour(t, 3)
	p = s2.Process(free)
	before = len(p.Printed)
	s2.input(free, "query-dht "+free)
	if err := s2.EndOfInput(free); err != nil {
		t.Fatal(err)
	}
	for !p.Core.Idle() {
		if !s2.step() {
			t.Fatalf("the query never ended (printed %q)", texts(p.Printed[before:]))
		}
	}
	if got := texts(p.Printed[before:]); !slices.Equal(got, []string{ended}) {
		t.Fatalf("printed %q, want %q", got, ended)
	}

	// Refused by the server: its reason, not the end of input.
	member := memberWithID(s2, 1)
	p = s2.Process(member)
	before = len(p.Printed)
	s2.input(member, "query-dht "+member)
	if err := s2.EndOfInput(member); err != nil {
		t.Fatal(err)
	}
	for !p.Core.Idle() {
		if !s2.step() {
			t.Fatalf("the query never ended (printed %q)", texts(p.Printed[before:]))
		}
	}
	if got := texts(p.Printed[before:]); len(got) != 1 || !strings.HasPrefix(got[0], "query-dht FAILURE: "+member+" maintains the DHT") {
		t.Fatalf("printed %q, want the server's refusal", got)
	}
}

// The end of input is no surprise: a registered peer says on Notes that it
// goes on serving (an unregistered one exits: see
// TestRunnerRefusedRegisterFreesItsAddress).
// A line longer than MaxInputLine is refused with a result line, as any
// command, starting with the word it began with, and the lines after it
// are read as usual.
func TestRunnerInputEndAndLongLines(t *testing.T) {
	server, _ := startServer(t)
	ports, err := loopback.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	input := strings.Join([]string{
		"help " + strings.Repeat("y", 3*app.MaxInputLine),
		fmt.Sprintf("register zed 127.0.0.1 %d", ports[0]),
		"query-dht zed",
		strings.Repeat("x", app.MaxInputLine+1), // a command of its own: the query-dht was refused
		"query-dht zed " + strings.Repeat("z", 2000),
	}, "\r\n") // without a final line end
	out := make(chan printed, 16)
	notes := make(chan printed, 16)
	dir := t.TempDir()
	r := &app.PeerRunner{
		Core:  app.NewPeer(app.PeerConfig{Server: server}),
		Lines: app.LinesFrom(strings.NewReader(input), nil),
		Out:   lineWriter(out),
		Notes: lineWriter(notes),
		OpenStore: func(name string) (app.PeerStore, error) {
			return store.OpenPeer(filepath.Join(dir, "dht-peer-"+name+".db"))
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	wantNotes := []string{
		"input ended; still registered as zed, which a setup-dht may pick for its ring: running until stopped (Ctrl-C or SIGTERM)",
	}
	var gotNotes []string
	for len(gotNotes) < len(wantNotes) {
		select {
		case n := <-notes:
			gotNotes = append(gotNotes, n.line)
		case err := <-done:
			t.Fatalf("the peer stopped: %v (notes %q)", err, gotNotes)
		case <-time.After(time.Minute):
			t.Fatalf("notes %q, want %q", gotNotes, wantNotes)
		}
	}
	if !slices.Equal(gotNotes, wantNotes) {
		t.Fatalf("notes %q, want %q", gotNotes, wantNotes)
	}
	// Every result was printed before the peer was idle at the end of
	// its input.
	var got []string
	for len(out) > 0 {
		got = append(got, strings.Split((<-out).line, "\n")...) // results queued together go in one write
	}
	want := []string{
		fmt.Sprintf(`help FAILURE: a line of more than %d bytes, not read as a command (it began "help yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"...)`, app.MaxInputLine),
		"register SUCCESS",
		"query-dht FAILURE: no DHT exists",
		fmt.Sprintf(`xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx... FAILURE: a line of more than %d bytes, not read as a command (it began "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"...)`, app.MaxInputLine),
		"query-dht FAILURE: Long Name too long (2000 bytes, at most 1024)",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("printed %q, want %q", got, want)
	}
	// Still registered, and serving: it stops when told to.
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// A line over MaxInputLine is no command: it gets a FAILURE line of its
// own, named by its first word; as the Long Name a query-dht waits for, it
// fails that query-dht.
func TestOverlongLines(t *testing.T) {
	p := app.NewPeer(app.PeerConfig{Server: simServer})
	for line, want := range map[string]string{
		"register " + strings.Repeat("a", app.MaxInputLine):             `register FAILURE: a line of more than 1048576 bytes, not read as a command (it began "register aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"...)`,
		"  frob" + strings.Repeat(" a", app.MaxInputLine):               `frob FAILURE: a line of more than 1048576 bytes, not read as a command (it began "  frob a a a a a a a a a a a a a a a a a"...)`,
		strings.Repeat("é", 20) + strings.Repeat(" ", app.MaxInputLine): `éééééééééééééééééééé FAILURE: a line of more than 1048576 bytes, not read as a command (it began "éééééééééééééééééééé"...)`,
		strings.Repeat("\t", app.MaxInputLine) + "x":                    `input FAILURE: a line of more than 1048576 bytes, not read as a command (it began "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t"...)`,
	} {
		outs := p.Input(time.Unix(1_700_000_000, 0), line)
		if len(outs) != 1 {
			t.Fatalf("outputs %+v, want one result", outs)
		}
		if r, ok := outs[0].(app.Result); !ok || r.String() != want {
			t.Fatalf("output %+v, want the result %q", outs[0], want)
		}
	}

	s, _ := ringOfFour(t, 6)
	free := freeUser(s)
	s.do(free, "query-dht "+free)
	s.mustDo(free, strings.Repeat("x", app.MaxInputLine+1), fmt.Sprintf("query-dht FAILURE: Long Name too long (a line of more than %d bytes)", app.MaxInputLine))
	s.do(free, "query-dht "+free)
	s.mustDo(free, strings.Repeat("x", 1025), "query-dht FAILURE: Long Name too long (1025 bytes, at most 1024)")
	s.mustDo(free, "query-dht "+free+" Aruba", "query-dht SUCCESS")
}

// The whole dataset's queries typed at once (a script piping them into
// dht peer) walk the ring several at a time over a network that loses,
// duplicates and delays datagrams: every one is answered, found, and
// printed in the order typed, with its record.
func TestQueriesTypedAtOnceOverALossyNetwork(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		s, data := ringOfFour(t, seed)
		s.Loss, s.Dup, s.Delay = 0.1, 0.05, 2e6
		free := freeUser(s)
		var lines []string
		for _, r := range data {
			lines = append(lines, "query-dht "+free+" "+r.LongName)
		}
		p := s.Process(free)
		before := len(p.Printed)
		for _, l := range lines {
			s.input(free, l)
		}
		most := 0
		for !p.Core.Idle() {
			most = max(most, app.Walks(p.Core))
			if !s.step() {
				t.Fatalf("seed %d: the queries never finished", seed)
			}
		}
		if most < 2 {
			t.Errorf("seed %d: at most %d query in the ring at once", seed, most)
		}
		out := texts(p.Printed[before:])
		if len(out) != len(data) {
			t.Fatalf("seed %d: %d queries typed, %d results printed", seed, len(data), len(out))
		}
		for i, r := range data {
			first, rest, _ := strings.Cut(out[i], "\n")
			if !strings.HasPrefix(first, "query-dht SUCCESS") || !strings.Contains(rest, "Long Name: "+r.LongName+"\n") {
				t.Fatalf("seed %d: result %d, for %q: %q", seed, i, r.LongName, out[i])
			}
		}
	}
}

// ttyReader reads like a terminal: each read returns the next chunk, an
// empty chunk is an end of input (Ctrl-D) that later reads go on after.
type ttyReader struct{ chunks []string }

func (r *ttyReader) Read(b []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	c := r.chunks[0]
	r.chunks = r.chunks[1:]
	if c == "" {
		return 0, io.EOF
	}
	return copy(b, c), nil
}

// A line ended by Ctrl-D rather than Enter is the last line: the input
// ends there, as from a pipe or a file. A terminal reads on after it, and
// the peer went on reading what was typed next (a new user's review:
// "regis", Ctrl-D, Ctrl-D, then help was answered).
func TestInputEndsAfterALineWithoutItsEnd(t *testing.T) {
	var got []string
	for line := range app.LinesFrom(&ttyReader{chunks: []string{"help\n", "regis", "", "help\n"}}, nil) {
		got = append(got, line)
	}
	if want := []string{"help", "regis"}; !slices.Equal(got, want) {
		t.Fatalf("lines %q, want %q", got, want)
	}
}

// A script saved by an editor that writes a byte-order mark (Notepad)
// starts with U+FEFF: dht play and the dataset loader drop it, and so does
// the peer's input, else its first command is "unknown" although it reads
// as the right one.
func TestInputDropsALeadingByteOrderMark(t *testing.T) {
	var got []string
	for line := range app.LinesFrom(strings.NewReader("\ufeffhelp\r\n\ufeffhelp\n"), nil) {
		got = append(got, line)
	}
	if want := []string{"help", "\ufeffhelp"}; !slices.Equal(got, want) {
		t.Fatalf("lines %q, want %q", got, want)
	}
}
