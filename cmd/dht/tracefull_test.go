package main

import (
	"os"
	"strings"
	"testing"
)

// TestTraceJSONRefusedWriteFails: a --trace-json file whose writes the disk
// refuses (/dev/full: ENOSPC) is said on stderr and makes the process exit 1
// (an operator's review: a peer and a server whose trace filled the disk
// exited 0, silent, with a line cut in the middle and, once space was
// freed, spliced with the next, so that dht diagram refused the file).
func TestTraceJSONRefusedWriteFails(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full here")
	}
	code, _, errOut := runDHT(t, "help\n", "peer", "--quiet", "--trace-json", "/dev/full", "127.0.0.1", "4000")
	if code != 1 || !strings.Contains(errOut, "--trace-json /dev/full") {
		t.Fatalf("exit %d, want 1 saying --trace-json /dev/full; stderr:\n%s", code, errOut)
	}
}
