package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
)

// warnLines keeps the message of every record at the warning level or
// above.
type warnLines struct{ msgs *[]string }

func (h warnLines) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h warnLines) Handle(_ context.Context, r slog.Record) error {
	*h.msgs = append(*h.msgs, r.Message)
	return nil
}
func (h warnLines) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h warnLines) WithGroup(string) slog.Handler      { return h }

// A network that duplicates every datagram delivers the server's reply
// to a register twice (and the register with its cookie twice, which the
// server answers twice): the reply is signed with the cookie, not with
// the secret it brings, and its copies are what the network did, no
// warning.
func TestACopyOfTheRegistersReplyIsNoWarning(t *testing.T) {
	s := newSim(t, 5)
	p := s.addPeer("alice", records(t))
	var warns []string
	s.SetTrace(warnLines{&warns})
	s.Dup = 1
	s.mustDo("alice", fmt.Sprintf("register alice %s %d", p.Addr.Addr(), p.Addr.Port()), "register SUCCESS")
	settle(t, s)
	if len(warns) > 0 {
		t.Errorf("a register over a network that duplicates: warnings %q", warns)
	}
}
