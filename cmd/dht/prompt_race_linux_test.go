package main

import (
	"path/filepath"
	"testing"
)

// A line typed before the peer has set its terminal up (typed ahead, or
// while its file opens) is read by the input's goroutine, which
// LinesFrom starts at once: it must not race with the setup of the
// prompt's hook (readErrNote.typed). Run with -race.
func TestALineTypedAheadAtATerminal(t *testing.T) {
	master, slave := openPTY(t)
	t.Cleanup(func() { slave.Close(); master.Close() })
	if _, err := master.WriteString("help\n"); err != nil { // typed ahead
		t.Fatal(err)
	}
	out, errOut := &notifyBuffer{wrote: make(chan struct{}, 1)}, &notifyBuffer{wrote: make(chan struct{}, 1)}
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"dht", "peer", "--quiet", "--db", filepath.Join(t.TempDir(), "x.db"), "127.0.0.1", "49001"}, slave, out, errOut)
	}()
	out.waitFor(t, "register", 1) // help's text
	master.Close()
	<-done
}
