package main

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

// A peer whose results cannot be written (stdout on a full disk, closed)
// says so on stderr, once, and exits with status 1: every result was
// lost, unsaid, and it exited 0 (a new user's review).
func TestAPeerWhoseStdoutFailsSaysSo(t *testing.T) {
	var stderr strings.Builder
	code := run([]string{"dht", "peer", "--quiet", "127.0.0.1", "4000"}, strings.NewReader("help\nhelp\n"), fullWriter{}, &stderr)
	if code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	if n := strings.Count(stderr.String(), "results cannot be written to standard output"); n != 1 {
		t.Errorf("said %d times, want once: %q", n, stderr.String())
	}
	if !strings.Contains(stderr.String(), "results could not be written to standard output: "+syscall.ENOSPC.Error()) {
		t.Errorf("no error at exit: %q", stderr.String())
	}
	n := &writeErrNote{w: fullWriter{}, note: &strings.Builder{}}
	if _, err := n.Write([]byte("x")); !errors.Is(err, syscall.ENOSPC) || !errors.Is(n.failed(), syscall.ENOSPC) {
		t.Errorf("the write's error %v, kept %v", err, n.failed())
	}
}
