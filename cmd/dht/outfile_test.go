package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"dht/app/state"
	"dht/store"
)

// An output flag's FILE is not written over what the user did not mean:
// a forgotten name after --svg took the next word, the server's file, as
// its own, and wrote an image over it; --trace-json truncated a running
// peer's file, or the server's own --db (a new user's review). Each such
// command fails with status 2, changing nothing.
func TestOutputFilesAreNotWrittenOver(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	srv, err := store.OpenServer("server.db")
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	peer, err := store.OpenPeer("peer.db")
	if err != nil {
		t.Fatal(err)
	}
	peer.Close()
	trace := `{"time":"2026-12-07T06:43:47.159603081Z","process":"server","dir":"event","event":"listening"}` + "\n"
	files := map[string]string{
		"a.jsonl":   trace,
		"b.jsonl":   trace,
		"notes.txt": "my notes\n",
	}
	for name, text := range files {
		if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The servers' port is held: were a check missing, the server would
	// fail to bind (status 1) rather than run.
	held, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := strconv.Itoa(held.LocalAddr().(*net.UDPAddr).Port)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"ring", "--svg", "server.db", "peer.db"}, "--svg server.db: the file exists and holds a bbolt database (a dht server's or peer's file?), not an SVG image; remove it first if it is to go, or give --svg another FILE (e.g. image.svg)"},
		{[]string{"ring", "--svg", "peer.db", "peer.db"}, "--svg peer.db is also a file this command reads or writes: give --svg a FILE of its own (e.g. image.svg)"},
		{[]string{"diagram", "--svg", "a.jsonl", "b.jsonl"}, "--svg a.jsonl: the file exists and holds something else, not an SVG image"},
		{[]string{"diagram", "--mermaid", "b.jsonl", "a.jsonl", "b.jsonl"}, "--mermaid b.jsonl is also a file this command reads or writes"},
		{[]string{"diagram", "--mermaid", "d.out", "--svg", "./d.out", "a.jsonl"}, "--mermaid and --svg name one file, ./d.out: give each its own"},
		{[]string{"diagram", "a.jsonl", "b.jsonl", "./a.jsonl"}, "./a.jsonl is given twice (as a.jsonl too): give each process's trace once"},
		{[]string{"server", "--db", "server.db", "--trace-json", "server.db", "--addr", "127.0.0.1", port}, "--trace-json server.db is also a file this command reads or writes"},
		{[]string{"server", "--db", "new.db", "--trace-json", "./new.db", "--addr", "127.0.0.1", port}, "--trace-json ./new.db is also a file this command reads or writes"},
		{[]string{"server", "--db", "s2.db", "--trace-json", "server.db", "--addr", "127.0.0.1", port}, "--trace-json server.db: the file exists and holds a bbolt database"},
		// "-" is no stdout for a trace (nor a profile): a file named "-".
		{[]string{"server", "--db", "-", "--trace-json", "-", "--addr", "127.0.0.1", port}, "--trace-json - is also a file this command reads or writes"},
		{[]string{"peer", "--trace-json", "peer.db", "127.0.0.1", "4000"}, "--trace-json peer.db: the file exists and holds a bbolt database"},
		{[]string{"peer", "--db", "peer.db", "--trace-json", "peer.db", "127.0.0.1", "4000"}, "--trace-json peer.db is also a file this command reads or writes"},
		{[]string{"peer", "--trace-json", "notes.txt", "127.0.0.1", "4000"}, "--trace-json notes.txt: the file exists and holds something else, not a JSON trace"},
	}
	before := snapshot(t, dir)
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runDHT(t, "", tt.args...)
			if code != 2 || out != "" || !strings.HasPrefix(errOut, "dht: "+tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errOut, tt.want)
			}
			if after := snapshot(t, dir); !equalFiles(before, after) {
				t.Fatalf("the files changed: %d before, %d after", len(before), len(after))
			}
		})
	}
}

// What an output flag may write over: its own kind of file, an empty
// file, what is not a regular file, a file not there yet, stdout.
func TestOutputFilesOfTheirOwnKindAreWritten(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		path string
		kind outKind
	}{
		{write("old.svg", `<svg xmlns="http://www.w3.org/2000/svg"></svg>`), outSVG},
		{write("old.mmd", "sequenceDiagram\n"), outMermaid},
		{write("titled.mmd", "---\ntitle: x\n---\nsequenceDiagram\n"), outMermaid},
		{write("old.jsonl", `{"time":"x"}`), outTrace},
		{write("old.pprof", "\x1f\x8b\x08"), outProfile},
		{write("empty", ""), outSVG},
		{os.DevNull, outTrace},
		{filepath.Join(dir, "new.svg"), outSVG},
		{"-", outSVG},
	}
	for _, tt := range tests {
		if err := checkOutput("x", tt.path, tt.kind, filepath.Join(dir, "input.db")); err != nil {
			t.Errorf("%s: %v", tt.path, err)
		}
	}
	// And what it may not: another kind.
	for _, kind := range []outKind{outSVG, outMermaid, outTrace, outProfile} {
		if err := checkOutput("x", filepath.Join(dir, "old.svg"), kind); kind.what != outSVG.what && err == nil {
			t.Errorf("an SVG image taken as %s", kind.what)
		}
	}
}

func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = b
	}
	return m
}

func equalFiles(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// A --db the server makes is checked against --trace-json again once it
// is made: under another name (a symbolic link to its folder) it is the
// same file, which the trace would have emptied (a review: the first
// registration lost, the server stopped on its truncated file).
func TestATraceIsNotTheDatabaseUnderAnotherName(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.Mkdir("real", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", "link"); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(freePorts(t, 1)[0])
	// Were the check missing, the server would run: the test fails then
	// rather than wait for it.
	type result struct {
		code        int
		out, errOut string
	}
	run := func(args ...string) result {
		t.Helper()
		done := make(chan result, 1)
		go func() {
			code, out, errOut := runDHT(t, "", args...)
			done <- result{code, out, errOut}
		}()
		select {
		case r := <-done:
			return r
		case <-time.After(time.Minute):
			t.Fatalf("dht %s runs on: want it refused", strings.Join(args, " "))
			return result{}
		}
	}
	const want = "dht: --trace-json real/new.db is also a file this command reads or writes"
	r := run("server", "--quiet", "--db", "link/new.db", "--trace-json", "real/new.db", "--addr", "127.0.0.1", port)
	if r.code != 2 || r.out != "" || !strings.HasPrefix(r.errOut, want) {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and %q", r.code, r.out, r.errOut, want)
	}
	// The --db the server made before the trace was refused goes again:
	// a refused command leaves no file (a review: it left an empty
	// registry behind).
	if _, err := os.Lstat("real/new.db"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused server left real/new.db (%v)", err)
	}
	// A peer's --cpuprofile refused once the trace is made: the trace
	// goes again.
	if err := os.WriteFile("notes.txt", []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = run("peer", "--quiet", "--trace-json", "t.json", "--cpuprofile", "notes.txt", "127.0.0.1", port)
	if want := "dht: --cpuprofile notes.txt: the file exists and holds something else, not a CPU profile"; r.code != 2 || !strings.HasPrefix(r.errOut, want) {
		t.Fatalf("peer --cpuprofile: exit %d, stdout %q, stderr %q; want 2 and %q", r.code, r.out, r.errOut, want)
	}
	if _, err := os.Lstat("t.json"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused peer left t.json (%v)", err)
	}
	// Nor is a trace that was there emptied, by a server or a peer, nor
	// a --db made (a code review: the profile was checked after the trace
	// was opened, which truncates it).
	const old = `{"msg":"an old trace"}` + "\n"
	if err := os.WriteFile("old.json", []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"server", "--quiet", "--db", "s.db", "--trace-json", "old.json", "--cpuprofile", "notes.txt", "--addr", "127.0.0.1", port},
		{"peer", "--quiet", "--trace-json", "old.json", "--cpuprofile", "notes.txt", "127.0.0.1", port},
	} {
		r = run(args...)
		if want := "dht: --cpuprofile notes.txt: the file exists and holds something else"; r.code != 2 || !strings.HasPrefix(r.errOut, want) {
			t.Fatalf("%v: exit %d, stderr %q; want 2 and %q", args, r.code, r.errOut, want)
		}
		if b, _ := os.ReadFile("old.json"); string(b) != old {
			t.Fatalf("%v: old.json now holds %q", args, b)
		}
	}
	if _, err := os.Lstat("s.db"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused server left s.db (%v)", err)
	}
	// A --db that was there is kept, whatever is refused.
	if code, _, errOut := runDHT(t, "", "inspect", "link/new.db"); code == 0 {
		t.Fatalf("inspect of a file that should not be there: %s", errOut)
	}
	r = run("server", "--quiet", "--db", "link/kept.db", "--cpuprofile", "real/kept.db", "--addr", "127.0.0.1", port)
	if want := "dht: --cpuprofile real/kept.db is also a file this command reads or writes"; r.code != 2 || !strings.HasPrefix(r.errOut, want) {
		t.Fatalf("server --cpuprofile: exit %d, stdout %q, stderr %q; want 2 and %q", r.code, r.out, r.errOut, want)
	}
	if _, err := os.Lstat("real/kept.db"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused server left real/kept.db (%v)", err)
	}
	db, err := store.OpenServer("real/old.db")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	r = run("server", "--quiet", "--db", "real/old.db", "--cpuprofile", "link/old.db", "--addr", "127.0.0.1", port)
	if want := "dht: --cpuprofile link/old.db is also a file this command reads or writes"; r.code != 2 || !strings.HasPrefix(r.errOut, want) {
		t.Fatalf("server --cpuprofile: exit %d, stdout %q, stderr %q; want 2 and %q", r.code, r.out, r.errOut, want)
	}
	if _, err := store.Inspect("real/old.db", 0); err != nil {
		t.Fatalf("the database that was there: %v", err)
	}
	// A peer's --db is made at its register, after the trace: refused
	// then, the trace being that file (a review: "--db link/new.db is no
	// peer's file … empty file").
	r = run("peer", "--quiet", "--db", "link/peer.db", "--trace-json", "real/peer.db", "127.0.0.1", port)
	if want := "dht: --trace-json real/peer.db is also a file this command reads or writes"; r.code != 2 || !strings.HasPrefix(r.errOut, want) {
		t.Fatalf("peer: exit %d, stdout %q, stderr %q; want 2 and %q", r.code, r.out, r.errOut, want)
	}
	// And changes nothing: the trace it made is gone, so the command
	// without --trace-json makes its --db (a review: the empty file left
	// was refused as 'no peer's file').
	if _, err := os.Lstat("real/peer.db"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused trace left real/peer.db (%v)", err)
	}
}

// Without --db the table's file is named at register: a --trace-json of
// that name is refused then, by name, and the trace is left as it is (a
// review: the register failed "… empty file", which named neither).
func TestATraceIsNotTheDefaultTableFile(t *testing.T) {
	t.Chdir(t.TempDir())
	ports := freePorts(t, 2)
	code, out, errOut := runDHT(t, fmt.Sprintf("register carol 127.0.0.1 %d\n", ports[1]),
		"peer", "--quiet", "--trace-json", "dht-peer-carol.db", "127.0.0.1", strconv.Itoa(ports[0]))
	const want = "register FAILURE: cannot open the table file: dht-peer-carol.db is this peer's --trace-json file: name the table with --db, or send the trace elsewhere\n"
	if code != 0 || out != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and %q", code, out, errOut, want)
	}
	b, err := os.ReadFile("dht-peer-carol.db")
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[0] != '[' && b[0] != '{' {
		t.Fatalf("dht-peer-carol.db holds %q…, not the trace", b[:min(len(b), 16)])
	}
}

// Likewise a --cpuprofile of the default table file's name: refused at
// register, by name (a review: 'not a dht database file: empty file',
// the peer exiting 1).
func TestAProfileIsNotTheDefaultTableFile(t *testing.T) {
	t.Chdir(t.TempDir())
	ports := freePorts(t, 2)
	code, out, errOut := runDHT(t, fmt.Sprintf("register carol 127.0.0.1 %d\n", ports[1]),
		"peer", "--quiet", "--cpuprofile", "dht-peer-carol.db", "127.0.0.1", strconv.Itoa(ports[0]))
	const want = "register FAILURE: cannot open the table file: dht-peer-carol.db is this peer's --cpuprofile file: name the table with --db, or send the profile elsewhere\n"
	if code != 0 || out != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and %q", code, out, errOut, want)
	}
}

// /dev/stdout (or /proc/self/fd/N) sent to a file that holds something
// else (>> log): opening it again would empty it; said so.
func TestAnOutputThatIsAnOpenFileIsNotEmptied(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/self/fd is Linux's")
	}
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("an old log line\n"); err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	err = checkOutput("trace-json", path, outTrace)
	if err == nil || !strings.Contains(err.Error(), "which opening it would empty: send that output to a pipe or a new file") {
		t.Fatalf("checkOutput(%s) = %v", path, err)
	}
}

// A peer file that cannot be opened for writing (a read-only disk, its
// mode; here the error is given) but holds no registration has no resume
// to fail: the peer says so rather than print a resume FAILURE line (a new
// user's review). One that holds a registration, or that is in use, is a
// resume that fails.
func TestAnUnregisteredFileHasNoResumeToFail(t *testing.T) {
	dir := t.TempDir()
	free := filepath.Join(dir, "free.db")
	p, err := store.OpenPeer(free)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	ro := &os.PathError{Op: "open", Path: free, Err: syscall.EROFS}
	if !unregisteredFile(free, ro) {
		t.Error("a peer file with no registration, not writable: want no resume to fail")
	}
	registered := filepath.Join(dir, "alice.db")
	if p, err = store.OpenPeer(registered); err != nil {
		t.Fatal(err)
	}
	id := state.Identity{Name: "alice", Addr: netip.MustParseAddrPort("127.0.0.1:5001"), Server: netip.MustParseAddrPort("127.0.0.1:4000")}
	if err := p.Apply(state.Batch{Identity: &id}); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if unregisteredFile(registered, ro) {
		t.Error("a registration's file, not writable: want its resume failed")
	}
	if unregisteredFile(free, fmt.Errorf("in use: %w", store.ErrLocked)) {
		t.Error("a file in use: want its resume failed")
	}
	if unregisteredFile(filepath.Join(dir, "server.db"), ro) {
		t.Error("no such file: want its resume failed")
	}
}
