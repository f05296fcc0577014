package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"dht/store"
)

func TestDemo(t *testing.T) {
	for _, peers := range []int{3, 5, 8} {
		t.Run(fmt.Sprintf("%d peers", peers), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "demo")
			code, out, errOut := runDHT(t, "", "demo", "--data", datasetPath(t), "--dir", dir, "--peers", strconv.Itoa(peers), "--seed", "7")
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
			}
			if errOut != "" {
				t.Fatalf("stderr without --trace: %s", errOut)
			}
			for _, want := range []string{
				"The bbolt files are in " + dir,
				fmt.Sprintf("setup-dht SUCCESS: ring of %d: alice ", peers-1),
				"dht-complete SUCCESS",
				"query-dht SUCCESS: found at node ",
				`query-dht FAILURE: "Kingdom of Atlantis" not found in the DHT`,
				"only Free users may query",
				"join-dht SUCCESS\ndht-rebuilt SUCCESS: joined as id ",
				", led by alice\n",
				"leave-dht SUCCESS",
				"dht-rebuilt SUCCESS: new leader ",
				"teardown-complete SUCCESS",
				"dht inspect " + filepath.Join(dir, "dht-server.db"),
				"dht ring --svg ring.svg " + filepath.Join(dir, "dht-server.db") + " " + filepath.Join(dir, "dht-peer-alice.db"),
			} {
				if !strings.Contains(out, want) {
					t.Errorf("narration lacks %q", want)
				}
			}
			if n := len(regexp.MustCompile(`(?m)^query-dht SUCCESS: found at node \w+ \(id \d+\) after \d+ hops?$`).FindAllString(out, -1)); n < 3 {
				t.Errorf("%d successful queries with hops, want at least 3:\n%s", n, out)
			}
			// The files are closed and hold the last ring: every record once.
			rep, err := store.Inspect(filepath.Join(dir, "dht-server.db"), 0)
			if err != nil {
				t.Fatal(err)
			}
			srv := rep.(*store.ServerReport)
			if len(srv.Users) != peers {
				t.Fatalf("server file has %d users, want %d", len(srv.Users), peers)
			}
			total := 0
			for i := range peers {
				rep, err := store.Inspect(filepath.Join(dir, "dht-peer-"+demoName(i)+".db"), 0)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range rep.(*store.PeerReport).Slots {
					total += len(s.Records)
				}
			}
			if total != 241 {
				t.Fatalf("the last ring holds %d records, want 241", total)
			}
		})
	}
}

// TestDemoTempFolder: without --dir the demo works in a new folder under
// $TMPDIR, with the embedded dataset, and removes the folder at the end
// unless --keep; with --keep it says where the files are.
func TestDemoTempFolder(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep=%v", keep), func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			args := []string{"demo", "--peers", "3", "--seed", "3"}
			if keep {
				args = append(args, "--keep")
			}
			code, out, errOut := runDHT(t, "", args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
			}
			if !strings.Contains(out, "read the 241 records of the embedded StatsCountry.csv") {
				t.Errorf("the demo does not say it spread the embedded dataset:\n%s", out)
			}
			left, err := filepath.Glob(filepath.Join(tmp, "dht-demo-*"))
			if err != nil {
				t.Fatal(err)
			}
			if !keep {
				if len(left) != 0 {
					t.Errorf("folders left under $TMPDIR: %v", left)
				}
				if !strings.Contains(out, "bbolt files removed (--keep or --dir keeps them)") {
					t.Errorf("the demo does not say its files are gone:\n%s", out)
				}
				// Its last ring is not said to be left for the files it
				// removes (a new user's review).
				if strings.Contains(out, "so the files have something to show") {
					t.Errorf("the demo says its last ring is left for files it removes:\n%s", out)
				}
				return
			}
			if len(left) != 1 {
				t.Fatalf("folders under $TMPDIR: %v, want one", left)
			}
			if !strings.Contains(out, "bbolt files in "+left[0]) || !strings.Contains(out, "dht inspect "+filepath.Join(left[0], "dht-server.db")) {
				t.Errorf("the demo does not say where it kept its files (%s):\n%s", left[0], out)
			}
			if _, err := os.Stat(filepath.Join(left[0], "dht-server.db")); err != nil {
				t.Error(err)
			}
			if !strings.Contains(out, "left standing so the files have something to show") {
				t.Errorf("the demo does not say its last ring is left for its files:\n%s", out)
			}
		})
	}
}

func TestDemoNames(t *testing.T) {
	seen := map[string]bool{}
	for i := range 65 {
		n := demoName(i)
		if !regexp.MustCompile(`^[a-z]{1,15}$`).MatchString(n) || seen[n] {
			t.Fatalf("name %d: %q", i, n)
		}
		seen[n] = true
	}
}

func TestDemoErrors(t *testing.T) {
	busy := t.TempDir()
	if err := os.WriteFile(filepath.Join(busy, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"too few peers", []string{"--peers", "2"}, 2, "--peers must be 3 to 65"},
		{"too many peers", []string{"--peers", "66"}, 2, "--peers must be 3 to 65"},
		{"an argument", []string{"now"}, 2, "demo takes no arguments"},
		{"a bad port", []string{"--port", "70000"}, 2, "--port must be"},
		{"a missing dataset", []string{"--data", filepath.Join(t.TempDir(), "none.csv")}, 1, "none.csv: no such file or directory"},
		{"a folder in use", []string{"--dir", busy}, 1, "is not empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The dataset and a folder of its own, unless the case gives
			// its own (a flag given twice is refused).
			args := []string{"demo"}
			if !slices.Contains(tt.args, "--data") {
				args = append(args, "--data", datasetPath(t))
			}
			if !slices.Contains(tt.args, "--dir") {
				args = append(args, "--dir", filepath.Join(t.TempDir(), "d"))
			}
			code, out, errOut := runDHT(t, "", append(args, tt.args...)...)
			if code != tt.code || !strings.Contains(errOut, tt.msg) {
				t.Fatalf("exit %d, want %d; stderr %q lacks %q\n%s", code, tt.code, errOut, tt.msg, out)
			}
			// Told to use --data when it was used, the user would look
			// for a flag that did not take.
			if strings.Contains(errOut, "give the dataset with --data") {
				t.Fatalf("stderr %q suggests --data, which was given", errOut)
			}
		})
	}
}

// TestDemoKeepRunning runs the binary with the embedded dataset: another
// process's peer, started as the demo's hint says, registers with the
// demo's server and queries its ring; Ctrl-C ends the demo.
func TestDemoKeepRunning(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	files := filepath.Join(dir, "files")
	demo := startProc(t, "demo", dir, "demo", "--keep-running", "--dir", files)
	peerLine := regexp.MustCompile(`^  dht peer --db (\S+) (127\.0\.0\.1) (\d+)$`)
	var hint []string
	for hint == nil {
		if m := peerLine.FindStringSubmatch(demo.line()); m != nil {
			hint = m[1:]
		}
	}
	if want := filepath.Join(files, "dht-peer-you.db"); hint[0] != want {
		t.Errorf("the hint's --db is %s, want %s (in the demo's folder)", hint[0], want)
	}
	for !strings.Contains(demo.line(), "query-dht you Aruba") {
	}
	p := startProc(t, "you", dir, "peer", "--db", hint[0], hint[1], hint[2])
	port := freePorts(t, 1)[0]
	p.do(fmt.Sprintf("register you 127.0.0.1 %d", port), "register SUCCESS")
	p.do("query-dht you Aruba", "query-dht SUCCESS: found at node ")
	for range 9 {
		p.line()
	}
	p.do("deregister you", "deregister SUCCESS")
	if err := p.wait(); err != nil {
		t.Fatalf("peer: %v", err)
	}
	if err := demo.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	demo.expect("Stopping.")
	if err := demo.wait(); err != nil {
		t.Fatalf("demo exited with %v after SIGINT", err)
	}
}

// A demo or play whose reader goes away (dht demo | head -1) still removes
// its folder: SIGPIPE killed it at its next line, and the folder stayed (a
// new user's review; and a tools review for play).
func TestReaderGoneRemovesTheFolder(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	scenario := writeScenario(t, "a: register a 127.0.0.1 ${PORT:a}\nb: register b 127.0.0.1 ${PORT:b}\nc: register c 127.0.0.1 ${PORT:c}\na: setup-dht 2 a\nc: query-dht c Aruba\na: teardown-dht a\n")
	for _, tc := range []struct {
		prefix string
		args   []string
	}{
		{"dht-demo-", []string{"demo", "--peers", "3", "--seed", "3"}},
		{"dht-play-", []string{"play", scenario}},
	} {
		t.Run(tc.args[0], func(t *testing.T) {
			tmp := t.TempDir()
			cmd := exec.Command(dhtBinary(t), tc.args...)
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if _, err := bufio.NewReader(out).ReadString('\n'); err != nil { // one line, as head -1
				t.Fatal(err)
			}
			out.Close()
			err = cmd.Wait()
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				t.Fatalf("%s was killed by %v", tc.args[0], ws.Signal())
			}
			if err != nil {
				t.Logf("%s ended: %v", tc.args[0], err)
			}
			left, err := filepath.Glob(filepath.Join(tmp, tc.prefix+"*"))
			if err != nil || len(left) != 0 {
				t.Fatalf("folders left under $TMPDIR: %v %v", left, err)
			}
		})
	}
}
