package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// expectFound reads a found record's result and checks its Long Name.
func (p *proc) expectFound(longName string) {
	p.t.Helper()
	p.expect("query-dht SUCCESS: found at node ")
	for i := range 9 {
		if l := p.line(); i == 3 && l != "Long Name: "+longName {
			p.t.Fatalf("%s: %q, want the record of %q", p.name, l, longName)
		}
	}
}

// A query-dht without its Long Name, and the Long Name on the next line,
// from a pipe or a file, all lines there at once: the server is asked
// first; refused, the query-dht takes no Long Name and the next line is a
// command; answered, the next line is the Long Name. Every line is taken in
// its order.
func TestPipedQueryDHTTakesTheNextLine(t *testing.T) {
	dir, _, ports := e2eSetup(t)
	sport := strconv.Itoa(ports[0])
	script := func(u string, port int) string {
		return fmt.Sprintf("register %s 127.0.0.1 %d\nquery-dht %s\nAruba\nquery-dht %s Republic of Chile\nderegister %s\n", u, port, u, u, u)
	}

	// No DHT yet.
	server := startProc(t, "server", dir, "server", "--db", "server.db", "--addr", "127.0.0.1", sport)
	server.waitTrace("msg=listening")
	zb := startProc(t, "zb", dir, "peer", "--quiet", "--db", "zb.db", "127.0.0.1", sport)
	if _, err := io.WriteString(zb.stdin, script("zb", ports[3])); err != nil {
		t.Fatal(err)
	}
	zb.stdin.Close()
	zb.expect("register SUCCESS")
	zb.expect("query-dht FAILURE: no DHT exists")
	zb.expect("Aruba FAILURE: unknown command")
	zb.expect("query-dht FAILURE: no DHT exists")
	zb.expect("deregister SUCCESS")
	if err := zb.wait(); err != nil {
		t.Fatalf("zb: %v", err)
	}
	server.kill()

	// In a DHT, the script read from a file.
	dir = t.TempDir()
	ringOfTwo(t, dir, ports)
	path := filepath.Join(dir, "zc.txt")
	if err := os.WriteFile(path, []byte(script("zc", ports[4])), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zc := startProcIn(t, "zc", dir, f, "peer", "--quiet", "--db", "zc.db", "127.0.0.1", sport)
	zc.expect("register SUCCESS")
	zc.expectFound("Aruba")
	zc.expectFound("Republic of Chile")
	zc.expect("deregister SUCCESS")
	if err := zc.wait(); err != nil {
		t.Fatalf("zc: %v", err)
	}
}
