package app

import (
	"io"
	"reflect"
	"sync"
	"time"
)

// printer writes what a peer shows its user (results on Out, notes on
// Notes) and calls the hooks that follow them (Idle, WantsLine), in the
// order the runner queued them, from a goroutine of its own. The runner
// queues under its lock and goes on: a reader who does not keep up (a
// pager, a full pipe) stops the input (Run reads no line while the queue
// is full), never the protocol. Nothing queued is dropped.
type printer struct {
	idle, wantsLine func(linesRead int) // the runner's hooks; nil: none

	mu      sync.Mutex
	queue   []printJob
	pending int // jobs queued or taken and not yet done
	closed  bool
	wake    chan struct{} // room for one: the queue has something
	room    chan struct{} // room for one: the writer has done a job
	done    chan struct{} // closed once everything is done after close
	joined  []byte        // the writer's buffer for texts written together
}

type printJob struct {
	kind jobKind
	w    io.Writer // jobWrite: text to w
	text []byte
	rw   ResultWriter // jobResult: res to rw
	res  Result
	n    int // jobIdle, jobWantsLine: lines read
}

type jobKind uint8

const (
	jobWrite jobKind = iota
	jobResult
	jobIdle
	jobWantsLine
)

// maxPrinted is how many jobs may be waiting or under way before Run stops
// reading input. A
// line read yields a result or two; the bound keeps a peer fed by a fast
// pipe, writing to a slow one, from holding its whole input as results.
const maxPrinted = 256

func newPrinter(idle, wantsLine func(int)) *printer {
	p := &printer{idle: idle, wantsLine: wantsLine, wake: make(chan struct{}, 1), room: make(chan struct{}, 1), done: make(chan struct{})}
	go p.run()
	return p
}

// write queues text (with its final newline) for w.
func (p *printer) write(w io.Writer, text []byte) { p.push(printJob{kind: jobWrite, w: w, text: text}) }

// writeResult queues res for w.
func (p *printer) writeResult(w ResultWriter, res Result) {
	p.push(printJob{kind: jobResult, rw: w, res: res})
}

// hookIdle and hookWantsLine queue a call of the hook, if the runner has
// it. A hook queued right after a call of the same hook replaces it: a
// ring member that serves datagrams while its user's terminal is not read
// queues one, not one a datagram, and the hook sees the later count.
func (p *printer) hookIdle(linesRead int) {
	if p.idle != nil {
		p.push(printJob{kind: jobIdle, n: linesRead})
	}
}

func (p *printer) hookWantsLine(linesRead int) {
	if p.wantsLine != nil {
		p.push(printJob{kind: jobWantsLine, n: linesRead})
	}
}

func (p *printer) push(j printJob) {
	p.mu.Lock()
	if k := len(p.queue); (j.kind == jobIdle || j.kind == jobWantsLine) && k > 0 && p.queue[k-1].kind == j.kind {
		p.queue[k-1] = j
	} else {
		p.queue = append(p.queue, j)
		p.pending++
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// busy reports whether anything queued is not yet done.
func (p *printer) busy() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pending > 0
}

// full reports that Run should read no more input until room delivers.
func (p *printer) full() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pending >= maxPrinted
}

func (p *printer) run() {
	defer close(p.done)
	var batch []printJob
	for {
		p.mu.Lock()
		batch, p.queue = p.queue, batch[:0]
		closed := p.closed
		p.mu.Unlock()
		if len(batch) == 0 {
			if closed {
				return
			}
			<-p.wake
			continue
		}
		for i := 0; i < len(batch); i++ {
			j := batch[i]
			switch j.kind {
			case jobWrite:
				// The texts queued one after another for the same writer
				// go in one write: a pipe's reader is woken once for
				// them, not once a result.
				text, first := j.text, i
				for i+1 < len(batch) && batch[i+1].kind == jobWrite && sameWriter(batch[i+1].w, j.w) {
					if i == first {
						text = append(p.joined[:0], text...)
					}
					text = append(text, batch[i+1].text...)
					i++
				}
				// An error here is the reader's to see (a closed pipe):
				// the peer goes on serving its ring.
				_, _ = j.w.Write(text)
				if i != first {
					p.joined = text[:0]
				}
				for ; first < i; first++ {
					p.done1(batch, first)
				}
			case jobResult:
				j.rw.WriteResult(j.res)
			case jobIdle:
				p.idle(j.n)
			case jobWantsLine:
				p.wantsLine(j.n)
			}
			p.done1(batch, i)
		}
	}
}

// sameWriter reports whether a and b are the same writer; a writer whose
// type cannot be compared (a func) is the same as none.
func sameWriter(a, b io.Writer) bool {
	t := reflect.TypeOf(a)
	return t == reflect.TypeOf(b) && t.Comparable() && a == b
}

// done1 marks batch[i] done: it is no longer pending, and the runner may
// read input again if it waited for room.
func (p *printer) done1(batch []printJob, i int) {
	batch[i] = printJob{}
	p.mu.Lock()
	p.pending--
	p.mu.Unlock()
	select {
	case p.room <- struct{}{}:
	default:
	}
}

// close writes everything queued and ends the writer; nothing may be
// queued after it. It returns early, with what is left unwritten, once
// giveUp is closed (see graceAfter).
func (p *printer) close(giveUp <-chan struct{}) {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	select {
	case <-p.done:
	case <-giveUp:
	}
}

// stopGrace is how long a runner stopped by a signal waits for its output
// and its trace to be written before it returns without them. A variable
// for the tests.
var stopGrace = 2 * time.Second

// graceAfter returns a channel closed stopGrace after stop is, for the
// waits of a runner's end for its output and its trace: a reader that does
// not read (a pager left open, a full pipe, a paused consumer) would
// otherwise keep a process asked to stop from ever stopping, a second
// signal too. Its socket and its file are closed by then; what that reader
// would not read is all that is lost. end releases what watches stop.
func graceAfter(stop <-chan struct{}) (giveUp <-chan struct{}, end func()) {
	c, ended := make(chan struct{}), make(chan struct{})
	go func() {
		select {
		case <-stop:
		case <-ended:
			return
		}
		t := time.NewTimer(stopGrace)
		defer t.Stop()
		select {
		case <-t.C:
			close(c)
		case <-ended:
		}
	}()
	return c, func() { close(ended) }
}
