package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

// terminalPeer is `dht peer` run in this process with a pseudo-terminal as
// its standard input, typed at through master.
type terminalPeer struct {
	t           *testing.T
	master      *os.File
	out, errOut *notifyBuffer
	done        chan int
}

// startTerminalPeer runs `dht peer args...` at a new pseudo-terminal and
// waits for its hint and first prompt.
func startTerminalPeer(t *testing.T, args ...string) *terminalPeer {
	t.Helper()
	master, slave := openPTY(t)
	t.Cleanup(func() { slave.Close(); master.Close() })
	if !isTerminal(slave) {
		t.Fatal("isTerminal(pty) = false")
	}
	p := &terminalPeer{t: t, master: master, done: make(chan int, 1),
		out: &notifyBuffer{wrote: make(chan struct{}, 1)}, errOut: &notifyBuffer{wrote: make(chan struct{}, 1)}}
	go func() {
		p.done <- run(append([]string{"dht", "peer", "--quiet"}, args...), slave, p.out, p.errOut)
	}()
	p.errOut.waitFor(t, "type help for commands\n"+peerPrompt, 1)
	return p
}

// typeLine types line and waits until stderr holds prompt count times.
func (p *terminalPeer) typeLine(line, prompt string, count int) {
	p.t.Helper()
	if _, err := p.master.WriteString(line + "\n"); err != nil {
		p.t.Fatal(err)
	}
	p.errOut.waitFor(p.t, prompt, count)
}

// exited waits for the peer to end, with status 0.
func (p *terminalPeer) exited(after string) {
	p.t.Helper()
	select {
	case code := <-p.done:
		if code != 0 {
			p.t.Fatalf("exit %d: %s", code, p.errOut.String())
		}
	case <-time.After(lineWait):
		p.t.Fatalf("the peer did not exit %s", after)
	}
}

// At a terminal the peer shows a hint and a prompt on stderr, and a prompt
// again after each command; stdout still has the results only.
func TestPeerPromptAtTerminal(t *testing.T) {
	if isTerminal(strings.NewReader("")) {
		t.Fatal("isTerminal(strings.Reader) = true")
	}
	if f, err := os.Open(os.DevNull); err == nil {
		if isTerminal(f) {
			t.Fatal("isTerminal(/dev/null) = true")
		}
		f.Close()
	}
	p := startTerminalPeer(t, "127.0.0.1", "9")
	p.typeLine("help", peerPrompt, 2)
	p.typeLine("frobnicate", peerPrompt, 3)
	// Hanging up the terminal is the end of input: an unregistered peer
	// exits.
	p.master.Close()
	p.exited("when its terminal hung up")
	if got := p.errOut.String(); got != "type help for commands\n"+strings.Repeat(peerPrompt, 3) {
		t.Fatalf("stderr: %q", got)
	}
	if o := p.out.String(); !strings.HasPrefix(o, "help SUCCESS\ncommands (") || !strings.HasSuffix(o, "frobnicate FAILURE: unknown command (type help for the list)\n") || strings.Contains(o, peerPrompt) {
		t.Fatalf("stdout: %q", o)
	}
}

// A query-dht typed at a terminal without its Long Name asks the server
// first: refused, it prints the FAILURE and prompts for the next command;
// answered, it prompts for the Long Name on the next line, then answers.
func TestPeerPromptsForTheLongName(t *testing.T) {
	dir, _, ports := e2eSetup(t)
	sport := strconv.Itoa(ports[0])
	server := startProc(t, "server", dir, "server", "--db", "server.db", "--addr", "127.0.0.1", sport)
	server.waitTrace("msg=listening")

	// No DHT: no Long Name asked for.
	p := startTerminalPeer(t, "--db", dir+"/dave.db", "127.0.0.1", sport)
	p.typeLine("register dave 127.0.0.1 "+strconv.Itoa(ports[4]), peerPrompt, 2)
	p.typeLine("query-dht dave", peerPrompt, 3)
	if _, err := p.master.WriteString("deregister dave\n"); err != nil {
		t.Fatal(err)
	}
	p.exited("after deregister")
	if got, want := p.errOut.String(), "type help for commands\n"+strings.Repeat(peerPrompt, 3); got != want {
		t.Fatalf("stderr: %q, want %q", got, want)
	}
	if o, want := p.out.String(), "register SUCCESS\nquery-dht FAILURE: no DHT exists\nderegister SUCCESS\n"; o != want {
		t.Fatalf("stdout: %q, want %q", o, want)
	}

	// A ring of alice and bob; carol, Free, is asked for the Long Name.
	for i, u := range []string{"alice", "bob"} {
		q := startProc(t, u, dir, "peer", "--quiet", "--data", datasetPath(t), "--db", u+".db", "127.0.0.1", sport)
		q.do("register "+u+" 127.0.0.1 "+strconv.Itoa(ports[i+1]), "register SUCCESS")
		if u == "bob" {
			q.do("setup-dht 2 bob", "setup-dht SUCCESS")
			q.expect("dht-complete SUCCESS")
		}
	}
	p = startTerminalPeer(t, "--db", dir+"/carol.db", "127.0.0.1", sport)
	p.typeLine("register carol 127.0.0.1 "+strconv.Itoa(ports[3]), peerPrompt, 2)
	p.typeLine("query-dht carol", longNamePrompt, 1)
	p.typeLine("Aruba", peerPrompt, 3)
	if _, err := p.master.WriteString("deregister carol\n"); err != nil {
		t.Fatal(err)
	}
	p.exited("after deregister")
	if got, want := p.errOut.String(), "type help for commands\n"+strings.Repeat(peerPrompt, 2)+longNamePrompt+peerPrompt; !strings.HasPrefix(got, want) {
		t.Fatalf("stderr: %q, want it to start %q", got, want)
	}
	if o := p.out.String(); !strings.Contains(o, "query-dht SUCCESS: found at node ") || !strings.Contains(o, "\nLong Name: Aruba\n") || strings.Contains(o, peerPrompt) {
		t.Fatalf("stdout: %q", o)
	}
}

// Ctrl-D at a terminal while registered ends the input, says so on
// stderr (a Free user's peer, that a setup may pick it), and the peer goes
// on serving the ring (here: it is chosen for one) until SIGTERM, which it
// says it stops in (a new user's review: it stopped without a word of what
// becomes of its place).
func TestPeerCtrlDWhileRegistered(t *testing.T) {
	dir, _, ports := e2eSetup(t)
	sport := strconv.Itoa(ports[0])
	server := startProc(t, "server", dir, "server", "--db", "server.db", "--addr", "127.0.0.1", sport)
	server.waitTrace("msg=listening")
	master, slave := openPTY(t)
	t.Cleanup(func() { slave.Close(); master.Close() })
	carol := startProcIn(t, "carol", dir, slave, "peer", "--quiet", "--db", "carol.db", "127.0.0.1", sport)
	carol.waitTrace("type help for commands")
	if _, err := master.WriteString("register carol 127.0.0.1 " + strconv.Itoa(ports[2]) + "\n"); err != nil {
		t.Fatal(err)
	}
	carol.expect("register SUCCESS")
	if _, err := master.WriteString("\x04"); err != nil { // VEOF at the start of a line
		t.Fatal(err)
	}
	carol.waitTrace("input ended; still registered as carol, which a setup-dht may pick for its ring: running until stopped (Ctrl-C or SIGTERM)")
	alice := startProc(t, "alice", dir, "peer", "--quiet", "--data", datasetPath(t), "--db", "alice.db", "127.0.0.1", sport)
	alice.do("register alice 127.0.0.1 "+strconv.Itoa(ports[1]), "register SUCCESS")
	alice.do("setup-dht 2 alice", "setup-dht SUCCESS: ring of 2: alice carol")
	alice.expect("dht-complete SUCCESS")
	if err := carol.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// No prompt once the input has ended: none is read at it (a new
	// user's review: "dht> " came back after the note, at every idle
	// turn, and what was typed there went unread).
	carol.waitTraceWithout("stopped while carol holds a place in the ring: started again on the same --db it resumes it", strings.TrimSpace(peerPrompt))
	if err := carol.wait(); err != nil {
		t.Fatalf("carol after SIGTERM: %v", err)
	}
}

// A peer resumed at a terminal shows its prompt after the resume's line,
// not before it: the prompt, written first, was left in front of the
// resume line, and none followed it (a new user's review).
func TestPeerPromptFollowsTheResume(t *testing.T) {
	dir, _, ports := e2eSetup(t)
	sport := strconv.Itoa(ports[0])
	server := startProc(t, "server", dir, "server", "--db", "server.db", "--addr", "127.0.0.1", sport)
	server.waitTrace("msg=listening")
	alice := startProc(t, "alice", dir, "peer", "--quiet", "--db", "alice.db", "127.0.0.1", sport)
	alice.do("register alice 127.0.0.1 "+strconv.Itoa(ports[1]), "register SUCCESS")
	if err := alice.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := alice.wait(); err != nil {
		t.Fatalf("alice after SIGTERM: %v", err)
	}
	master, slave := openPTY(t)
	t.Cleanup(func() { slave.Close(); master.Close() })
	both := &notifyBuffer{wrote: make(chan struct{}, 1)} // stdout and stderr, as a terminal shows them
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"dht", "peer", "--quiet", "--db", filepath.Join(dir, "alice.db"), "127.0.0.1", sport}, slave, both, both)
	}()
	both.waitFor(t, peerPrompt, 1)
	want := "type help for commands\nresume SUCCESS: alice 127.0.0.1:" + strconv.Itoa(ports[1]) + " Free\n" + peerPrompt
	if got := both.String(); got != want {
		t.Fatalf("the terminal shows %q, want %q", got, want)
	}
	if _, err := master.WriteString("deregister alice\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, both.String())
		}
	case <-time.After(lineWait):
		t.Fatal("the peer did not exit after deregister")
	}
}

// failingReader fails every read with err.
type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

// A terminal that hangs up fails a read begun after it with EIO (one that
// waited sees the end of input): at a terminal that is the end of input,
// said by no error line (TestPeerPromptAtTerminal, on a loaded machine,
// found "standard input cannot be read … input/output error" after its
// hang-up). From anything else EIO is an error, and said.
func TestATerminalHungUpIsTheEndOfInput(t *testing.T) {
	for _, terminal := range []bool{true, false} {
		var note strings.Builder
		n := &readErrNote{r: failingReader{syscall.EIO}, w: &note, terminal: terminal}
		_, err := n.Read(make([]byte, 8))
		if terminal && (err != io.EOF || note.Len() != 0) {
			t.Errorf("a terminal's EIO: %v, note %q; want the end of input, unsaid", err, note.String())
		}
		if !terminal && (!errors.Is(err, syscall.EIO) || !strings.Contains(note.String(), "standard input cannot be read, taken as its end: input/output error")) {
			t.Errorf("a file's EIO: %v, note %q; want it said", err, note.String())
		}
	}
}

// At a terminal, a wait's note follows the typed line at once, with no
// blank line (its Enter ended the prompt's line), and the prompt comes
// back after the command's result (a new user's review: each note began
// with a blank line).
func TestAWaitNoteAtATerminal(t *testing.T) {
	ports := freePorts(t, 2) // nothing listens on the first: no server there
	dir := t.TempDir()
	p := startTerminalPeer(t, "--give-up", "3s", "--db", filepath.Join(dir, "erin.db"), "127.0.0.1", strconv.Itoa(ports[0]))
	p.typeLine("register erin 127.0.0.1 "+strconv.Itoa(ports[1]), peerPrompt, 2)
	note := "register: waiting for the server at 127.0.0.1:" + strconv.Itoa(ports[0]) + " to answer register (this peer gives up in 1s), for 2s so far\n"
	if got, want := p.errOut.String(), "type help for commands\n"+peerPrompt+note+peerPrompt; got != want {
		t.Fatalf("stderr: %q, want %q", got, want)
	}
	if o := p.out.String(); !strings.HasPrefix(o, "register FAILURE: no answer from the server") {
		t.Fatalf("stdout: %q", o)
	}
	p.master.Close()
	p.exited("when its terminal hung up")
}
