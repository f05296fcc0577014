package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// traceCutChild is set, to the trace's path, in the environment of the
// child TestATraceLineCutShortIsTakenBack starts.
const traceCutChild = "DHT_TEST_TRACE_CUT"

// TestTraceCutChild is TestATraceLineCutShortIsTakenBack's child: its files
// may grow to 4 KiB (RLIMIT_FSIZE), so that a trace line written across
// that size is written in part (a short write, then EFBIG), as one is on a
// disk that fills.
func TestTraceCutChild(t *testing.T) {
	path := os.Getenv(traceCutChild)
	if path == "" {
		t.Skip("run by TestATraceLineCutShortIsTakenBack")
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 4096, Max: 4096}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var note bytes.Buffer
	tf := &traceFile{f: f, path: path, note: &note}
	first := []byte(`{"dir":"event","event":"listening"}` + "\n")
	if err := tf.write(first); err != nil {
		t.Fatal(err)
	}
	long := []byte(`{"dir":"event","event":"` + strings.Repeat("x", 5000) + `"}` + "\n")
	if err := tf.write(long); !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("a write past the file's limit: %v, want EFBIG", err)
	}
	if err := tf.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, first) {
		t.Fatalf("the trace holds %d bytes, ending %q; want only its last whole line, %q", len(got), got[max(0, len(got)-20):], first)
	}
	if !strings.Contains(note.String(), "the JSON trace stops here (its last whole line is kept)") {
		t.Fatalf("note %q", note.String())
	}
}

// A trace line the disk took only in part (it filled in the middle of the
// write) is cut off again: the file ends with its last whole line, which
// dht diagram reads, rather than with half a line a later write, once space
// is freed, would be spliced onto.
func TestATraceLineCutShortIsTakenBack(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestTraceCutChild$", "-test.v")
	cmd.Env = append(os.Environ(), traceCutChild+"="+filepath.Join(t.TempDir(), "trace.jsonl"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestTraceCutChild") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
