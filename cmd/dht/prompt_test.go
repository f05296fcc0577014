package main

import (
	"strings"
	"testing"
)

// Piped input gets no prompt and no hint: stdout has the results only and
// stderr nothing but the trace.
func TestPeerNoPromptWhenPiped(t *testing.T) {
	code, out, errOut := runDHT(t, "help\n\nfrobnicate\n", "peer", "--quiet", "127.0.0.1", "9")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.HasPrefix(out, "help SUCCESS\ncommands (") || !strings.HasSuffix(out, "frobnicate FAILURE: unknown command (type help for the list)\n") {
		t.Fatalf("stdout:\n%s", out)
	}
	if errOut != "" {
		t.Fatalf("stderr of a piped, quiet peer: %q", errOut)
	}
}
