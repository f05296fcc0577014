package app

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// traceQueue hands a runner's trace records to a goroutine of its own,
// which passes them to the handler main chose: a stderr that nobody reads
// stops the trace, never the protocol. At most traceQueueLen records wait;
// past that they are dropped and counted, and once the queue has emptied
// the trace says how many ("trace lines dropped", count).
type traceQueue struct {
	ch      chan queuedRecord
	dropped atomic.Int64
	base    slog.Handler
	quit    chan struct{}
	done    chan struct{}
}

type queuedRecord struct {
	h slog.Handler
	r slog.Record
}

// traceQueueLen bounds the records that wait: enough for the bursts of a
// ring's setup while the terminal scrolls.
const traceQueueLen = 8192

// traceDropped is the trace's message when records were dropped because
// its reader did not keep up; its attribute count says how many.
const traceDropped = "trace lines dropped"

// queueTrace returns a logger that queues what it logs for l's handler,
// and a function that writes what is queued and stops the queue (nothing
// logged after it is written), or returns early, with what is left
// unwritten, once giveUp is closed (graceAfter). A nil or discarding l is returned as a discarding
// logger that needs no goroutine.
func queueTrace(l *slog.Logger) (*slog.Logger, func(giveUp <-chan struct{})) {
	if l == nil || l.Handler() == slog.DiscardHandler {
		return slog.New(slog.DiscardHandler), func(<-chan struct{}) {}
	}
	q := &traceQueue{ch: make(chan queuedRecord, traceQueueLen), base: l.Handler(), quit: make(chan struct{}), done: make(chan struct{})}
	go q.run()
	return slog.New(queueHandler{q: q, h: l.Handler()}), func(giveUp <-chan struct{}) {
		close(q.quit)
		select {
		case <-q.done:
		case <-giveUp:
		}
	}
}

func (q *traceQueue) run() {
	defer close(q.done)
	ctx := context.Background()
	for {
		select {
		case rec := <-q.ch:
			_ = rec.h.Handle(ctx, rec.r)
			continue
		default:
		}
		q.sayDropped(ctx)
		select {
		case rec := <-q.ch:
			_ = rec.h.Handle(ctx, rec.r)
		case <-q.quit:
			for {
				select {
				case rec := <-q.ch:
					_ = rec.h.Handle(ctx, rec.r)
				default:
					q.sayDropped(ctx)
					return
				}
			}
		}
	}
}

func (q *traceQueue) sayDropped(ctx context.Context) {
	if n := q.dropped.Swap(0); n > 0 {
		r := slog.NewRecord(time.Now(), slog.LevelWarn, traceDropped, 0)
		r.AddAttrs(slog.Int64("count", n))
		_ = q.base.Handle(ctx, r)
	}
}

// queueHandler queues records for h.
type queueHandler struct {
	q *traceQueue
	h slog.Handler
}

func (h queueHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.h.Enabled(ctx, l) }

func (h queueHandler) Handle(_ context.Context, r slog.Record) error {
	if len(h.q.ch) == cap(h.q.ch) {
		h.q.dropped.Add(1)
		return nil
	}
	// The values are resolved now, by the goroutine that logs them: what
	// a LogValuer reads may change once the runner goes on.
	rec := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		rec.AddAttrs(resolve(a))
		return true
	})
	select {
	case h.q.ch <- queuedRecord{h: h.h, r: rec}:
	default:
		h.q.dropped.Add(1)
	}
	return nil
}

func resolve(a slog.Attr) slog.Attr {
	a.Value = a.Value.Resolve()
	if a.Value.Kind() == slog.KindGroup {
		as := a.Value.Group()
		rs := make([]slog.Attr, len(as))
		for i, g := range as {
			rs[i] = resolve(g)
		}
		a.Value = slog.GroupValue(rs...)
	}
	return a
}

func (h queueHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return queueHandler{q: h.q, h: h.h.WithAttrs(as)}
}

func (h queueHandler) WithGroup(name string) slog.Handler {
	return queueHandler{q: h.q, h: h.h.WithGroup(name)}
}
