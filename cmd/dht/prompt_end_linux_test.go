package main

import (
	"io"
	"strings"
	"syscall"
	"testing"
)

// Once the input has ended (Ctrl-D, a hang-up, a read that fails) no prompt
// is shown: no line will be read at it. The note that input ended is
// written after the prompt, and the peer's next idle turn showed "dht> "
// again, where what was typed went unread (a new user's review).
func TestNoPromptAfterTheInputEnded(t *testing.T) {
	for _, c := range []struct {
		name     string
		r        io.Reader
		terminal bool
	}{
		{"Ctrl-D", strings.NewReader("register carol 127.0.0.1 5003\n"), true},
		{"hang-up", failingReader{syscall.EIO}, true},
		{"a read that fails", failingReader{syscall.EISDIR}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stderr strings.Builder
			ap := &atPrompt{w: &stderr}
			n := &readErrNote{r: c.r, w: io.Discard, terminal: c.terminal, typed: ap.typed, ended: ap.end}
			ap.show(peerPrompt)
			if _, err := io.ReadAll(n); err != nil && c.terminal {
				t.Fatalf("reading: %v", err)
			}
			ap.before() // the note that input ended
			io.WriteString(&stderr, "input ended; still registered\n")
			ap.show(peerPrompt) // the next idle turn
			if got := strings.Count(stderr.String(), strings.TrimSpace(peerPrompt)); got != 1 {
				t.Fatalf("%d prompts, want the one before the input ended: %q", got, stderr.String())
			}
		})
	}
}
