//go:build linux || darwin

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"dht/dataset"
)

// noteWriter passes each write on to a channel.
type noteWriter chan string

func (w noteWriter) Write(p []byte) (int, error) {
	w <- string(p)
	return len(p), nil
}

// TestDataFromAFIFOSaysItWaits: a --data FIFO that nothing has opened to
// write holds the peer at start; after dataWaitNote it says what it waits
// for, once, and once a writer has written the dataset and closed it the
// peer has its records.
func TestDataFromAFIFOSaysItWaits(t *testing.T) {
	good, err := os.ReadFile(datasetPath(t))
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "data.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFO here: %v", err)
	}
	defer func(d time.Duration) { dataWaitNote = d }(dataWaitNote)
	dataWaitNote = time.Millisecond
	notes := make(noteWriter, 4)
	type loaded struct {
		load func() (dataset.Source, error)
		err  error
	}
	done := make(chan loaded, 1)
	go func() {
		load, err := loadData(fifo, notes)
		done <- loaded{load, err}
	}()
	var note string
	select {
	case note = <-notes:
	case <-time.After(time.Minute):
		// Unblock loadData, which waits for a writer.
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		<-done
		t.Fatal("no note after a minute of waiting for a writer")
	}
	if !strings.Contains(note, "still reading --data "+fifo) || !strings.Contains(note, "a FIFO first waits for one to open it") {
		t.Fatalf("note %q", note)
	}
	select {
	case l := <-done:
		t.Fatalf("loadData returned before the FIFO had a writer: %v", l.err)
	default:
	}
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(good); err != nil {
		t.Fatal(err)
	}
	w.Close()
	l := <-done
	if l.err != nil {
		t.Fatal(l.err)
	}
	src, err := l.load()
	if err != nil || src.Len() != 241 {
		t.Fatalf("loaded %v records, %v; want 241", src, err)
	}
	if len(notes) != 0 {
		t.Fatalf("more notes: %q", <-notes)
	}
}

// TestDataWaitReasonOfAFileIsItsSize: a regular --data file slow to read
// is large, not a pipe waiting for its writer (a new user's review: a
// 64 MiB file was said to be "a pipe or a FIFO").
func TestDataWaitReasonOfAFileIsItsSize(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "data.csv")
	if err := os.WriteFile(file, make([]byte, 3<<19), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := dataWaitReason(file); strings.Contains(got, "FIFO") || !strings.Contains(got, "a file of 1.5 MiB") {
		t.Errorf("a regular file's reason is %q, want its size and no FIFO", got)
	}
	fifo := filepath.Join(dir, "data.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no FIFO here: %v", err)
	}
	if got := dataWaitReason(fifo); !strings.Contains(got, "a FIFO first waits for one to open it") {
		t.Errorf("a FIFO's reason is %q", got)
	}
}
