package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"dht/dataset"
	"dht/internal/simnet"
	"dht/store"
)

// ringRun is a scripted run in simnet.Sim whose files are written to a folder
// after each step that snapshot names.
type ringRun struct {
	designRun
	t *testing.T
}

func newRingRun(t *testing.T) ringRun {
	t.Helper()
	data, err := dataset.Load(designData)
	if err != nil {
		t.Fatal(err)
	}
	sim := simnet.New(designSeed, designServer)
	for i, u := range designUsers {
		sim.AddPeer(u, designAddr(i), data)
	}
	return ringRun{designRun{t: t, sim: sim, inputs: map[string]int{}, start: new(string)}, t}
}

// files writes the run's files to a new folder and returns the server's
// and the peers' paths.
func (r ringRun) files() (server string, peers []string) {
	r.t.Helper()
	dir := r.t.TempDir()
	if err := r.sim.WriteFiles(dir); err != nil {
		r.t.Fatal(err)
	}
	peers, err := filepath.Glob(filepath.Join(dir, "dht-peer-*.db"))
	if err != nil {
		r.t.Fatal(err)
	}
	return filepath.Join(dir, "dht-server.db"), peers
}

func peerFile(peers []string, name string) string {
	return peers[slices.IndexFunc(peers, func(p string) bool { return filepath.Base(p) == "dht-peer-"+name+".db" })]
}

func without(peers []string, name string) []string {
	return slices.DeleteFunc(slices.Clone(peers), func(p string) bool { return filepath.Base(p) == "dht-peer-"+name+".db" })
}

func TestRingCommand(t *testing.T) {
	r := newRingRun(t)
	setupRing(r.designRun)
	members, free := r.ring() // alice, bob, carol; dave outside
	server, peers := r.files()
	before := map[string][]byte{}
	for _, f := range append([]string{server}, peers...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		before[f] = b
	}
	r.do(members[1], "leave-dht "+members[1], "leave-dht SUCCESS")
	serverAfter, peersAfter := r.files()
	// The file of a peer that never registered (or deregistered).
	nobody := filepath.Join(t.TempDir(), "dht-peer-nobody.db")
	db, err := store.OpenPeer(nobody)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		args []string
		want []string // in stdout
		not  []string
	}{
		{"the ring", append([]string{"ring", server}, peers...), []string{
			"ring of 3; every message travels right, from id i to id i+1 mod 3:",
			"id 0  " + members[0] + "  192.0.2.1",
			"(leader)",
			"id 2  " + members[2],
			"server: DHT ready, leader " + members[0],
			"241 records in the ring's files",
			"not in the ring: " + free[0],
		}, []string{"warning", "query"}},
		{"a query's walk from a member", append([]string{"ring", "--query", "Aruba", "--from", members[2], server}, peers...), []string{
			`query "Aruba": slot 138, id 138 mod 3 = 0; from ` + members[2] + ": " + members[2] + " → " + members[0] + ", 1 hop; " + members[0] + " holds it",
		}, nil},
		{"a name the ring does not hold", append([]string{"ring", "--query", "Atlantis", server}, peers...), []string{
			"has no such record, and answers the querier: not found",
		}, nil},
		{"without the server's file", peers, []string{
			"no server file: the ring as the peers' files hold it",
			"ring of 3",
			"not in the ring: " + free[0] + " (192.0.2.",
		}, []string{"warning"}},
		// One member's file alone: its id, ring size and neighbours place
		// the others, drawn without files, at the addresses it names.
		{"one member's file, no server's", []string{"ring", "--query", "Aruba", peerFile(peers, members[1])}, []string{
			"ring of 3",
			"id 0  " + members[0] + "  192.0.2.",
			"id 1  " + members[1] + " ",
			"id 2  " + members[2] + " ",
			"no file read of " + members[0] + ", " + members[2],
			members[0] + " would hold it; its file was not read, so whether it has the record is not known",
		}, []string{"warning", "no such record"}},
		{"a member's file missing", append([]string{"ring", server}, without(peers, members[1])...), []string{
			"  " + members[1] + "    192.0.2.12:5000        (no file read)",
			"166 records in the ring's files; no file read of " + members[1],
		}, []string{"warning"}},
		{"files of different times", append([]string{"ring", serverAfter}, peers...), []string{
			"ring of 2",
			"warning: " + members[2] + "'s file says id 2 of 3; it is member 0 of 2",
			"warning: " + members[1] + "'s file says id 1 of 3, but it is not a member of the ring",
			"warning: " + members[2] + " holds 38 records whose id (slot mod 2) is not 0",
		}, nil},
		{"a file of no registration", append([]string{"ring", server, nobody}, peers...), []string{
			"not in the ring: " + free[0] + " (192.0.2.",
			"no registration (deregistered, or never registered) in " + nobody,
		}, []string{"warning", "()"}},
		{"a leaver's file after the leave", append([]string{"ring", serverAfter}, peersAfter...), []string{
			"ring of 2",
			"not in the ring: " + members[1],
		}, []string{"warning"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args[0] != "ring" {
				args = append([]string{"ring"}, args...)
			}
			code, out, errOut := runDHT(t, "", args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(out, w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
		})
	}

	t.Run("svg", func(t *testing.T) {
		code, out, errOut := runDHT(t, "", append([]string{"ring", "--svg", "-", "--query", "Aruba", server}, peers...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if !strings.HasPrefix(out, "<svg ") || !strings.Contains(out, "query-result to the querier: found") {
			t.Fatalf("--svg - does not write the picture alone to stdout:\n%.300s", out)
		}
		path := filepath.Join(t.TempDir(), "ring.svg")
		code, text, errOut := runDHT(t, "", append([]string{"ring", "--svg", path, server}, peers...)...)
		if code != 0 || !strings.Contains(text, "ring of 3") {
			t.Fatalf("exit %d, stdout %q: %s", code, text, errOut)
		}
		if b, err := os.ReadFile(path); err != nil || !bytes.HasPrefix(b, []byte("<svg ")) {
			t.Fatalf("%s: %v %.100q", path, err, b)
		}
		// A FILE that cannot be written fails before the text is printed;
		// a folder is a usage error.
		dir := t.TempDir()
		code, text, errOut = runDHT(t, "", append([]string{"ring", "--svg", dir, server}, peers...)...)
		if code != 2 || text != "" || !strings.Contains(errOut, dir+" is a folder") {
			t.Fatalf("--svg to a folder: exit %d, stdout %q, stderr %q; want 2, nothing printed, the folder named", code, text, errOut)
		}
		nowhere := filepath.Join(dir, "no such folder", "ring.svg")
		code, text, errOut = runDHT(t, "", append([]string{"ring", "--svg", nowhere, server}, peers...)...)
		if code != 1 || text != "" || !strings.Contains(errOut, nowhere) {
			t.Fatalf("--svg into a missing folder: exit %d, stdout %q, stderr %q; want 1, nothing printed, the file named", code, text, errOut)
		}
	})

	for _, tc := range []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"no files", []string{"ring"}, 2, "ring takes the server's file and the peers' files"},
		{"--from alone", []string{"ring", "--from", members[0], server}, 2, "--from is where a --query starts"},
		{"an empty --query", []string{"ring", "--query", "", server}, 2, `--query needs a Long Name, got ""`},
		{"a --query of spaces", []string{"ring", "--query", "   ", server}, 2, `--query needs a Long Name, got "   "`},
		{"--from outside the ring", append([]string{"ring", "--query", "Aruba", "--from", free[0], server}, peers...), 2, "--from " + free[0] + ": not a member of the ring"},
		{"two servers", []string{"ring", server, serverAfter}, 2, "a second server file"},
		{"a query without a ring", []string{"ring", "--query", "Aruba", peerFile(peers, free[0])}, 1, "the files hold no ring"},
		{"not a dht file", []string{"ring", filepath.Join(designData)}, 1, designData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runDHT(t, "", tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.err) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errOut, tc.code, tc.err)
			}
		})
	}

	// dht ring only reads.
	for f, b := range before {
		if now, err := os.ReadFile(f); err != nil || !bytes.Equal(now, b) {
			t.Errorf("%s changed (%v)", f, err)
		}
	}
}

// The command the demo prints draws the ring of its files, written by the
// real runners: every record once, the files in agreement.
func TestRingOfTheDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	dir := t.TempDir()
	code, out, errOut := runDHT(t, "", "demo", "--data", datasetPath(t), "--dir", dir, "--peers", "5", "--seed", "7")
	if code != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", code, out, errOut)
	}
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "dht ring ") {
			line = strings.TrimSpace(l)
		}
	}
	args := strings.Fields(line)
	if len(args) < 5 || args[2] != "--svg" {
		t.Fatalf("the demo prints no dht ring command:\n%s", out)
	}
	args[3] = filepath.Join(dir, "ring.svg")
	code, ring, errOut := runDHT(t, "", args[1:]...)
	if code != 0 {
		t.Fatalf("%s: exit %d: %s", line, code, errOut)
	}
	for _, want := range []string{"ring of 4", "server: DHT ready, leader alice", "241 records in the ring's files", "(leader)"} {
		if !strings.Contains(ring, want) {
			t.Errorf("%s printed no %q:\n%s", line, want, ring)
		}
	}
	if strings.Contains(ring, "warning") {
		t.Errorf("the demo's files disagree:\n%s", ring)
	}
	if b, err := os.ReadFile(args[3]); err != nil || !bytes.HasPrefix(b, []byte("<svg ")) {
		t.Errorf("%s: %v", args[3], err)
	}
}
