package main

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"dht/app/state"
	"dht/store"
	"dht/wire"
)

// dhtFile writes a server file holding two users, bob InDHT if
// inconsistent (there is no DHT); or a peer file with an identity, its id
// outside its ring if inconsistent.
func dhtFile(t *testing.T, kind, path string, inconsistent bool) {
	t.Helper()
	if kind == "server" {
		db, err := store.OpenServer(path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		st := state.ServerState{Users: []state.User{
			{Name: "alice", Addr: netip.MustParseAddrPort("127.0.0.1:5001")},
			{Name: "bob", Addr: netip.MustParseAddrPort("127.0.0.1:5002")},
		}}
		if inconsistent {
			st.Users[1].State = state.InDHT
		}
		if err := db.Save(st, nil); err != nil {
			t.Fatal(err)
		}
		return
	}
	db, err := store.OpenPeer(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	id := state.Identity{Name: "alice", Addr: netip.MustParseAddrPort("127.0.0.1:5001"), Server: netip.MustParseAddrPort("127.0.0.1:4000"),
		InRing: true, ID: 1, N: 2,
		Left:  state.Member{Name: "bob", Addr: netip.MustParseAddrPort("127.0.0.1:5002")},
		Right: state.Member{Name: "bob", Addr: netip.MustParseAddrPort("127.0.0.1:5002")}}
	if inconsistent {
		id.ID = 2
	}
	if err := db.Apply(state.Batch{Identity: &id}); err != nil {
		t.Fatal(err)
	}
}

// runWithin runs the command line in-process and fails the test if it has
// not ended within d (a server that accepted its file would serve forever).
func runWithin(t *testing.T, d time.Duration, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	type result struct {
		code     int
		out, err string
	}
	done := make(chan result, 1)
	go func() {
		var r result
		r.code, r.out, r.err = runDHT(t, stdin, args...)
		done <- r
	}()
	select {
	case r := <-done:
		return r.code, r.out, r.err
	case <-time.After(d):
		t.Fatalf("dht %s still running after %v", strings.Join(args, " "), d)
	}
	return 0, "", ""
}

// TestDamagedFileRefused: the server, the peer and inspect refuse a file
// that is damaged, cut short or inconsistent with exit status 1 and one
// clear line naming the file, never a panic (whose status is 2); a peer
// started on such a --db says so as its resume, before any command.
func TestDamagedFileRefused(t *testing.T) {
	damage := func(change func(path string) error) func(t *testing.T, kind, path string) {
		return func(t *testing.T, kind, path string) {
			dhtFile(t, kind, path, false)
			if err := change(path); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name string
		make func(t *testing.T, kind, path string)
		says map[string]string // by kind
	}{
		{"cut to two pages", damage(func(path string) error { return os.Truncate(path, 8192) }),
			map[string]string{"server": "is damaged: truncated", "peer": "is damaged: truncated"}},
		{"pages zeroed", damage(func(path string) error {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteAt(make([]byte, 64<<10), 8192)
			return err
		}), map[string]string{"server": "is damaged: page", "peer": "is damaged: page"}},
		{"cut to nothing", damage(func(path string) error { return os.Truncate(path, 0) }),
			map[string]string{"server": "empty file", "peer": "empty file"}},
		{"inconsistent", func(t *testing.T, kind, path string) { dhtFile(t, kind, path, true) },
			map[string]string{"server": `is inconsistent: user "bob" is InDHT, but there is no DHT`, "peer": "is inconsistent: id 2 in a ring of 2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			sp, pp := filepath.Join(dir, "dht-server.db"), filepath.Join(dir, "dht-peer-alice.db")
			c.make(t, "server", sp)
			c.make(t, "peer", pp)
			ports := freePorts(t, 2)
			server, peer := strconv.Itoa(ports[0]), strconv.Itoa(ports[1])
			for _, run := range []struct {
				kind, path string
				stdin      string
				args       []string
				out        string
			}{
				{"server", sp, "", []string{"server", "--quiet", "--db", sp, "--addr", "127.0.0.1", server}, ""},
				{"server", sp, "", []string{"inspect", sp}, ""},
				{"peer", pp, "", []string{"inspect", pp}, ""},
				// Named with --db, the file is the peer's to resume: it
				// fails at once, with no command typed; one no longer a
				// dht file holds no registration, and no resume fails.
				{"peer", pp, "", []string{"peer", "--quiet", "--db", pp, "127.0.0.1", server}, resumeOut(c.name)},
				// The default file of the user a register names.
				{"peer", "dht-peer-alice.db", "register alice 127.0.0.1 " + peer + "\n",
					[]string{"peer", "--quiet", "127.0.0.1", server}, "register FAILURE: cannot open the table file: "},
			} {
				if run.args[0] == "peer" {
					t.Chdir(dir)
				}
				code, out, errOut := runWithin(t, 20*time.Second, run.stdin, run.args...)
				says := c.says[run.kind]
				if code != 1 || !strings.HasPrefix(errOut, "dht: ") || !strings.Contains(errOut, run.path) ||
					!strings.Contains(errOut, says) || strings.Count(errOut, "\n") != 1 {
					t.Errorf("dht %s: exit %d, stderr %q, stdout %q; want 1 and one line naming the file and saying %q", run.args[0], code, errOut, out, says)
				}
				// A server or a peer refusing it says what to do too (an
				// empty file is none of ours: nothing to restore).
				if advice := run.args[0] != "inspect" && c.name != "cut to nothing"; advice != strings.Contains(errOut, "(restore a copy of it, or ") {
					t.Errorf("dht %s: stderr %q; want what to do said: %v", run.args[0], errOut, advice)
				}
				if !strings.HasPrefix(out, run.out) || (run.out == "") != (out == "") {
					t.Errorf("dht %s: stdout %q, want %q…", run.args[0], out, run.out)
				}
			}
		})
	}
}

// resumeOut is what a peer started on --db of a file damaged as the case
// named says prints on stdout.
func resumeOut(damage string) string {
	if damage == "cut to nothing" {
		return ""
	}
	return "resume FAILURE: cannot open the table file: "
}

// TestPeerOnNoPeersFile: a peer started on a --db that is no peer's file
// (another program's, a server's) says so on stderr and exits 1, with no
// resume line: such a file holds no registration to resume (a new user's
// review: 'resume FAILURE' for a file it never registered in).
func TestPeerOnNoPeersFile(t *testing.T) {
	dir := t.TempDir()
	junk, srv := filepath.Join(dir, "junk.db"), filepath.Join(dir, "server.db")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("junk"), 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	dhtFile(t, "server", srv, false)
	port := strconv.Itoa(freePorts(t, 1)[0])
	for path, says := range map[string]string{
		junk: "peer: --db " + junk + " is no peer's file (store: " + junk + " is not a dht database file: not a bbolt database): give the path of a peer's file to resume, or of a new one",
		srv:  "peer: --db " + srv + " is no peer's file (store: " + srv + " is a server file, not a peer file)",
	} {
		code, out, errOut := runWithin(t, 20*time.Second, "", "peer", "--quiet", "--db", path, "127.0.0.1", port)
		if code != 1 || out != "" || !strings.Contains(errOut, says) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("peer --db %s: exit %d, stdout %q, stderr %q; want 1, nothing on stdout, one line saying %q", path, code, out, errOut, says)
		}
	}
}

// TestServerOnNoServersFile: a server started on a --db that is no
// server's file (a peer's, another program's) says so, and what to do, and
// exits 1 (a new user's review: it said what was wrong and no more).
func TestServerOnNoServersFile(t *testing.T) {
	dir := t.TempDir()
	junk, peer := filepath.Join(dir, "junk.db"), filepath.Join(dir, "alice.db")
	if err := os.WriteFile(junk, bytes.Repeat([]byte("junk"), 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	dhtFile(t, "peer", peer, false)
	port := strconv.Itoa(freePorts(t, 1)[0])
	for path, says := range map[string]string{
		junk: "store: " + junk + " is not a dht database file: not a bbolt database: give the server its own file (--db), or the path of a new one",
		peer: "store: " + peer + " is a peer file, not a server file: give the server its own file (--db), or the path of a new one",
	} {
		code, out, errOut := runWithin(t, 20*time.Second, "", "server", "--quiet", "--db", path, "--addr", "127.0.0.1", port)
		if code != 1 || out != "" || !strings.Contains(errOut, says) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("server --db %s: exit %d, stdout %q, stderr %q; want 1, nothing on stdout, one line saying %q", path, code, out, errOut, says)
		}
	}
}

// TestServerStopsWhenItsFileGoes: a server whose file is deleted or cut
// short while it runs stops at the next request that changes its state,
// with exit status 1 and a clear error, and does not answer that request;
// restarted on a file cut short, it refuses it.
func TestServerStopsWhenItsFileGoes(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(path string) error
		says   string
	}{
		{"deleted", os.Remove, "was deleted or moved while in use"},
		{"cut to two pages", func(path string) error { return os.Truncate(path, 8192) }, "was truncated from"},
		{"cut to nothing", func(path string) error { return os.Truncate(path, 0) }, "was truncated from"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "dht-server.db")
			port := freePorts(t, 1)[0]
			server := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
			type result struct {
				code   int
				stderr string
			}
			done := make(chan result, 1)
			go func() {
				code, _, errOut := runDHT(t, "", "server", "--quiet", "--db", path, "--addr", "127.0.0.1", strconv.Itoa(port))
				done <- result{code, errOut}
			}()
			// A register answered proves the server is up and commits.
			if reply, ok := register(t, server, "alice", 5*time.Second); !ok || !reply.OK {
				t.Fatalf("first register: %+v, answered %v", reply, ok)
			}
			if err := c.change(path); err != nil {
				t.Fatal(err)
			}
			if reply, ok := register(t, server, "bob", time.Second); ok {
				t.Fatalf("a register after the file went was answered: %+v", reply)
			}
			select {
			case r := <-done:
				if r.code != 1 || !strings.Contains(r.stderr, path) || !strings.Contains(r.stderr, c.says) {
					t.Fatalf("exit %d, stderr %q; want 1 saying %q", r.code, r.stderr, c.says)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the server runs on without its file")
			}
			if _, err := os.Stat(path); err != nil {
				return // deleted: a restart makes a new file
			}
			code, _, errOut := runWithin(t, 20*time.Second, "", "server", "--quiet", "--db", path, "--addr", "127.0.0.1", strconv.Itoa(port))
			if code != 1 || !strings.Contains(errOut, path) {
				t.Fatalf("restart: exit %d, stderr %q; want 1 naming the file", code, errOut)
			}
		})
	}
}

// register sends a register for name from a fresh socket (the address it
// registers) and waits up to wait for the server's reply; it retransmits,
// as a peer does, until then.
func register(t *testing.T, server netip.AddrPort, name string, wait time.Duration) (wire.Reply, bool) {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	self := c.LocalAddr().(*net.UDPAddr).AddrPort()
	dg, err := wire.Append(nil, 1, 0, wire.Register{Name: name, Addr: self})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); {
		if _, err := c.WriteToUDPAddrPort(dg, server); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(buf)
		if err != nil {
			continue
		}
		if _, m, err := wire.Decode(buf[:n]); err == nil {
			switch m := m.(type) {
			case wire.Reply:
				return m, true
			case wire.Challenge:
				// Sent to this socket: the register goes again with it.
				if dg, err = wire.Append(nil, 2, 0, wire.Register{Name: name, Addr: self, Cookie: m.Cookie}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return wire.Reply{}, false
}

// TestDBInAFolderNotThere: a peer's or a server's --db whose folder is not
// there, or is a file, or a path that cannot be followed (a loop of
// symbolic links, one to a file that is not there), fails at start (the
// peer's file would be made at the first register, which would fail), or
// a folder, exit status 1, one line
// saying why (a folder was a "resume FAILURE" with nothing to resume).
// An operator's review found the links failing only at register, the peer
// going on (exit 0), and a dangling link reported as "no such file".
func TestDBInAFolderNotThere(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(file, []byte("notes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	loop, dangling := filepath.Join(dir, "loop.db"), filepath.Join(dir, "dangling.db")
	if err := errors.Join(os.Symlink(loop, loop), os.Symlink(filepath.Join(dir, "moved.db"), dangling)); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(freePorts(t, 1)[0])
	for _, c := range []struct{ db, says string }{
		{filepath.Join(dir, "gone", "alice.db"), ": there is no folder " + filepath.Join(dir, "gone")},
		{filepath.Join(file, "alice.db"), ": " + file + " is not a folder"},
		{loop, ": too many levels of symbolic links"},
		{dangling, " is a symbolic link to " + filepath.Join(dir, "moved.db") + ", which is not there"},
		{dir, " is a folder: give the path of a file"},
		{filepath.Join(dir, "new.db") + "/", ": there is no folder " + filepath.Join(dir, "new.db")},
	} {
		code, out, errOut := runDHT(t, "register alice 127.0.0.1 5001\n", "peer", "--quiet", "--db", c.db, "127.0.0.1", port)
		if code != 1 || out != "" || !strings.HasPrefix(errOut, "dht: peer: --db "+c.db+c.says) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("--db %s: exit %d, stdout %q, stderr %q; want 1, nothing, and one line saying %q", c.db, code, out, errOut, c.says)
		}
		// The server says the same of its --db ('open new.db/: is a
		// directory' for a folder not there, an operator's review).
		code, out, errOut = runDHT(t, "", "server", "--addr", "127.0.0.1", "--db", c.db, port)
		if code != 1 || out != "" || !strings.HasPrefix(errOut, "dht: server: --db "+c.db+c.says) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("server --db %s: exit %d, stdout %q, stderr %q; want 1, nothing, and one line saying %q", c.db, code, out, errOut, c.says)
		}
	}
}
