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
		p.close()
		if want := []string{"a", "idle 2", "b", "wants 3", "idle 3"}; !slices.Equal(got, want) {
			t.Errorf("printed and called %q, want %q", got, want)
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
