package app

import (
	"errors"
	"testing"
	"time"

	"dht/dataset"
	"dht/wire"
)

// Every rebuilt a leader sends names the epoch of the leave or join it
// ends, the one its leaver or joiner took from the server's answer: one
// without it is dropped there, and the leaver or joiner waits out its op
// timeout instead of hearing why.
func TestEveryRebuiltCarriesTheEpochItsUserExpects(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	rebuiltTo := func(t *testing.T, outs []Output, to wire.Member) wire.Rebuilt {
		t.Helper()
		_, sent := outcome(outs)
		for _, m := range sent[to.Addr] {
			if r, ok := m.(wire.Rebuilt); ok {
				return r
			}
		}
		t.Fatalf("no rebuilt to %s in %+v", to.Name, outs)
		return wire.Rebuilt{}
	}
	t.Run("join refused", func(t *testing.T) {
		p := joinLeader()
		j := wire.Join{Joiner: fzJoiner, N: 2, Epoch: p.epoch + 1}
		if r := rebuiltTo(t, stepSigned(p, now, fzJoiner.Addr, wire.Header{ID: 9}, j), fzJoiner); r.Epoch != j.Epoch {
			t.Errorf("rebuilt %+v, want epoch %d", r, j.Epoch)
		}
	})
	t.Run("join leader without its dataset", func(t *testing.T) {
		p := joinLeader()
		p.cfg.LoadData = func() (dataset.Source, error) { return nil, errors.New("bad") }
		j := wire.Join{Joiner: fzJoiner, N: 3, Epoch: p.epoch + 1}
		if r := rebuiltTo(t, stepSigned(p, now, fzJoiner.Addr, wire.Header{ID: 9}, j), fzJoiner); r.Epoch != j.Epoch {
			t.Errorf("rebuilt %+v, want epoch %d", r, j.Epoch)
		}
	})
	t.Run("new leader without its dataset", func(t *testing.T) {
		p := fuzzPeer()
		p.cfg.LoadData = func() (dataset.Source, error) { return nil, errors.New("bad") }
		const leave = 7 // the renumbered ring's, from the server's answer to leave-dht
		stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 10}, wire.ResetID{Origin: fzLeft.Name, ID: 0, N: 2, OriginAddr: fzLeft.Addr, Epoch: leave})
		if p.epoch != leave {
			t.Fatalf("the reset-id left the epoch at %d", p.epoch)
		}
		stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 1}, wire.ResetLeft{Left: wire.Member{Name: "dave", Addr: fzOther}, Epoch: leave})
		if r := rebuiltTo(t, stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 2}, wire.RebuildDHT{Leaver: fzLeft}), fzLeft); r.Epoch != leave {
			t.Errorf("rebuilt %+v, want epoch %d", r, leave)
		}
	})
	t.Run("new leader whose stores are not acknowledged", func(t *testing.T) {
		p := fuzzPeer()
		const leave = 7 // the renumbered ring's, from the server's answer to leave-dht
		stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 10}, wire.ResetID{Origin: fzLeft.Name, ID: 0, N: 2, OriginAddr: fzLeft.Addr, Epoch: leave})
		if p.epoch != leave {
			t.Fatalf("the reset-id left the epoch at %d", p.epoch)
		}
		stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 1}, wire.ResetLeft{Left: wire.Member{Name: "dave", Addr: fzOther}, Epoch: leave})
		stepSigned(p, now, fzLeft.Addr, wire.Header{ID: 2}, wire.RebuildDHT{Leaver: fzLeft})
		for range 1000 {
			at, ok := p.NextDeadline()
			if !ok {
				break
			}
			outs := p.Tick(at)
			if _, sent := outcome(outs); len(sent[fzLeft.Addr]) > 0 {
				if r := rebuiltTo(t, outs, fzLeft); r.Epoch != leave {
					t.Errorf("rebuilt %+v, want epoch %d", r, leave)
				}
				return
			}
		}
		t.Fatal("no rebuilt to the leaver")
	})
}
