package app

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// The line that counts the drops of a reason past the first few a second
// is at their level: a batch of registers, every peer's first challenged
// at the info level, is counted at the info level, not as a warning (a
// liveness review saw a WARN line for every fresh batch of registers);
// real drops are still counted as warnings.
func TestDropCountAtTheDropsLevel(t *testing.T) {
	for _, c := range []struct {
		ev   Event
		want string
	}{
		{func() Event {
			ev := dropped("", netip.MustParseAddrPort("10.0.0.1:5000"))
			ev.Msg, ev.Level = challengedMsg, slog.LevelInfo
			return ev
		}(), "level=INFO"},
		{dropped("not a dht datagram", netip.MustParseAddrPort("10.0.0.1:5000")), "level=WARN"},
	} {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		var d dropSummary
		now := time.Unix(1_700_000_000, 0)
		for range dropsShown + 3 {
			d.trace(log, now, c.ev)
		}
		d.tick(log, now.Add(time.Second))
		var count string
		for _, l := range strings.Split(buf.String(), "\n") {
			if strings.Contains(l, traceDropMore) {
				count = l
			}
		}
		if !strings.Contains(count, c.want) || !strings.Contains(count, "count=3") {
			t.Errorf("%s: the count's line %q; want it at %s, counting 3", c.ev.Msg, count, c.want)
		}
	}
}
