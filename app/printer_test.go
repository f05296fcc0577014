package app

import (
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
)

// The hooks come after what was queued before them, from the printer's
// goroutine, in order; one queued again before the first call is made is
// called once, with the later count.
func TestPrinterCallsHooksAfterTheirOutput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got []string
		p := newPrinter(
			func(n int) { got = append(got, fmt.Sprintf("idle %d", n)) },
			func(n int) { got = append(got, fmt.Sprintf("wants %d", n)) })
		release := make(chan struct{})
		w := writerFunc(func(b []byte) (int, error) {
			<-release
			got = append(got, string(b))
			return len(b), nil
		})
		p.write(w, []byte("a"))
		synctest.Wait() // the printer is writing "a"
		p.hookIdle(1)
		p.hookIdle(2)
		p.write(w, []byte("b"))
		p.hookWantsLine(3)
		p.hookIdle(3)
		close(release)
		p.close(nil)
		if want := []string{"a", "idle 2", "b", "wants 3", "idle 3"}; !slices.Equal(got, want) {
			t.Errorf("printed and called %q, want %q", got, want)
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// Texts queued for the same writer while the printer was busy go in one
// write (a pipe's reader wakes once for them), in order; a text for
// another writer, or a hook, between them splits them.
func TestPrinterJoinsWritesQueuedTogether(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got []string
		p := newPrinter(func(n int) { got = append(got, fmt.Sprintf("idle %d", n)) }, nil)
		release := make(chan struct{})
		out := &namedWriter{name: "out", got: &got, release: release}
		notes := &namedWriter{name: "notes", got: &got}
		p.write(out, []byte("a\n"))
		synctest.Wait() // the printer is writing "a"
		p.write(out, []byte("b\n"))
		p.write(out, []byte("c\n"))
		p.write(notes, []byte("n\n"))
		p.write(out, []byte("d\n"))
		p.hookIdle(1)
		p.write(out, []byte("e\n"))
		p.write(out, []byte("f\n"))
		close(release)
		p.close(nil)
		want := []string{"out a\n", "out b\nc\n", "notes n\n", "out d\n", "idle 1", "out e\nf\n"}
		if !slices.Equal(got, want) {
			t.Errorf("written %q, want %q", got, want)
		}
		if p.pending != 0 {
			t.Errorf("%d jobs still pending", p.pending)
		}
	})
}

// namedWriter notes what it is given under its name, once release (if
// any) is closed.
type namedWriter struct {
	name    string
	got     *[]string
	release chan struct{}
}

func (w *namedWriter) Write(b []byte) (int, error) {
	if w.release != nil {
		<-w.release
	}
	*w.got = append(*w.got, w.name+" "+string(b))
	return len(b), nil
}
