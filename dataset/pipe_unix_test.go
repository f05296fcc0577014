//go:build unix

package dataset

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A dataset given as a pipe (the shell's <(…), a FIFO) can be read once:
// a Loader keeps what it loaded from it, and a leader's next setup-dht
// neither finds the pipe empty ("no header row") nor waits on it for a
// writer that is gone. One that did not load is read again.
func TestLoaderReadsAPipeOnce(t *testing.T) {
	raw, err := os.ReadFile(realPath)
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "data.csv")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	write := func(b []byte) {
		go func() {
			if err := os.WriteFile(fifo, b, 0o600); err != nil {
				t.Error(err)
			}
		}()
	}
	l := &Loader{Path: fifo}
	write([]byte("not,a,dataset\n"))
	if _, _, err := l.Load(); err == nil {
		t.Fatal("junk from the pipe loaded")
	}
	write(raw)
	first, _, err := l.Load()
	if err != nil || len(first) != 241 {
		t.Fatalf("from the pipe: %d records, %v", len(first), err)
	}
	again := make(chan []Record, 1)
	go func() {
		recs, _, err := l.Load()
		if err != nil {
			t.Error(err)
		}
		again <- recs
	}()
	select {
	case recs := <-again:
		if len(recs) != 241 || &recs[0] != &first[0] {
			t.Fatalf("the second load: %d records, the same: %v", len(recs), len(recs) > 0 && &recs[0] == &first[0])
		}
	case <-time.After(time.Minute):
		// The Load blocked opening the FIFO again; a writer lets it end.
		write(nil)
		<-again
		t.Fatal("the second load read the pipe again")
	}
}
