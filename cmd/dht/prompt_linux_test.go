package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: what is written to master is read
// from the slave as typed input.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err == nil {
		err = unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0)
	}
	if err != nil {
		m.Close()
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	return m, s
}

// notifyBuffer is a buffer that says when it has been written to.
type notifyBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{}
}

func (n *notifyBuffer) Write(p []byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.b.Write(p)
	select {
	case n.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (n *notifyBuffer) String() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.b.String()
}

// waitFor blocks until the buffer holds want count times.
func (n *notifyBuffer) waitFor(t *testing.T, want string, count int) {
	t.Helper()
	deadline := time.After(lineWait)
	for strings.Count(n.String(), want) < count {
		select {
		case <-n.wrote:
		case <-deadline:
			t.Fatalf("never saw %q %d times in %q", want, count, n.String())
		}
	}
}

// At a terminal the peer shows a hint and a prompt on stderr, and a prompt
// again after each command; stdout still has the results only.
func TestPeerPromptAtTerminal(t *testing.T) {
	master, slave := openPTY(t)
	defer slave.Close()
	if !isTerminal(slave) {
		t.Fatal("isTerminal(pty) = false")
	}
	if isTerminal(strings.NewReader("")) {
		t.Fatal("isTerminal(strings.Reader) = true")
	}
	if f, err := os.Open(os.DevNull); err == nil {
		if isTerminal(f) {
			t.Fatal("isTerminal(/dev/null) = true")
		}
		f.Close()
	}
	out := &notifyBuffer{wrote: make(chan struct{}, 1)}
	errOut := &notifyBuffer{wrote: make(chan struct{}, 1)}
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"dht", "peer", "--quiet", "127.0.0.1", "9"}, slave, out, errOut)
	}()
	errOut.waitFor(t, "type help for commands\n"+peerPrompt, 1)
	if _, err := master.WriteString("help\n"); err != nil {
		t.Fatal(err)
	}
	errOut.waitFor(t, peerPrompt, 2)
	if _, err := master.WriteString("frobnicate\n"); err != nil {
		t.Fatal(err)
	}
	errOut.waitFor(t, peerPrompt, 3)
	// Hanging up the terminal is the end of input: an unregistered peer
	// exits.
	master.Close()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
	case <-time.After(lineWait):
		t.Fatal("the peer did not exit when its terminal hung up")
	}
	if got := errOut.String(); got != "type help for commands\n"+strings.Repeat(peerPrompt, 3) {
		t.Fatalf("stderr: %q", got)
	}
	if o := out.String(); !strings.HasPrefix(o, "commands (") || !strings.HasSuffix(o, "frobnicate FAILURE: unknown command (type help for the list)\n") || strings.Contains(o, peerPrompt) {
		t.Fatalf("stdout: %q", o)
	}
}

// A query-dht typed at a terminal without its Long Name prompts for it on
// the next line; the answer comes, then the usual prompt.
func TestPeerPromptsForTheLongName(t *testing.T) {
	dir, _, ports := e2eSetup(t)
	server := startProc(t, "server", dir, "server", "--db", "server.db", "--addr", "127.0.0.1", strconv.Itoa(ports[0]))
	server.waitTrace("msg=listening")
	master, slave := openPTY(t)
	defer slave.Close()
	out := &notifyBuffer{wrote: make(chan struct{}, 1)}
	errOut := &notifyBuffer{wrote: make(chan struct{}, 1)}
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"dht", "peer", "--quiet", "--db", dir + "/alice.db", "127.0.0.1", strconv.Itoa(ports[0])}, slave, out, errOut)
	}()
	errOut.waitFor(t, "type help for commands\n"+peerPrompt, 1)
	if _, err := master.WriteString("register alice 127.0.0.1 " + strconv.Itoa(ports[1]) + "\n"); err != nil {
		t.Fatal(err)
	}
	errOut.waitFor(t, peerPrompt, 2)
	if _, err := master.WriteString("query-dht alice\n"); err != nil {
		t.Fatal(err)
	}
	errOut.waitFor(t, longNamePrompt, 1)
	if _, err := master.WriteString("Republic of Nowhere\n"); err != nil {
		t.Fatal(err)
	}
	errOut.waitFor(t, peerPrompt, 3)
	if _, err := master.WriteString("deregister alice\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
	case <-time.After(lineWait):
		t.Fatal("the peer did not exit after deregister")
	}
	if got, want := errOut.String(), "type help for commands\n"+peerPrompt+peerPrompt+longNamePrompt+peerPrompt; !strings.HasPrefix(got, want) {
		t.Fatalf("stderr: %q, want it to start %q", got, want)
	}
	if o := out.String(); !strings.Contains(o, "register SUCCESS") || !strings.Contains(o, "query-dht FAILURE") || strings.Contains(o, longNamePrompt) {
		t.Fatalf("stdout: %q", o)
	}
}
