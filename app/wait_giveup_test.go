package app

import (
	"strings"
	"testing"
	"time"

	"dht/wire"
)

// A ring phase held up by a message its destination does not acknowledge
// says nothing more once that message's give-up has come, as a request's
// wait does (TestAWaitSaysNothingOnceItsLimitHasCome): at --give-up 12s,
// the note 12s in would say "it fails in 1s" just before the FAILURE.
func TestARingWaitSaysNothingOnceItsGiveUpHasCome(t *testing.T) {
	p := fuzzPeer()
	p.link.cfg.GiveUp = 12 * time.Second
	start := time.Unix(1_700_000_000, 0)
	o := &teardownOp{stage: teardownTearing, epoch: p.epoch}
	o.begin(p, start, p.right.Addr)
	p.op = o
	p.link.send(start, p.right.Addr, wire.Teardown{Origin: p.self.Name, OriginAddr: p.self.Addr, Epoch: p.epoch}, tagNone, false)
	var notes, results []string
	for ticks := 0; len(results) == 0; ticks++ {
		at, ok := p.NextDeadline()
		if !ok || ticks > 100000 {
			t.Fatalf("after %d ticks: waits for nothing (%v) or never ends", ticks, ok)
		}
		for _, out := range p.Tick(at) {
			switch out := out.(type) {
			case Notice:
				notes = append(notes, at.Sub(start).String()+" "+out.Line)
			case Result:
				results = append(results, at.Sub(start).String()+" "+out.String())
			}
		}
	}
	t.Logf("notes %q\nresults %q", notes, results)
	if len(notes) == 0 || len(results) != 1 {
		t.Fatalf("notes %q, results %q; want the note at 2s and one FAILURE", notes, results)
	}
	for _, n := range notes {
		if strings.Contains(n, "fails in 1s") || strings.Contains(n, "fails in 0s") {
			t.Errorf("a note once the give-up had come: %q (then %q)", n, results)
		}
	}
}
