package app

import "time"

// Retry is the one retransmission policy of every reliable exchange: a
// ring message to a neighbour (until its Ack), a request to the server
// (until its reply) and a query to the ring (until its answer). Each kind
// of exchange keeps its own round-trip estimate (rttEstimator) and each
// message its own schedule (tries); the policy says how they move.
//
// The timeout of a first transmission is RTO until a round trip has been
// measured; from then on it is the smoothed round trip plus four times its
// variation (RFC 6298), at least MinRTO. It doubles on every
// retransmission, up to MaxRTO or four times the measured timeout,
// whichever is longer: a cap far above the round trip only makes a lossy
// link wait (whole multiples of the cap, and a message gets few tries
// before GiveUp), and one tied to the measurement keeps a long path from
// being retransmitted to before an answer can come back. An exchange
// unanswered GiveUp after its first transmission is given up.
type Retry struct {
	RTO    time.Duration
	MinRTO time.Duration
	MaxRTO time.Duration
	GiveUp time.Duration
}

// The defaults of the policy and of the peer's other knobs, defined once:
// the command line's flags and help read them from here.
const (
	DefaultRTO          = 30 * time.Millisecond
	DefaultMinRTO       = 2 * time.Millisecond
	DefaultMaxRTO       = 100 * time.Millisecond
	DefaultGiveUp       = 10 * time.Second
	DefaultWindow       = 32
	DefaultQueryTimeout = 10 * time.Second
)

func (r Retry) withDefaults() Retry {
	if r.RTO <= 0 {
		r.RTO = DefaultRTO
	}
	if r.MinRTO <= 0 {
		r.MinRTO = DefaultMinRTO
	}
	if r.MaxRTO <= 0 {
		r.MaxRTO = DefaultMaxRTO
	}
	r.MinRTO = min(r.MinRTO, r.RTO)
	r.MaxRTO = max(r.MaxRTO, r.RTO)
	if r.GiveUp <= 0 {
		r.GiveUp = DefaultGiveUp
	}
	return r
}

// rttEstimator is the RFC 6298 estimate of one kind of exchange's round
// trip (srtt 0: nothing measured yet).
type rttEstimator struct {
	srtt, rttvar time.Duration
	// backoff doubles the timeout of new messages too after a timeout,
	// until a round trip is measured again (RFC 6298 5.5): a receiver
	// slowed by its disk would otherwise get every message twice.
	backoff time.Duration
}

// sample feeds one measured round trip, of a message sent once (Karn),
// into the estimate.
func (e *rttEstimator) sample(rtt time.Duration) {
	e.backoff = 0
	if e.srtt == 0 {
		e.srtt, e.rttvar = max(rtt, time.Microsecond), rtt/2
		return
	}
	d := e.srtt - rtt
	if d < 0 {
		d = -d
	}
	e.rttvar = (3*e.rttvar + d) / 4
	e.srtt = (7*e.srtt + rtt) / 8
}

// measured is the timeout the round trips measured so far call for (the
// policy's RTO until there are some).
func (e *rttEstimator) measured(p *Retry) time.Duration {
	if e.srtt == 0 {
		return p.RTO
	}
	return max(e.srtt+4*e.rttvar, p.MinRTO)
}

// first is the timeout of a first transmission. The backoff is bounded:
// under heavy loss it would otherwise stay near the cap and slow every
// recovery.
func (e *rttEstimator) first(p *Retry) time.Duration {
	rto := e.measured(p)
	return max(rto, min(e.backoff, 4*rto))
}

// ceiling is the most a timeout doubles to.
func (e *rttEstimator) ceiling(p *Retry) time.Duration {
	return max(p.MaxRTO, 4*e.measured(p))
}

// tries is one exchange's schedule: when it was first sent, when to send
// it again, and how often it has been sent.
type tries struct {
	firstSent time.Time
	next      time.Time
	rto       time.Duration
	sent      int
	// stalled is how much of this process's own stalls the give-up has
	// been spared so far (again), at most GiveUp.
	stalled time.Duration
	// unspared is how much of the last retransmission's lateness again
	// could not spare (GiveUp spared already): a give-up then may come
	// of this process's own silence.
	unspared time.Duration
	// deaf is how long this process read nothing since the first
	// transmission (its commits: link.postpone).
	deaf time.Duration
}

// start records the first transmission, with timeout rto.
func (t *tries) start(now time.Time, rto time.Duration) {
	*t = tries{firstSent: now, next: now.Add(rto), rto: rto, sent: 1}
}

// due reports that the timeout of the last transmission has passed.
func (t *tries) due(now time.Time) bool { return !now.Before(t.next) }

// again schedules a retransmission now, the timeout doubled (up to the
// estimator's ceiling, which it backs off to), or reports false when the
// exchange has had GiveUp to be answered.
func (t *tries) again(now time.Time, p *Retry, e *rttEstimator) bool {
	t.unspared = max(now.Sub(t.next), 0)
	if late := min(now.Sub(t.next), p.GiveUp-t.stalled); late > lateTick {
		// This process did not run when the retransmission was due
		// (stopped, suspended, starved of CPU): a copy lost before the
		// stall had no second chance meanwhile, so that time is not the
		// destination's silence and does not count towards GiveUp (a
		// chaos review: a leader paused between --give-up and
		// --dead-after gave up on a live member at once, and blamed it).
		// Stalls are spared up to GiveUp in all, so that a message is
		// given up within twice GiveUp and the last stall, however often
		// this process stalls (a code review: retries late by 1 s each
		// stretched a 10 s give-up to 95 s).
		t.firstSent = t.firstSent.Add(late)
		t.stalled += late
		t.unspared -= late
	}
	if now.Sub(t.firstSent) >= p.GiveUp {
		return false
	}
	t.rto = min(2*t.rto, e.ceiling(p))
	e.backoff = max(e.backoff, t.rto)
	t.next = now.Add(t.rto)
	if end := t.firstSent.Add(p.GiveUp); end.Before(t.next) {
		// Given up at its time, not at the retransmission after it (up
		// to a timeout later: ServerMaxRTO is a second).
		t.next = end
	}
	t.sent++
	return true
}

// roundTrip is the time since the first transmission, and whether it is a
// round trip to sample: only a message sent once says which transmission
// was answered.
func (t *tries) roundTrip(now time.Time) (time.Duration, bool) {
	return now.Sub(t.firstSent) - t.deaf, t.sent == 1
}

// heardInTime reports that an answer read at now came while this process
// ran: its retransmission, due at next, is not more than lateTick past.
// Read later, the process was stopped or starved meanwhile and the answer
// may have waited unread: no round trip to sample.
func (t *tries) heardInTime(now time.Time) bool { return now.Sub(t.next) <= lateTick }
