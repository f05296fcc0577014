package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"dht/app"
	"dht/dataset"
	"dht/store"
)

// runDHT runs the command line in-process and returns the exit status and
// what it wrote.
func runDHT(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(append([]string{"dht"}, args...), strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// writeScenario writes a play file into a fresh folder.
func writeScenario(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "t.play")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPlayExamples runs every shipped example: each is a test.
func TestPlayExamples(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.play")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, f := range files {
		// Not in parallel: urfave/cli writes its global help flag on
		// every run.
		t.Run(filepath.Base(f), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "files")
			playExample(t, f, dir)
			if _, err := os.Stat(filepath.Join(dir, "dht-server.db")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// playExample runs the scenario file with its bbolt files in dir, checks
// that every expectation was met, and returns what play printed.
func playExample(t *testing.T, file, dir string) string {
	t.Helper()
	code, out, errOut := runDHT(t, "", "play", "--data", datasetPath(t), "--dir", dir, file)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, " expectations met; bbolt files in "+dir) {
		t.Fatalf("no summary line:\n%s", out)
	}
	return out
}

// TestPlayTranscript checks that play waits for every command: each line
// typed is followed by its own results, before the next line is typed.
func TestPlayTranscript(t *testing.T) {
	f := writeScenario(t, `
alice: register alice 127.0.0.1 ${PORT:a}
bob: register bob 127.0.0.1 ${PORT:b}
alice: setup-dht 2 alice
bob: query-dht bob
bob: Aruba
carol: register carol 127.0.0.1 ${PORT:c}
carol: query-dht carol
carol: Aruba
alice: teardown-dht alice
bob: deregister bob
`)
	code, out, errOut := runDHT(t, "", "play", "--data", datasetPath(t), "--dir", t.TempDir(), f)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	// A result line: a command's, an unknown command's too (records and
	// help text are none).
	resultLine := regexp.MustCompile(`^\S+ (SUCCESS|FAILURE)\b`)
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "> ") || resultLine.MatchString(l) {
			got = append(got, regexp.MustCompile(`127\.0\.0\.1 \d+`).ReplaceAllString(l, "127.0.0.1 PORT"))
		}
	}
	want := []string{
		"alice> register alice 127.0.0.1 PORT",
		"register SUCCESS",
		"bob> register bob 127.0.0.1 PORT",
		"register SUCCESS",
		"alice> setup-dht 2 alice",
		"setup-dht SUCCESS: ring of 2: alice bob",
		"dht-complete SUCCESS",
		// Refused, the query-dht takes no Long Name: the next line is a
		// command.
		"bob> query-dht bob",
		"query-dht FAILURE: bob maintains the DHT (InDHT); only Free users may query",
		"bob> Aruba",
		"Aruba FAILURE: unknown command (type help for the list)",
		"carol> register carol 127.0.0.1 PORT",
		"register SUCCESS",
		"carol> query-dht carol",
		"carol> Aruba",
		"query-dht SUCCESS: found at node alice (id 0) after 0 hops",
		"alice> teardown-dht alice",
		"teardown-dht SUCCESS",
		"teardown-complete SUCCESS",
		"bob> deregister bob",
		"deregister SUCCESS",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("transcript:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// ${PORT:a} and ${PORT:b} are two different ports.
	m := regexp.MustCompile(`(?m)^(alice|bob)> register \w+ 127\.0\.0\.1 (\d+)$`).FindAllStringSubmatch(out, -1)
	if len(m) != 2 || m[0][2] == m[1][2] {
		t.Fatalf("ports: %v", m)
	}
}

// TestPlayExpectations: help's line is a SUCCESS to expect, as it prints
// one, and an expectation's text has its ${PORT:KEY} replaced as a typed
// line's does (a new-user review: both failed).
func TestPlayExpectations(t *testing.T) {
	f := writeScenario(t, `
alice: help
alice: expect SUCCESS
alice: register alice 127.0.0.1 ${PORT:a}
alice: expect SUCCESS
bob: register bob 127.0.0.1 ${PORT:a}
bob: expect FAILURE cannot bind 127.0.0.1:${PORT:a}
`)
	if code, out, errOut := runDHT(t, "", "play", "--dir", t.TempDir(), f); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
}

// A play file that starts with a byte-order mark (some editors write
// one) is read as without it (a new user's review: refused on line 1).
func TestPlayFileWithAByteOrderMark(t *testing.T) {
	for _, first := range []string{"# a comment\n", "alice: help\n"} {
		f := writeScenario(t, "\ufeff"+first+"alice: help\nalice: expect SUCCESS\n")
		if code, out, errOut := runDHT(t, "", "play", "--dir", t.TempDir(), f); code != 0 || !strings.Contains(out, "1 expectation met") {
			t.Errorf("%q: exit %d\n%s\n%s", first, code, out, errOut)
		}
	}
}

// TestPlayFailures: every way a play goes wrong, with its exit status and
// what it says.
func TestPlayFailures(t *testing.T) {
	tests := []struct {
		name     string
		scenario string
		args     []string
		code     int
		stderr   []string // each must appear
		noFile   bool
		after    []string // arguments after FILE
	}{
		{
			name:     "failed expect names the line and what was printed",
			scenario: "alice: frobnicate\n\nalice: expect SUCCESS\n",
			code:     1,
			stderr:   []string{"t.play:3: alice: expected SUCCESS from \"frobnicate\", which printed:", "    frobnicate FAILURE: unknown command"},
		},
		{
			name:     "expect TEXT must appear",
			scenario: "alice: frobnicate\nalice: expect FAILURE no such thing\n",
			code:     1,
			stderr:   []string{`t.play:2: alice: expected FAILURE with "no such thing"`},
		},
		{
			name:     "expect FAILURE of a success",
			scenario: "alice: register alice 127.0.0.1 ${PORT:a}\nalice: expect FAILURE\n",
			code:     1,
			stderr:   []string{"t.play:2:", "register SUCCESS"},
		},
		{
			name:     "expect before any command",
			scenario: "alice: expect SUCCESS\n",
			code:     1,
			stderr:   []string{"t.play:1: alice: expect before alice typed anything"},
		},
		{
			name:     "a line without a user",
			scenario: "# fine\nregister alice 127.0.0.1 5000\n",
			code:     1,
			stderr:   []string{"t.play:2: want USER: LINE"},
		},
		{
			name:     "a line longer than 1 MiB",
			scenario: "# fine\nalice: help\nalice: query-dht alice " + strings.Repeat("x", 1<<20) + "\n",
			code:     1,
			stderr:   []string{"t.play:3: a line longer than 1 MiB"},
		},
		{
			// A new user's review: a binary given as the play file gave a
			// 16,019-byte error line.
			name:     "a long bad line is quoted short",
			scenario: strings.Repeat("\x7fELF", 3000) + "\n",
			code:     1,
			stderr:   []string{`t.play:1: want USER: LINE, USER: expect SUCCESS|FAILURE [TEXT], sleep DURATION or seed N, got "\x7fELF\x7fELF`, `… (12000 bytes)` + "\n"},
		},
		{
			// It names the user's table file: 300 letters failed late,
			// at the register.
			name:     "a user label too long",
			scenario: strings.Repeat("a", 65) + ": help\n",
			code:     1,
			stderr:   []string{"t.play:1: a user label is at most 64 characters, got \"aaaa"},
		},
		{
			name:     "a bad expect",
			scenario: "alice: help\nalice: expect MAYBE\n",
			code:     1,
			stderr:   []string{"t.play:2: want expect SUCCESS|FAILURE [TEXT]"},
		},
		{
			name:     "an unknown placeholder",
			scenario: "alice: register alice 127.0.0.1 ${HOST}\n",
			code:     1,
			stderr:   []string{"t.play:1: unknown placeholder"},
		},
		{
			name:     "a bad sleep",
			scenario: "sleep forever\n",
			code:     1,
			stderr:   []string{"t.play:1: invalid duration"},
		},
		{
			name:     "seed after the first step",
			scenario: "alice: help\nseed 3\n",
			code:     1,
			stderr:   []string{"t.play:2: seed must come once"},
		},
		{
			name:     "typing at a peer that has exited",
			scenario: "alice: register alice 127.0.0.1 ${PORT:a}\nalice: deregister alice\nalice: expect SUCCESS\nalice: help\n",
			code:     1,
			stderr:   []string{"t.play:4: alice> help: the peer has exited (deregistered)"},
		},
		{
			name:     "a missing dataset stops the play before its peers start, as it would stop a peer",
			scenario: "alice: register alice 127.0.0.1 ${PORT:a}\nalice: setup-dht 2 alice\n",
			args:     []string{"--data", "/nonexistent/data.csv"},
			code:     1,
			stderr:   []string{"dht: play: dataset: open /nonexistent/data.csv: no such file or directory"},
		},
		{name: "no file", noFile: true, code: 2, stderr: []string{"play takes one argument"}},
		{name: "two files", after: []string{"other.play"}, code: 2, stderr: []string{"play takes one argument"}},
		{name: "a bad timeout", scenario: "", args: []string{"--timeout", "0s"}, code: 2, stderr: []string{"--timeout must be positive"}},
		{name: "an unknown flag", scenario: "", args: []string{"--frobnicate"}, code: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"play", "--dir", filepath.Join(t.TempDir(), "files")}, tt.args...)
			if !tt.noFile {
				args = append(args, writeScenario(t, tt.scenario))
			}
			args = append(args, tt.after...)
			code, out, errOut := runDHT(t, "", args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			for _, s := range tt.stderr {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errOut)
				}
			}
		})
	}
}

func TestPlayMissingFileAndBusyDir(t *testing.T) {
	code, _, errOut := runDHT(t, "", "play", "--dir", t.TempDir(), filepath.Join(t.TempDir(), "missing.play"))
	if code != 1 || !strings.Contains(errOut, "missing.play") {
		t.Fatalf("missing file: exit %d: %s", code, errOut)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dht-server.db"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runDHT(t, "", "play", "--dir", dir, writeScenario(t, "alice: help\n"))
	if code != 1 || !strings.Contains(errOut, "is not empty") {
		t.Fatalf("busy dir: exit %d: %s", code, errOut)
	}
	// A --dir that is a file says so, and what to give (a new user's
	// review: "mkdir /etc/passwd: not a directory").
	file := filepath.Join(dir, "dht-server.db")
	code, _, errOut = runDHT(t, "", "play", "--dir", file, writeScenario(t, "alice: help\n"))
	if code != 1 || !strings.Contains(errOut, "--dir "+file+" is a file, not a folder: give a new or empty folder") {
		t.Fatalf("a file as --dir: exit %d: %s", code, errOut)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "dht-server.db")); string(b) != "old" {
		t.Fatalf("a refused folder was changed")
	}
}

func TestParseScenario(t *testing.T) {
	src := `# comment
seed 42

alice: register alice 127.0.0.1 ${PORT:alice}
bob:register bob 127.0.0.1 ${PORT:b}
alice: expect SUCCESS
bob: query-dht bob Kingdom of: Atlantis
bob: expect FAILURE not found: really
carol: register carol 127.0.0.1 ${PORT:alice}
sleep 20ms
carol: sleep 5ms
`
	sc, err := parseScenario("x.play", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if sc.seed == nil || *sc.seed != 42 {
		t.Fatalf("seed %v", sc.seed)
	}
	if !slices.Equal(sc.keys, []string{"alice", "b"}) {
		t.Fatalf("keys %v", sc.keys)
	}
	want := []playStep{
		{pos: "x.play:4", kind: playStepType, user: "alice", text: "register alice 127.0.0.1 ${PORT:alice}"},
		{pos: "x.play:5", kind: playStepType, user: "bob", text: "register bob 127.0.0.1 ${PORT:b}"},
		{pos: "x.play:6", kind: playStepExpect, user: "alice", want: "SUCCESS"},
		{pos: "x.play:7", kind: playStepType, user: "bob", text: "query-dht bob Kingdom of: Atlantis"},
		{pos: "x.play:8", kind: playStepExpect, user: "bob", want: "FAILURE", text: "not found: really"},
		{pos: "x.play:9", kind: playStepType, user: "carol", text: "register carol 127.0.0.1 ${PORT:alice}"},
		{pos: "x.play:10", kind: playStepSleep, d: 20 * time.Millisecond},
		{pos: "x.play:11", kind: playStepType, user: "carol", text: "sleep 5ms"},
	}
	if !slices.Equal(sc.steps, want) {
		t.Fatalf("steps:\n%+v\nwant:\n%+v", sc.steps, want)
	}
}

func TestPlayOutcome(t *testing.T) {
	found := app.Result{Cmd: app.CmdQueryDHT, OK: true, Answer: app.Answer{Answered: true, Node: "a", Record: dataset.Record{ShortName: "SUCCESS story"}}}
	failed := found
	failed.Answer.Record.ShortName = "x FAILURE"
	tests := []struct {
		printed []app.Result
		want    string
	}{
		{nil, ""},
		{[]app.Result{{Cmd: app.CmdHelp, OK: true, Text: "commands (one per line; blank lines and lines starting with # are skipped):"}}, "SUCCESS"},
		{[]app.Result{{Cmd: app.CmdRegister, OK: true}}, "SUCCESS"},
		{[]app.Result{{Cmd: app.CmdSetupDHT, OK: true, Ring: []string{"a", "b"}}, {Cmd: app.CmdDHTComplete, OK: true}}, "SUCCESS"},
		{[]app.Result{{Cmd: app.CmdLeaveDHT, OK: true}, {Cmd: app.CmdLeaveDHT, Reason: "bob did not answer"}}, "FAILURE"},
		{[]app.Result{found}, "SUCCESS"},
		// A record's lines are no result lines, whatever they say.
		{[]app.Result{failed}, "SUCCESS"},
		{[]app.Result{{Cmd: app.CmdUnknown, Word: "Aruba", Reason: "unknown command (type help for the list)"}}, "FAILURE"},
	}
	for _, tt := range tests {
		if got := playOutcome(tt.printed); got != tt.want {
			t.Errorf("playOutcome(%q) = %q, want %q", tt.printed, got, tt.want)
		}
	}
}

// TestPlayInterrupted runs the binary: SIGINT stops a play at once, its
// peers closing their files.
func TestPlayInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	f := writeScenario(t, "alice: register alice 127.0.0.1 ${PORT:a}\nsleep 1h\nalice: deregister alice\n")
	p := startProc(t, "play", dir, "play", "--dir", filepath.Join(dir, "files"), f)
	p.expect("alice> register alice 127.0.0.1 ")
	p.expect("register SUCCESS")
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	p.waitTrace("t.play:2: interrupted")
	if err := p.wait(); err == nil || p.cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1", err)
	}
	if _, err := store.Inspect(filepath.Join(dir, "files", "dht-peer-alice.db"), 0); err != nil {
		t.Fatalf("the peer's file after SIGINT: %v", err)
	}
}

// Without --trace a play writes nothing to stderr; with it, every process's
// datagrams, each line naming its node.
func TestPlayTrace(t *testing.T) {
	f := writeScenario(t, "alice: register alice 127.0.0.1 ${PORT:a}\nalice: expect SUCCESS\n")
	for _, trace := range []bool{false, true} {
		args := []string{"play", "--dir", filepath.Join(t.TempDir(), "f"), f}
		if trace {
			args = append([]string{"play", "--trace"}, args[1:]...)
		}
		code, out, errOut := runDHT(t, "", args...)
		if code != 0 || !strings.Contains(out, "# "+f+": 1 expectation met") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		if !trace && errOut != "" {
			t.Fatalf("stderr without --trace: %q", errOut)
		}
		if trace && (!strings.Contains(errOut, "msg=send") || !strings.Contains(errOut, "node=alice") || !strings.Contains(errOut, "node=server")) {
			t.Fatalf("trace:\n%s", errOut)
		}
	}
}

// A play that fails with --keep keeps its new folder under $TMPDIR and
// says where it is, as one that succeeds does.
func TestPlayKeepNamesFolderOnFailure(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	f := writeScenario(t, "alice: register alice 127.0.0.1 ${PORT:a}\nalice: expect FAILURE\n")
	code, out, errOut := runDHT(t, "", "play", "--keep", f)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	kept, _ := filepath.Glob(filepath.Join(tmp, "dht-play-*"))
	if len(kept) != 1 {
		t.Fatalf("kept folders %q, want one", kept)
	}
	if !strings.Contains(errOut, kept[0]) {
		t.Errorf("stderr does not name the kept folder %s:\n%s", kept[0], errOut)
	}
}
