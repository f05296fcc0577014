package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// A real run of the binary on 127.0.0.1, every process writing
// --trace-json, draws as one lifeline per process with the protocol's
// arrows: the diagram does not depend on the simulation.
func TestDiagramOfRealRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary")
	}
	dir := t.TempDir()
	ports := freePorts(t, 4)
	data := datasetPath(t)
	server := startProc(t, "server", dir, "server", "--addr", "127.0.0.1", "--db", "s.db", "--trace-json", "server.jsonl", fmt.Sprint(ports[0]))
	server.waitTrace("listening")
	users := []string{"alice", "bob", "carol"}
	peers := map[string]*proc{}
	for i, u := range users {
		p := startProc(t, u, dir, "peer", "--data", data, "--db", u+".db", "--trace-json", u+".jsonl", "127.0.0.1", fmt.Sprint(ports[0]))
		p.do(fmt.Sprintf("register %s 127.0.0.1 %d", u, ports[i+1]), "register SUCCESS")
		peers[u] = p
	}
	alice := peers["alice"]
	alice.do("setup-dht 3 alice", "setup-dht SUCCESS")
	alice.expect("dht-complete SUCCESS")
	alice.do("teardown-dht alice", "teardown-dht SUCCESS")
	alice.expect("teardown-complete SUCCESS")
	for _, u := range users {
		peers[u].do("deregister "+u, "deregister SUCCESS")
		if err := peers[u].wait(); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
	}
	if err := server.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := server.wait(); err != nil {
		t.Fatalf("server: %v", err)
	}

	args := []string{"dht", "diagram", "--title", "real run", "--mermaid", filepath.Join(dir, "run.mmd"), "--svg", filepath.Join(dir, "run.svg")}
	for _, f := range []string{"server", "alice", "bob", "carol"} {
		args = append(args, filepath.Join(dir, f+".jsonl"))
	}
	var out, errOut bytes.Buffer
	if code := run(args, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("diagram: exit %d: %s", code, errOut.String())
	}
	mmd, err := os.ReadFile(filepath.Join(dir, "run.mmd"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(mmd)
	participants := regexp.MustCompile(`(?m)^    participant (.*)$`).FindAllStringSubmatch(text, -1)
	var names []string
	for _, p := range participants {
		names = append(names, p[1])
	}
	// Every address resolves to its process, the server's 0.0.0.0-style
	// listener and the peers' lines before they knew their names included.
	// The server first, then the ring by id: alice leads it.
	if len(names) != 4 || names[0] != "server" || names[1] != "alice" || !slices.Contains(names, "bob") || !slices.Contains(names, "carol") {
		t.Fatalf("participants %q, want the server, then alice (id 0) and the two others:\n%s", names, text)
	}
	for _, want := range []string{
		"Note over alice: $ register alice 127.0.0.1",
		"alice->>server: setup-dht 3 alice",
		"alice->>bob: set-id", "alice->>carol: set-id",
		"store ×", "flush of alice's round",
		"alice->>server: dht-complete alice",
		"alice->>server: teardown-complete alice",
		"Note over alice: dht-complete SUCCESS",
		"process exits",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the diagram lacks %q:\n%s", want, text)
		}
	}
	// The flush back is acked; a process starved of CPU past its
	// retransmission timeout sends it again, and the ack then goes with the
	// copy marked [retransmit].
	flat := strings.ReplaceAll(text, "<br/>", " ")
	// The server's lifeline ends with why it stopped.
	if !strings.Contains(flat, "Note over server: process exits: terminated signal received") {
		t.Errorf("the diagram lacks the server's exit on SIGTERM:\n%s", text)
	}
	if !regexp.MustCompile(`flush back at alice: every record received( \[retransmit\])? · acked`).MatchString(flat) {
		t.Errorf("the diagram lacks an acked flush back at alice:\n%s", text)
	}
	// Every store and ack arrived (loopback loses nothing): no lost arrows,
	// but for the answer to a deregister sent again, which may come after
	// the first answer made the peer exit.
	lostAnswer := regexp.MustCompile(`^\s*server--x(\w+): SUCCESS \[lost\]$`)
	for _, l := range strings.Split(text, "\n") {
		m := lostAnswer.FindStringSubmatch(l)
		if m != nil && strings.Contains(text, m[1]+"->>server: deregister "+m[1]+" [retransmit]") {
			continue
		}
		if strings.Contains(l, "-x") {
			t.Errorf("lost datagrams in a loopback run:\n%s", text)
			break
		}
	}
	svg, err := os.ReadFile(filepath.Join(dir, "run.svg"))
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(svg))
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("SVG: %v", err)
		}
	}
}
