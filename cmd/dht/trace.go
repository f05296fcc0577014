package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"dht/diagram"
)

func traceJSONFlag() cli.Flag {
	return &cli.StringFlag{Name: "trace-json", TakesFile: true,
		Usage: "also write the trace as JSON lines to `FILE`, actions included (for dht diagram); --quiet does not affect it"}
}

// traceFile is the --trace-json file of a process (nil: none). A write the
// file refuses (a full disk, a failing one) ends the trace there: the
// file is cut back to its last whole line, which diagram then reads, and
// stderr says so once; Failed makes the process exit 1, as a lost result
// does, instead of 0 with a trace silently cut short.
type traceFile struct {
	f    *os.File
	path string
	note io.Writer

	wmu sync.Mutex // held across a write: one at a time
	off int64      // under wmu: the end of the last whole line written

	// mu is never held across a write: Failed and Close answer at once
	// while a write blocks (a pipe whose reader stalls, a hung disk), so
	// that a process asked to stop still stops once its grace is over.
	mu     sync.Mutex
	err    error // the first write the file refused
	closed bool  // Close was called: the exit status is decided
}

// write appends one line, or nothing once a write failed.
func (t *traceFile) write(b []byte) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.mu.Lock()
	failed, closed := t.err, t.closed
	t.mu.Unlock()
	switch {
	case failed != nil:
		return failed
	case closed:
		return os.ErrClosed
	}
	n, err := t.f.Write(b)
	if err == nil {
		t.off += int64(n)
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return err // a write the end of the process cut short: nothing to say
	}
	// A part written is cut off, so that no line is spliced with a later
	// one (a disk freed meanwhile would take the next writes).
	_ = t.f.Truncate(t.off)
	_, _ = t.f.Seek(t.off, io.SeekStart)
	t.err = fmt.Errorf("--trace-json %s: %w", t.path, err)
	fmt.Fprintf(t.note, "dht: %v: the JSON trace stops here (its last whole line is kept); the process goes on, and exits with status 1\n", t.err)
	return t.err
}

func (t *traceFile) Write(b []byte) (int, error) {
	if err := t.write(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// setNote sends the note of a refused write to w (a peer at a terminal:
// off its prompt's line).
func (t *traceFile) setNote(w io.Writer) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.note = w
	t.mu.Unlock()
}

// Close closes the file (nil: no trace).
func (t *traceFile) Close() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	return t.f.Close()
}

// Failed is the first write the file refused, if any (nil: no trace).
func (t *traceFile) Failed() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// openTrace builds a process's trace logger: the human trace on stderr
// (see traceLogger) and, with --trace-json FILE, the structured one, whose
// file it returns (nil without one).
func openTrace(c *cli.Context, stderr io.Writer, node string) (*slog.Logger, *traceFile, error) {
	text := traceLogger(c, stderr, node)
	path := c.String("trace-json")
	if path == "" {
		return text, nil, nil
	}
	// Checked before (Action), and again now that a --db made since is
	// there: the same file under another name is found so.
	if err := checkOutput("trace-json", path, outTrace, c.String("db")); err != nil {
		return nil, nil, err
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, fmt.Errorf("--trace-json: %w", err)
	}
	tf := &traceFile{f: f, path: path, note: stderr}
	var jh slog.Handler = newJSONTrace(tf, slog.LevelDebug)
	if node != "" {
		jh = jh.WithAttrs([]slog.Attr{slog.String("node", node)})
	}
	return slog.New(fanout{text.Handler(), jh}), tf, nil
}

// fanout hands every record to each of its handlers that is enabled for
// its level.
type fanout []slog.Handler

func (f fanout) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range f {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			errs = append(errs, h.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (f fanout) WithAttrs(attrs []slog.Attr) slog.Handler {
	g := make(fanout, len(f))
	for i, h := range f {
		g[i] = h.WithAttrs(attrs)
	}
	return g
}

func (f fanout) WithGroup(name string) slog.Handler {
	g := make(fanout, len(f))
	for i, h := range f {
		g[i] = h.WithGroup(name)
	}
	return g
}

// jsonTrace writes each record as one diagram.Event in JSON on a line of
// its own. The runners' stable keys become the event's fields: node →
// process, local, addr → remote, type, id, retransmit → flags, msg (the
// message's main fields); the record's message "send" or "recv" is the
// direction, any other message an event of that name. Other attributes go
// to attrs.
type jsonTrace struct {
	mu     *sync.Mutex
	w      io.Writer
	level  slog.Leveler
	attrs  []slog.Attr // from WithAttrs, keys already prefixed by their groups
	prefix string      // from WithGroup: "a.b."
}

func newJSONTrace(w io.Writer, level slog.Leveler) *jsonTrace {
	return &jsonTrace{mu: &sync.Mutex{}, w: w, level: level}
}

func (h *jsonTrace) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *jsonTrace) WithAttrs(attrs []slog.Attr) slog.Handler {
	g := *h
	g.attrs = append([]slog.Attr(nil), h.attrs...)
	for _, a := range attrs {
		a.Key = h.prefix + a.Key
		g.attrs = append(g.attrs, a)
	}
	return &g
}

func (h *jsonTrace) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	g := *h
	g.prefix = h.prefix + name + "."
	return &g
}

func (h *jsonTrace) Handle(_ context.Context, r slog.Record) error {
	ev := diagram.Event{Time: r.Time, Dir: diagram.DirEvent}
	switch r.Message {
	case diagram.DirSend, diagram.DirRecv:
		ev.Dir = r.Message
	default:
		ev.Event = r.Message
		ev.Level = r.Level.String()
	}
	for _, a := range h.attrs {
		h.set(&ev, a)
	}
	r.Attrs(func(a slog.Attr) bool {
		a.Key = h.prefix + a.Key
		h.set(&ev, a)
		return true
	})
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err = h.w.Write(b)
	return err
}

func (h *jsonTrace) set(ev *diagram.Event, a slog.Attr) {
	v := a.Value.Resolve()
	switch a.Key {
	case "node":
		ev.Process = v.String()
	case "local":
		ev.Local = v.String()
	case "addr":
		ev.Remote = v.String()
	case "type":
		ev.Type = v.String()
	case "id":
		if v.Kind() == slog.KindUint64 {
			ev.ID = uint32(v.Uint64())
		} else if v.Kind() == slog.KindInt64 {
			ev.ID = uint32(v.Int64())
		}
	case "retransmit":
		if v.Kind() == slog.KindBool && v.Bool() {
			ev.Flags = "retransmit"
		}
	case "msg":
		if v.Kind() == slog.KindGroup {
			ev.Msg = groupMap(v.Group())
			return
		}
		fallthrough
	default:
		if ev.Attrs == nil {
			ev.Attrs = map[string]any{}
		}
		ev.Attrs[a.Key] = jsonValue(v)
	}
}

func groupMap(attrs []slog.Attr) map[string]any {
	m := make(map[string]any, len(attrs))
	for _, a := range attrs {
		m[a.Key] = jsonValue(a.Value.Resolve())
	}
	return m
}

func jsonValue(v slog.Value) any {
	switch v.Kind() {
	case slog.KindString:
		return v.String()
	case slog.KindInt64:
		return v.Int64()
	case slog.KindUint64:
		return v.Uint64()
	case slog.KindFloat64:
		return v.Float64()
	case slog.KindBool:
		return v.Bool()
	case slog.KindDuration:
		return v.Duration().String()
	case slog.KindTime:
		return v.Time().Format(time.RFC3339Nano)
	case slog.KindGroup:
		return groupMap(v.Group())
	}
	switch a := v.Any().(type) {
	case error:
		return a.Error()
	case json.Marshaler:
		return a
	case fmt.Stringer:
		return a.String()
	}
	return fmt.Sprint(v.Any())
}
