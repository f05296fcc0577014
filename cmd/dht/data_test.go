package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPeerRefusesAnUnusableDataset: a --data file that cannot be read or
// does not load stops the peer at start, with the reason and exit status
// 1, before it reads a command: nothing is registered, no file is made.
func TestPeerRefusesAnUnusableDataset(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.csv")
	if err := os.WriteFile(broken, []byte("Country Code,Long Name\nABW,Aruba\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, data, want string
	}{
		{"a missing file", filepath.Join(dir, "none.csv"), "none.csv: no such file or directory"},
		{"a folder", dir, "is a directory"},
		{"a file that does not load", broken, "broken.csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "alice.db")
			// The server's address is never used: the peer stops first.
			code, out, errOut := runWithin(t, time.Minute, "register alice 127.0.0.1 1\n",
				"peer", "--quiet", "--data", tt.data, "--db", db, "127.0.0.1", "1")
			if code != 1 || out != "" || !strings.HasPrefix(errOut, "dht: peer: dataset: ") || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 1, nothing, dht: peer: dataset: …%s", code, out, errOut, tt.want)
			}
			if _, err := os.Stat(db); !os.IsNotExist(err) {
				t.Fatalf("the peer made its file: %v", err)
			}
		})
	}
}

// TestSetupWithADatasetBrokenAfterStart: the file is read again at each
// setup-dht, so one that breaks while the peer runs fails that command
// before anything is asked of the server (no DHT exists after it), and
// one mended again is spread.
func TestSetupWithADatasetBrokenAfterStart(t *testing.T) {
	dir, _, ports := e2eSetup(t)
	good, err := os.ReadFile(datasetPath(t))
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data.csv")
	if err := os.WriteFile(data, good, 0o644); err != nil {
		t.Fatal(err)
	}
	sport := fmt.Sprint(ports[0])
	e2eServer(t, dir, sport)
	var peers []*proc
	for i, u := range []string{"alice", "bob"} {
		p := startProc(t, u, dir, "peer", "--quiet", "--data", data, "--db", u+".db", "127.0.0.1", sport)
		p.do(fmt.Sprintf("register %s 127.0.0.1 %d", u, ports[i+1]), "register SUCCESS")
		peers = append(peers, p)
	}
	alice, bob := peers[0], peers[1]

	if err := os.WriteFile(data, good[:len(good)/2], 0o644); err != nil { // cut inside a record
		t.Fatal(err)
	}
	alice.do("setup-dht 2 alice", "setup-dht FAILURE: cannot use the dataset: "+data)
	bob.do("query-dht bob Aruba", "query-dht FAILURE: no DHT exists")

	if err := os.WriteFile(data, good, 0o644); err != nil {
		t.Fatal(err)
	}
	alice.do("setup-dht 2 alice", "setup-dht SUCCESS: ring of 2")
	alice.expect("dht-complete SUCCESS")
}
