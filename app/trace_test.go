package app

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"dht/wire"
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

// dropLines runs a dropSummary as a runner does (its counts traced when
// due, by the timer) over drops, each at its time, and returns the trace's
// lines: those of drops traced one by one, and the counts' lines with the
// drops they count.
func dropLines(t *testing.T, d *dropSummary, drops []timedDrop) (shown, countLines, counted int) {
	t.Helper()
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, dr := range drops {
		for at, ok := d.due(); ok && !dr.at.Before(at); at, ok = d.due() {
			d.tick(log, at)
		}
		d.trace(log, dr.at, dr.ev)
	}
	for at, ok := d.due(); ok; at, ok = d.due() {
		d.tick(log, at)
	}
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		switch {
		case l == "":
		case strings.Contains(l, traceDropMore):
			countLines++
			var n int
			if _, err := fmt.Sscanf(l[strings.Index(l, " count=")+len(" count="):], "%d", &n); err != nil {
				t.Fatalf("a count's line without a count: %s", l)
			}
			counted += n
		case strings.Contains(l, "msg=\"dropped: "):
			shown++
		default:
			t.Fatalf("a line neither a drop nor a count: %s", l)
		}
	}
	return shown, countLines, counted
}

type timedDrop struct {
	at time.Time
	ev Event
}

// evenly is n drops of each of reasons reasons from start, spread evenly
// over the seconds, each from a source of its own.
func evenly(start time.Time, seconds, reasons, perSecond int, name func(int) string) []timedDrop {
	var drops []timedDrop
	for i := range seconds * reasons * perSecond {
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 5000)
		drops = append(drops, timedDrop{
			at: start.Add(time.Duration(i) * time.Second / time.Duration(reasons*perSecond)),
			ev: dropped(name(i%reasons), from),
		})
	}
	return drops
}

// A flood that never ends is not traced line by line for ever (SPEC §7),
// whatever its shape: 40 reasons (every message type, signed and not, as
// an attacker's review sent them), each 5 times a second, under the 5 a
// second once traced for each reason, are 200 drops a second, and were
// 200 lines a second. Now each reason's window, while it goes on, lasts
// twice the last, up to dropSpanMax, and costs two lines: ten minutes of
// it take 30 lines a reason, every drop counted. After a quiet spell of
// dropSpanMax the window is a second again, so the next burst is traced
// at once.
func TestASteadyFloodIsSummarisedEverLonger(t *testing.T) {
	const reasons, perSecond, seconds = 40, 5, 600
	start := time.Unix(1_700_000_000, 0)
	drops := evenly(start, seconds, reasons, perSecond, func(i int) string { return fmt.Sprintf("reason %d", i) })
	var d dropSummary
	shown, countLines, counted := dropLines(t, &d, drops)
	if shown+counted != len(drops) {
		t.Fatalf("%d drops: %d traced and %d counted", len(drops), shown, counted)
	}
	t.Logf("%d drops in %d s traced in %d lines (%d one by one, %d counts)", len(drops), seconds, shown+countLines, shown, countLines)
	// Windows of 1, 2, 4, … 64 s, then 64 s: 15 in ten minutes.
	if lines := shown + countLines; lines > reasons*2*15 {
		t.Fatalf("%d drops in %d s traced in %d lines (%d one by one, %d counts); want at most two a reason a window, %d", len(drops), seconds, lines, shown, countLines, reasons*2*15)
	}
	if w := d.tally["dropped: reason 0"]; w == nil || w.span != dropSpanMax {
		t.Fatalf("the window of a reason after ten minutes of flood: %+v; want %s", w, dropSpanMax)
	}

	// dropSpanMax of quiet, then a burst of 30 in a second: the first
	// traced at once, the rest counted within the second.
	quiet := d.tally["dropped: reason 0"].end().Add(dropSpanMax)
	var burst []timedDrop
	for i := range 30 {
		burst = append(burst, timedDrop{quiet.Add(time.Duration(i) * time.Millisecond), dropped("reason 0", netip.MustParseAddrPort("10.2.0.1:5000"))})
	}
	shown, countLines, counted = dropLines(t, &d, burst)
	if w := d.tally["dropped: reason 0"]; shown != 1 || counted != 29 || countLines != 1 || w.span != time.Second {
		t.Fatalf("a burst after a quiet spell: %d traced, %d counted in %d lines, window %s; want 1 traced, the rest counted in a line, a window of a second",
			shown, counted, countLines, w.span)
	}
}

// A flood in bursts does not start a reason's windows again at a second
// (a review: bursts of 6 drops of 17 reasons every 2 s, each burst in a
// window of a second of its own, were 51 lines a second for ever). For an
// hour, whatever the period of the bursts and their size, a reason costs
// at most two lines a window: 7 windows in its first two minutes, then
// one every 64 s, 126 lines; and a reason that comes once in a while is
// traced each time.
func TestAFloodInBurstsIsSummarisedToo(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	from := netip.MustParseAddrPort("10.0.0.1:5000")
	for _, period := range []time.Duration{time.Second, 2 * time.Second, 2001 * time.Millisecond, 5 * time.Second, 33 * time.Second, 63 * time.Second, 65 * time.Second, 130 * time.Second} {
		for _, burst := range []int{1, 6, 40} {
			var drops []timedDrop
			for at := time.Duration(0); at < time.Hour; at += period {
				for i := range burst {
					drops = append(drops, timedDrop{start.Add(at + time.Duration(i)*time.Millisecond), dropped("a reason", from)})
				}
			}
			var d dropSummary
			shown, countLines, counted := dropLines(t, &d, drops)
			if shown+counted != len(drops) {
				t.Fatalf("bursts of %d every %s: %d drops, %d traced and %d counted", burst, period, len(drops), shown, counted)
			}
			if lines := shown + countLines; lines > 126 {
				t.Errorf("bursts of %d every %s for an hour: %d lines (%d one by one, %d counts); want at most 126", burst, period, lines, shown, countLines)
			}
			if burst == 1 && period > dropSpanMax && shown != len(drops) {
				t.Errorf("a drop every %s: %d of %d traced; want each", period, shown, len(drops))
			}
		}
	}
}

// A drop of a reason new, or quiet for a while, is traced at once, however
// long other reasons have gone on (a review: with one window for every
// reason, ordinary drops of a lossy ring made it 16-64 s long, and the
// first drop of another reason came out up to 64 s late, as a count; a
// second review: with 16 reasons told apart, a flood of 17 hid a new one
// in the pool of the rest).
func TestADropOfANewReasonIsTracedAtOnce(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	drops := evenly(start, 120, 100, 3, func(i int) string { return fmt.Sprintf("ordinary %d", i) })
	var d dropSummary
	dropLines(t, &d, drops)
	if w := d.tally["dropped: ordinary 0"]; w == nil || w.span != dropSpanMax {
		t.Fatalf("the window of a reason that went on for two minutes: %+v; want %s", w, dropSpanMax)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	at := drops[len(drops)-1].at.Add(time.Millisecond)
	d.trace(log, at, dropped("healed not signed with the user's secret", netip.MustParseAddrPort("10.3.0.1:5000")))
	if line := buf.String(); !strings.Contains(line, `msg="dropped: healed not signed with the user's secret" addr=10.3.0.1:5000`) {
		t.Fatalf("the drop of a new reason traced as %q; want its own line, with its address", line)
	}
}

// What anyone can make the server send (a challenge, a refusal: Quiet) is
// traced as the drops they answer are: a user's one register has its
// challenge traced, as every datagram is (SPEC §5; a review of the docs
// found it untraced), and a steady flood of forged requests costs a few
// lines its first two minutes, then about one a minute (§7; an attacker's
// review counted 603 refusal lines a minute), not one a datagram.
func TestQuietSendsAreTracedAsTheDropsAre(t *testing.T) {
	var q quietLines
	t0 := time.Unix(1_700_000_000, 0)
	// Traced at the info level: on stderr.
	info := func(tp wire.Type, at time.Time) bool {
		l, ok := q.show(tp, at)
		return ok && l == slog.LevelInfo
	}
	if !info(wire.TypeChallenge, t0) {
		t.Fatal("the first quiet send untraced")
	}
	if info(wire.TypeChallenge, t0.Add(500*time.Millisecond)) {
		t.Fatal("a second quiet send of the type within the second traced")
	}
	if !info(wire.TypeReply, t0.Add(500*time.Millisecond)) {
		t.Fatal("the first quiet send of another type untraced")
	}
	// Ten minutes of ten a second.
	lines := 0
	for i := 1; i <= 6000; i++ {
		if info(wire.TypeChallenge, t0.Add(time.Second+time.Duration(i)*100*time.Millisecond)) {
			lines++
		}
	}
	if lines < 10 || lines > 16 {
		t.Fatalf("6,000 quiet sends in ten minutes traced %d times; want windows of 1 to 64 s, about 14", lines)
	}
	// Quiet for longer than the longest window: the next is traced at once,
	// and its window is a second again.
	later := t0.Add(time.Hour)
	if !info(wire.TypeChallenge, later) || info(wire.TypeChallenge, later.Add(500*time.Millisecond)) || !info(wire.TypeChallenge, later.Add(1100*time.Millisecond)) {
		t.Fatal("after an hour's quiet: want the first traced, then windows from a second")
	}
}
