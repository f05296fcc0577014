package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Each range a flag or an argument count is checked against is refused at
// its edge too, with status 2 and the check's own words, before anything
// binds or opens a file: a server's or a peer's --db is in a folder not
// there, so that a check that regressed fails the command with status 1
// instead of running it.
func TestRangesAreRefusedAtTheirEdges(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "missing", "x.db")
	trace := filepath.Join(dir, "zed.jsonl")
	if err := os.WriteFile(trace, []byte(`{"time":"2026-12-07T09:31:16.557Z","process":"zed","dir":"event","event":"listening"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		// A PORT and then a second word: no server on the first port.
		{[]string{"server", "--db", db, "4000", "4001"}, "server takes one argument, PORT (see 'dht server --help')"},
		// [0,1): every datagram dropped is no fault to test with.
		{[]string{"server", "--db", db, "--fault-loss", "1", "4000"}, "--fault-loss must be in [0,1), got 1"},
		{[]string{"peer", "--db", db, "--fault-dup", "1.5", "127.0.0.1", "4000"}, "--fault-dup must be in [0,1], got 1.5"},
		// A give-up equal to the first timeout gives up before the first
		// retransmission.
		{[]string{"peer", "--db", db, "--rto", "1s", "--give-up", "1s", "127.0.0.1", "4000"}, "--give-up must be longer than --rto (1s), got 1s"},
		{[]string{"peer", "--db", db, "--window", "1025", "127.0.0.1", "4000"}, "--window must be 1-1024, got 1025"},
		{[]string{"peer", "--db", db, "--query-timeout", "0s", "127.0.0.1", "4000"}, "--query-timeout must be positive and at most 24h0m0s, got 0s"},
		// Below 0 is no fold size (0 is never).
		{[]string{"diagram", "--fold", "-1", trace}, "--fold must be 0 or more"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runDHT(t, "", tt.args...)
			if code != 2 || out != "" || errOut != "dht: "+tt.want+"\n" {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2, nothing, %q", code, out, errOut, "dht: "+tt.want+"\n")
			}
		})
	}
}

// A play file's sleep is at most an hour, as its error says.
func TestPlaySleepOverAnHourIsRefused(t *testing.T) {
	for _, d := range []string{"61m", "2h"} {
		_, err := parseScenario("x.play", []byte("alice: help\nsleep "+d+"\n"))
		want := fmt.Sprintf("x.play:2: invalid duration %q: e.g. 200ms or 2s (at most 1h)", d)
		if err == nil || err.Error() != want {
			t.Errorf("sleep %s: %v, want %q", d, err, want)
		}
	}
}
