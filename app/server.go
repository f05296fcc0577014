package app

import (
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"dht/app/state"
	"dht/wire"
)

// Limits enforced by the server (and written in the README).
const (
	MaxNameLen = state.MaxNameLen // user names: ASCII letters only, 1..15
	MaxRing    = 64               // largest ring: a setup-dht reply lists every member in one datagram
	MaxUsers   = 1024             // registrations the server keeps
)

// ServerConfig configures the server state machine.
type ServerConfig struct {
	// OpTimeout is how long the server waits for dht-complete, dht-rebuilt
	// (after a leave or a join) or teardown-complete before it rolls the
	// operation back.
	OpTimeout time.Duration
	// Rand picks the members of a new ring and the node a query starts at.
	Rand *rand.Rand
	// DeadAfter is how long a registered user may stay silent before it is
	// offline: setup-dht and join-dht neither pick nor accept it.
	DeadAfter time.Duration
	// Started is when the server started: every user counts as seen then,
	// so a restart gives each DeadAfter to show up. Zero: at the first
	// Step or Tick.
	Started time.Time
	// Keys is where users' secrets, ring keys and the cookie key come
	// from: crypto/rand unless set (a simulation sets a seeded source).
	Keys io.Reader
}

// DefaultOpTimeout is the server's default --op-timeout; MinOpTimeout the
// least it takes: below a second it would roll back setups still at work
// (a leader on another host, a larger dataset), for no gain, since a member
// that is gone ends a wait by --dead-after anyway.
const (
	DefaultOpTimeout = 2 * time.Minute
	MinOpTimeout     = time.Second
)

// DefaultDeadAfter is the server's default --dead-after; MinDeadAfter the
// least it takes: a peer not yet told its pace sends eight alives in it
// (aliveUntold), one told sends ten.
const (
	DefaultDeadAfter = 15 * time.Second
	MinDeadAfter     = 2 * time.Second
)

// alivesPerDeadAfter is how many alives a user is told to send within
// DeadAfter: nine may be lost before it is offline. An offline ring member
// is removed from the ring, so a live one must not look offline on a lossy
// network: at 20% loss, ten in a row are lost once in ten million windows
// (three would be once in 125).
const alivesPerDeadAfter = 10

type cachedReply struct {
	id    uint32
	reply wire.Reply
	// seq and key: the request's sequence number and the key its reply
	// was signed with (a retransmission must be signed with it too); raw,
	// the datagram sent.
	seq uint64
	key wire.Key
	raw []byte
	// second and answers: how many times the reply was sent again in the
	// second (in Unix seconds) it was last sent again (maxAgain a second).
	second  int64
	answers int
}

// maxAgain is how many times a second a cached reply is sent again: a
// peer retransmits a request a few times a second at most; a user that
// sends its own request again and again (a replay of its own, or a loop)
// gets no more, and its copies are dropped, counted with the other drops,
// instead of a line of trace each, and an answer each.
const maxAgain = 10

// Server is the registry state machine. It never touches a socket, a clock
// or a file: Step and Tick return what to persist and send.
type Server struct {
	cfg ServerConfig
	// at: the address the datagram in hand was sent to (StepDatagram),
	// where the socket says; came: when it came, where the socket says
	// (zero: not said, taken as the time it is read).
	at   netip.Addr
	came time.Time
	// sender: where the datagram in hand came from; judged: when a Tick
	// last acted on who is silent. A datagram that came before that is
	// judged as of then (but for its sender, live when it sent it): what
	// that Tick did (a member healed out, a setup dissolved) is not undone
	// by a judgement as of an earlier time.
	sender netip.AddrPort
	judged time.Time
	users  map[string]*state.User
	byAddr map[netip.AddrPort]string
	dht    state.DHT
	cache  map[netip.AddrPort]cachedReply
	// persisted: the addresses whose reply is in the file. forget: those
	// pruned from cache, whose replies the next PersistServer deletes, so
	// that the file's cache stays bounded too (and forget with it).
	persisted map[netip.AddrPort]bool
	forget    []netip.AddrPort
	// note explains the last rollback, for answers that would otherwise
	// look like the operation never happened.
	note string
	// ended: why the leave or join a user asked for was ended without its
	// dht-rebuilt (a heal while the server waited for it), for the
	// dht-rebuilt that comes after all. An entry goes with the user's next
	// leave-dht, join-dht or deregister; the map holds one a user at most.
	ended map[string]string
	// healedOut: why a heal removed a user from the ring (it was offline),
	// for its leave-dht, refused then (a chaos review: "b does not
	// maintain the DHT" alone, to a user who typed leave-dht as a member).
	// An entry goes when the user holds a place again, or deregisters.
	healedOut map[string]string
	// claimed: the largest epoch a peer claimed that did not dissolve the
	// DHT (outdate); newEpoch goes on from it.
	claimed uint64
	// places: the ring place (its epoch; 0 for none) each user's last alive
	// named, and how many alives in a row named it, since the DHT last
	// became ready or the server started (outdate, nobodyInRing).
	places map[string]placeSeen
	// lastSeen is each user's last sign of life (an alive or any request
	// from its address). It lives in memory only: a user missing from it
	// was last seen when the server started.
	lastSeen map[string]time.Time
	// offPace: the users whose last alive said a period other than the
	// server's (the start round paces them again, as those not heard).
	offPace map[string]bool
	started time.Time
	// startedAt is when Start ran (a process's start): a wait the file
	// held is given its op timeout from then (waitDeadline).
	startedAt time.Time
	// seenDirty is when a user's LastSeen (to the second, for the file)
	// first changed since the state was last persisted; zero if none did.
	// Tick writes such changes seenFlush later if no command has first.
	seenDirty time.Time
	// cookieKey signs the challenges' cookies; a new one at every start
	// (drawn at the first challenge).
	cookieKey wire.Key
	// removed: the names deregistered within the last two cookie windows,
	// each with a number of its own (from removals, counting), that the
	// cookies for the name are bound to; removedAll is bound to every
	// name's, and moves on when removed is full.
	removed    map[string]removal
	removals   uint64
	removedAll uint64
	// reqSeq is the sequence number of the request being served, when it
	// is signed with the user's secret; else 0.
	reqSeq uint64
	// refusals counts the answers to unproven requests in the second
	// refusalSec (unix seconds).
	refusalSec int64
	refusals   int
	// The heal in progress (server_heal.go): its leader has acknowledged
	// it; else its next copy goes at healNext, healRTO after the last.
	healAcked bool
	// healWhy: why the heal in progress began, for the answers while it
	// runs (in memory: a server started during a heal has none).
	healWhy  string
	healNext time.Time
	healRTO  time.Duration
	// healQuitters: the members that led a heal of this ring and gave it
	// up (their alives said so), since a heal began for another reason
	// (in memory); none of them is asked to lead the next (quitHeal).
	healQuitters map[string]bool
	// healRetry: every member gave up a heal of this ring, the last
	// healLastQuit; unless a member goes offline first, the ring heals
	// again then (retryHeal). Zero: no such wait.
	healRetry    time.Time
	healLastQuit string
	// healedLast: the leader and epoch of the last heal that ended the
	// wait (in memory), whose healed is acknowledged again after the ring
	// moved on, in case the first ack was lost.
	healedLast struct {
		name  string
		epoch uint64
		// second and answers: how many times its healed was acknowledged
		// again in the second (Unix) it last was (maxAgain a second).
		second  int64
		answers int
	}
	// after: what a request's handling asks to send once its reply is out
	// (the heal a rejoin started).
	after []Output
	// late holds back the judgements of a late Tick (a member offline,
	// an operation timed out) until what waited on the socket is read.
	late lateGuard
	// repace is when Start's pace goes again to the users not heard from
	// since the start (zero: no more), repaces how many times after that.
	repace  time.Time
	repaces int
}

// seenFlush bounds how stale the LastSeen times in the file may get: one
// commit every few seconds for all users together, never one per alive.
const seenFlush = 5 * time.Second

// NewServer builds a server from persisted state.
func NewServer(cfg ServerConfig, st state.ServerState, replies []state.CachedReply) *Server {
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = DefaultOpTimeout
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(1, 2))
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = DefaultDeadAfter
	}
	if cfg.Keys == nil {
		cfg.Keys = defaultKeys
	}
	s := &Server{cfg: cfg, users: map[string]*state.User{}, byAddr: map[netip.AddrPort]string{}, dht: st.DHT,
		cache: map[netip.AddrPort]cachedReply{}, persisted: map[netip.AddrPort]bool{},
		lastSeen: map[string]time.Time{}, started: cfg.Started}
	s.late.pace = s.Pace() // its users send alives this often
	for _, u := range st.Users {
		u := u
		s.users[u.Name] = &u
		s.byAddr[u.Addr] = u.Name
	}
	for _, r := range replies {
		h, m, err := wire.Decode(r.Datagram)
		if rep, ok := m.(wire.Reply); err == nil && ok {
			c := cachedReply{id: r.ID, reply: rep, seq: h.Seq, raw: r.Datagram}
			if h.Flags&wire.FlagAuth != 0 {
				if !r.Key.IsZero() {
					c.key = r.Key // a deregister's (its user is gone), or a register's signed with its cookie
				} else if u := s.users[s.byAddr[r.Addr]]; u != nil {
					c.key = u.Secret
				}
			}
			s.cache[r.Addr] = c
			s.persisted[r.Addr] = true
		} else {
			s.forget = append(s.forget, r.Addr) // unusable: deleted with the next change
		}
	}
	return s
}

// Snapshot is the state as it would be persisted.
func (s *Server) Snapshot() state.ServerState {
	st := state.ServerState{DHT: s.dht}
	st.DHT.Members = slices.Clone(s.dht.Members)
	for _, u := range s.users {
		st.Users = append(st.Users, *u)
	}
	slices.SortFunc(st.Users, func(a, b state.User) int { return strings.Compare(a.Name, b.Name) })
	return st
}

// ValidName reports whether name is a legal user name (state.ValidName).
func ValidName(name string) bool { return state.ValidName(name) }

// NotUnicast says why ip cannot be a user's address (state.NotUnicast).
func NotUnicast(ip netip.Addr) string { return state.NotUnicast(ip) }

// Pace is how often a registered user is told to send an alive: a tenth
// of DeadAfter, but no longer than the longest period a peer takes.
func (s *Server) Pace() time.Duration {
	return min(s.cfg.DeadAfter/alivesPerDeadAfter, maxAlivePeriod)
}

// clock notes the server's start at its first input when the
// configuration did not say when it was.
func (s *Server) clock(now time.Time) {
	if s.started.IsZero() {
		s.started = now
	}
}

// Silent is how long user name has been silent at now (for a datagram in
// hand, when it came: judgedAt), and whether that makes it offline (silent
// for more than DeadAfter).
func (s *Server) Silent(now time.Time, name string) (time.Duration, bool) {
	s.clock(now)
	at := s.judgedAt(now)
	if at.Before(s.judged) && !s.judged.After(now) && s.byAddr[s.sender] != name {
		at = s.judged
	}
	now = at
	last, ok := s.lastSeen[name]
	if !ok {
		last = s.started
	}
	d := max(now.Sub(last), 0)
	return d, d > s.cfg.DeadAfter
}

// unheard is 1 for a user nothing came from since this server started, 0
// for one heard from.
func (s *Server) unheard(name string) int {
	if _, ok := s.lastSeen[name]; ok {
		return 0
	}
	return 1
}

func (s *Server) online(now time.Time, name string) bool {
	_, off := s.Silent(now, name)
	return !off
}

// offline is the FAILURE for a user that is offline, or nil.
func (s *Server) offline(now time.Time, name string) *wire.Reply {
	if d, off := s.Silent(now, name); off {
		return fail("%s is offline: silent for %s (--dead-after %s)", name, d.Round(time.Millisecond), s.cfg.DeadAfter)
	}
	return nil
}

// seen records a sign of life from the user registered at from, if any.
func (s *Server) seen(now time.Time, from netip.AddrPort) {
	name := s.byAddr[from]
	if name == "" {
		return
	}
	s.lastSeen[name] = now
	u := s.users[name]
	if sec := now.Truncate(time.Second).UnixNano(); u.LastSeen != sec {
		u.LastSeen = sec
		if s.seenDirty.IsZero() {
			s.seenDirty = now
		}
	}
}

// persist is the PersistServer of the whole state; it carries every
// LastSeen change too.
func (s *Server) persist(reply *state.CachedReply) PersistServer {
	p := PersistServer{State: s.Snapshot(), Reply: reply, Forget: s.forget}
	s.forget, s.seenDirty = nil, time.Time{}
	return p
}

// alive takes a user's sign of life. It is never answered but with a
// Pace, and only when the sender's period is not the server's: a Pace is
// shorter than any Alive.
func (s *Server) alive(now time.Time, from netip.AddrPort, h wire.Header, m wire.Alive) []Output {
	u := s.users[m.Name]
	switch {
	case u == nil || u.Addr != from:
		return []Output{dropped("alive for a user not registered at its source", from, slog.String("name", m.Name))}
	case !wire.Verify(u.Secret, h):
		return []Output{dropped("alive not signed with the user's secret", from, slog.String("name", m.Name))}
	case h.Seq == u.AliveSeq:
		// A copy of the last alive taken: what a network that duplicates
		// does, no warning (a replay of it is summarised all the same).
		ev := dropped("alive again: a copy of the last taken", from, slog.String("name", m.Name))
		ev.Level = slog.LevelInfo
		return []Output{ev}
	case h.Seq < u.AliveSeq:
		return []Output{dropped("alive replayed", from, slog.String("name", m.Name))}
	}
	u.AliveSeq = h.Seq
	s.heard(u)
	s.dirty(now) // written with LastSeen, within seenFlush
	return s.takeAlive(now, from, h, u, m, true)
}

// takeAlive acts on u's alive m, taken as authentic; its pace, if any, is
// signed when sign is set.
func (s *Server) takeAlive(now time.Time, from netip.AddrPort, h wire.Header, u *state.User, m wire.Alive, sign bool) []Output {
	s.seen(now, from)
	if s.places == nil {
		s.places = make(map[string]placeSeen)
	}
	if p := s.places[u.Name]; p.n > 0 && p.epoch == m.Epoch {
		s.places[u.Name] = placeSeen{m.Epoch, p.n + 1}
	} else {
		s.places[u.Name] = placeSeen{m.Epoch, 1}
	}
	var out []Output
	if s.nobodyInRing() {
		// Every member's peer says it holds no place in the ring the
		// server counts it in: a server put back on an older file whose
		// ring was torn down since, say. Nothing else would end it.
		s.note = fmt.Sprintf("no member holds a place in the DHT of epoch %d that this server recorded (was its file put back from an older copy?): it was dissolved and its members are Free; set up a new one", s.dht.Epoch)
		s.dissolve()
		out = append(out, event("no member holds a place in the DHT: dissolved", slog.String("what", s.note)), s.persist(nil))
	}
	out = append(out, s.outdated(u, max(m.Epoch, m.KeyEpoch))...)
	out = append(out, s.quit(now, u, m.QuitOp, m.Quit)...)
	pace, ok := s.paceFor(u, m)
	if s.offPace == nil {
		s.offPace = make(map[string]bool)
	}
	if m.PeriodMS != pace.PeriodMS {
		s.offPace[u.Name] = true
	} else {
		delete(s.offPace, u.Name)
	}
	if !ok {
		return out
	}
	if !sign {
		return append(out, Send{To: from, ID: h.ID, Msg: pace})
	}
	return append(out, Send{To: from, ID: h.ID, Msg: pace, Sign: true, Seq: h.Seq, Key: u.Secret})
}

// outdated takes epoch e, of a ring place or a ring key, from an authentic
// alive or rejoin of u. Epochs come from this server, which writes each to
// its file before anyone hears of it: one above its own means that its file
// is older than what its peers know (put back from an older copy). The
// DHT it recorded is dissolved (its members may be in another ring by now,
// which this server cannot vouch for), and its epochs go on from e, so that
// the next setup's set-ids are newer than any ring key a peer took (a
// member refuses a set-id of an epoch not above its key's as an earlier
// ring's). The places the peers hold are then of rings it counts no one
// in: their next paces say so, and they drop them.
func (s *Server) outdated(u *state.User, e uint64) []Output {
	ev, ok := s.outdate(u, e)
	if !ok {
		return nil
	}
	return []Output{ev, s.persist(nil)}
}

// outdate is outdated's change, and the event that says so, without the
// commit (a rejoin's reply carries it).
//
// Any user can claim any epoch with its own secret, so a claim dissolves
// the DHT recorded only when it comes from one of its members (the leaver
// among them); when that DHT is ready and every member's last two alives
// name no place in it (the ring was torn down after the copy, say, and
// another, of none of its members, set up), takeAlive dissolves it, claim
// or none. A Free user, a joiner included, cannot end a ring that stands
// with one alive. A claim not believed so far only makes the next epoch
// taken (newEpoch) larger than it, which changes no one's place: epochs
// never repeat. No claim takes them past maxClaimedEpoch: they never wrap.
func (s *Server) outdate(u *state.User, e uint64) (Event, bool) {
	if e <= s.dht.Epoch || e > maxClaimedEpoch {
		return Event{}, false
	}
	if s.dht.Phase != state.PhaseNone && !slices.Contains(s.dht.Members, u.Name) && !s.nobodyInRing() {
		s.claimed = max(s.claimed, e) // the next epoch taken goes on from it
		return Event{}, false
	}
	was := s.dht
	if was.Phase != state.PhaseNone {
		s.note = fmt.Sprintf("this server's file is older than the ring of epoch %d that %s's peer knows (was it put back from an older copy?): the DHT it recorded (epoch %d, led by %s) was dissolved and its members are Free; set up a new one",
			e, u.Name, was.Epoch, was.Leader)
		s.dissolve()
	}
	s.dht.Epoch = max(e, s.claimed)
	msg := "this server's file is older than its peers' rings: epochs go on from theirs"
	if was.Phase != state.PhaseNone {
		msg = "this server's file is older than its peers' rings: epochs go on from theirs, DHT dissolved"
	}
	return event(msg, slog.String("name", u.Name), slog.Uint64("their_epoch", e), slog.Uint64("file_epoch", was.Epoch), slog.String("dht", was.Phase.String())), true
}

// newEpoch is the epoch a setup, leave, join or heal takes: above every
// epoch before, and every one a peer claimed.
func (s *Server) newEpoch() uint64 { return max(s.dht.Epoch, s.claimed) + 1 }

// placeSeen is the place a user's alives name, and how many in a row did.
type placeSeen struct {
	epoch uint64
	n     int
}

// nobodyInRing reports whether the DHT is ready and every member's last
// two alives since it became ready (or since the server started) named no
// place in it: two, so that an alive sent before its member took its
// place, and delayed past the end of the operation, is not taken for it.
func (s *Server) nobodyInRing() bool {
	if s.dht.Phase != state.PhaseReady {
		return false
	}
	for _, m := range s.dht.Members {
		if p, ok := s.places[m]; !ok || p.epoch == s.dht.Epoch || p.n < 2 {
			return false
		}
	}
	return true
}

// maxClaimedEpoch is the largest epoch a peer's claim moves the server's
// epochs to: far above what a server makes (one a setup, leave, join or
// heal), far below where they would wrap.
const maxClaimedEpoch = 1 << 48

// seqFloor separates the two numbers an alive's quit field carries: every
// epoch is below it (claims stop at maxClaimedEpoch, and a server makes one
// epoch an operation after that), every request's sequence number above it
// (nanoseconds since 1970, which passed it in 1972).
const seqFloor = 1 << 56

// paceFor is the answer to u's alive m, if it needs one: a Pace when m's
// period is not the server's, or when m names a place in a ring the server
// counts u in no longer (then Gone is that ring's epoch).
func (s *Server) paceFor(u *state.User, m wire.Alive) (wire.Pace, bool) {
	p := wire.Pace{PeriodMS: uint32(s.Pace().Milliseconds()), Gone: s.placeGone(u, m.Epoch)}
	return p, m.PeriodMS != p.PeriodMS || p.Gone != 0
}

// Start is what the server sends as it starts: a pace to every registered
// user. A peer sends its alives as often as the server it last heard from
// told it (that server's --dead-after over alivesPerDeadAfter); restarted
// with a shorter --dead-after, the server would otherwise hear from its
// users only once it had taken them for offline, since it paces a peer in
// answer to an alive, and heal live members out of the ring (an operator's
// review: a ring of 6 healed to 2 with every peer running).
//
// The pace is not acknowledged: it goes again, twice, a quarter of
// DeadAfter apart, to each user not heard from since (an operator's
// review: one lost at 20% loss took a live member out of the ring); a
// user heard from gets its pace in answer to its alive, as ever. A wait
// the file holds is given its whole op timeout from now.
func (s *Server) Start(now time.Time) []Output {
	s.clock(now)
	s.startedAt = now
	s.repaces = startRepaces
	return s.paceUnheard(now, true)
}

// startRepaces is how many more times Start's pace goes to a user not
// heard from since the start.
const startRepaces = 2

// paceUnheard paces every registered user (all) or every one not heard
// from since the start, and schedules Start's next round, if one is left.
func (s *Server) paceUnheard(now time.Time, all bool) []Output {
	s.repace = time.Time{}
	if s.repaces > 0 {
		s.repaces--
		s.repace = now.Add(s.cfg.DeadAfter / 4)
	}
	var out []Output
	pace := wire.Pace{PeriodMS: uint32(s.Pace().Milliseconds())}
	for _, name := range slices.Sorted(maps.Keys(s.users)) {
		u := s.users[name]
		if u.Secret.IsZero() || !all && s.unheard(name) == 0 && !s.offPace[name] {
			// Heard from, and at the server's period: the start round
			// goes again only to the others. One heard at another period
			// (its start pace lost) gets it again too: should the pace
			// answering its alive be lost as well, it would send at the
			// old period, longer than --dead-after
			// (TestDeadAfterChangedBothWaysAtLoss).
			continue
		}
		out = append(out, Send{To: u.Addr, ID: uint32(len(out) + 1), Msg: pace, Sign: true, Key: u.Secret})
	}
	return out
}

// placeGone is epoch when u, whose peer holds a place in the ring of that
// epoch, is in no such ring: u is Free (healed out of it as offline, the
// ring dissolved or rolled back meanwhile), and not the joiner of the join
// in progress, who is Free in the join's own epoch until its dht-rebuilt.
// Else 0. Epochs never repeat, so a place of a gone epoch never counts
// again, and a late Pace cannot take a newer place: the peer drops only a
// place of the epoch named.
func (s *Server) placeGone(u *state.User, epoch uint64) uint64 {
	if epoch == 0 || u.State != state.Free {
		return 0
	}
	if d := s.dht; d.Phase == state.PhaseJoining && d.Joiner == u.Name && epoch == d.Epoch {
		return 0
	}
	return epoch
}

// Step handles one datagram from a client, as it came: it acts on a
// request only once the request has proved that it comes from the user it
// names (signed with the user's secret, with a sequence number larger than
// any before), or, for a register without the secret, once a challenge
// sent to its address has come back (docs/DESIGN.md §9).
func (s *Server) Step(now time.Time, from netip.AddrPort, h wire.Header, m wire.Message) []Output {
	s.clock(now)
	s.late.heard(now, s.came)
	if why := NotUnicast(from.Addr()); why != "" {
		// No host sends from there: the source is forged, and an answer
		// would go to a group or to every host on the link. (A network's
		// broadcast address passes here; the socket, SO_BROADCAST off,
		// refuses to send to it.)
		return []Output{dropped("source is not a unicast address", from, slog.String("why", why))}
	}
	switch m := m.(type) {
	case wire.Alive:
		return s.alive(now, from, h, m)
	case wire.Ack:
		return s.healAck(now, from, h, m, true)
	case wire.Healed:
		return s.healed(now, from, h, m, true)
	}
	if !isRequest(m) {
		return []Output{dropped("not a request", from, slog.String("type", m.Type().String()))}
	}
	signed := h.Flags&wire.FlagAuth != 0
	if c, ok := s.cache[from]; ok && c.id == h.ID && c.seq == h.Seq && !c.key.IsZero() &&
		(signed && wire.Verify(c.key, h) || !signed && sameCookie(c, m)) {
		return s.again(now, from, h, c, true)
	}
	if r, ok := m.(wire.Register); ok && !signed {
		return s.challenge(now, from, h, r)
	}
	name := requestName(m)
	u := s.users[name]
	if signed && (u == nil || !wire.Verify(u.Secret, h)) {
		// A user asking for another (or for no user): authentic from
		// the sender, it gets the rules' answer, which says why not.
		if v := s.users[s.byAddr[from]]; v != nil && !v.Secret.IsZero() && wire.Verify(v.Secret, h) {
			u = v
		}
	}
	switch {
	case !signed:
		return s.refuse(now, from, h, m, "request not signed", "not signed")
	case u == nil:
		if r, ok := m.(wire.Register); ok {
			// The register of a user this server does not know, signed
			// with a secret it never gave (it was started on a new file,
			// or deregistered the user): a new registration, once its
			// address answers a challenge, as one without a secret.
			return s.challenge(now, from, h, r)
		}
		return s.refuse(now, from, h, m, "request for a user not registered", name+" is not registered")
	case u.Secret.IsZero() || !wire.Verify(u.Secret, h):
		if r, ok := m.(wire.Register); ok && from == u.Addr && r.Addr == u.Addr {
			// The user's own register, from its registered address, signed
			// with a secret this server does not hold (its file is older
			// than the user's last registration): a rejoin like that of a
			// peer on a new file, once the address answers a challenge.
			return s.challenge(now, from, h, r)
		}
		if r, ok := m.(wire.Register); ok && from != u.Addr {
			// A register for a name registered at another address, signed
			// with a secret this server never gave it (a peer started on a
			// file of another server, or of this one before it lost its
			// file): a new registration, challenged as one without a
			// secret, gets the rules' answer (the name is taken), and the
			// peer learns that its file is another server's.
			return s.challenge(now, from, h, r)
		}
		return s.refuse(now, from, h, m, "request not signed with the user's secret", "not signed by "+name)
	case h.Seq <= u.Seq && from == u.Addr:
		return s.behind(now, from, h, u)
	case h.Seq <= u.Seq:
		return []Output{dropped("replayed request", from, slog.String("name", name), slog.Uint64("seq", h.Seq))}
	case from != u.Addr:
		// Authentic, from another address than its user's: a peer sends
		// everything from the address it registered, so the source is
		// forged, by the user itself (no one else holds the secret). Not
		// acted on, and not answered: an answer would let the user aim
		// the server's replies, larger than its requests, at any address.
		return []Output{dropped("signed request not from its user's address", from, slog.String("name", u.Name), slog.String("registered", u.Addr.String()))}
	}
	u.Seq = h.Seq
	s.heard(u)
	s.dirty(now)
	return s.serve(now, from, h, m, true, u.Secret)
}

// StepDatagram is Step for a datagram the socket says more of: the address
// it was sent to (Local; a user's authentic request or alive sent to one of
// the host's addresses has what the server sends the user go from there)
// and how long it waited to be read (Waited; who is silent is judged as of
// when it came: judgedAt).
func (s *Server) StepDatagram(now time.Time, d Datagram) []Output {
	s.at, s.sender = d.Local, d.From
	if d.Stamped {
		s.came = now.Add(-max(d.Waited, 0))
	}
	defer func() { s.at, s.came, s.sender = netip.Addr{}, time.Time{}, netip.AddrPort{} }()
	return s.Step(now, d.From, d.Header, d.Msg)
}

// judgedAt is the time as of which the datagram in hand has the server
// judge who is silent: when it came. A server that did not read for a
// while (stopped, starved of CPU, its disk slow) reads a request that came
// before the alives queued behind it; judged at the time of the read, its
// own silence would count as its users' (a chaos review: a setup-dht sent
// as the server stopped for 8 s was refused, "judy is offline: silent for
// 5.181s", judy its caller). A Tick judges at its own time, after reading
// what waited (lateGuard).
func (s *Server) judgedAt(now time.Time) time.Time {
	if !s.came.IsZero() && s.came.Before(now) {
		return s.came
	}
	return now
}

// ReplyFrom is the address of the server's host to send what it starts
// itself (a pace, a heal) to `to` from: the one its user's last authentic
// request or alive was sent to (state.User.Via, kept in the file); zero
// if none is known (the system chooses). Only an authentic datagram sets
// it: one with the user's source forged, sent to another of the host's
// addresses, would otherwise have the user's heals come from an address
// it drops them from (a review's spoofed junk kept a heal's leader from
// its heal until the DHT was dissolved). An answer to a datagram goes
// from where that datagram was sent (the runner).
func (s *Server) ReplyFrom(to netip.AddrPort) netip.Addr {
	if u := s.users[s.byAddr[to]]; u != nil {
		return u.Via
	}
	return netip.Addr{}
}

// heard notes that the datagram in hand, u's, was authentic: what the
// server starts sending u goes from where it was sent. The caller marks
// the state dirty.
func (s *Server) heard(u *state.User) {
	// One of the host's addresses: a datagram sent to a broadcast or a
	// multicast address reaches a socket bound to every address too, and
	// nothing can be sent from there (a review: the file kept it, and
	// would not read back).
	if s.at.Is4() && NotUnicast(s.at) == "" {
		u.Via = s.at
	}
}

// behind answers a request of u's, from its address and signed with its
// secret, whose sequence number is not above the last one taken from u:
// either a replay, or a new request from a peer whose clock is behind the
// one it ran on before (a host's clock set back, a file moved to another
// host), which counts from its clock when it starts and would be refused
// until that clock caught up. It is not acted on; the FAILURE tells the
// last sequence number taken (in the epoch field), and the peer goes on
// above it. The answer goes to u's registered address only, signed with
// u's secret (no one else can make a peer jump its count), ten a second at
// most (replays of a captured request get no more), and is not cached: a
// replay gets the user a datagram it ignores (it asked nothing with that
// id), and a stranger nothing.
func (s *Server) behind(now time.Time, from netip.AddrPort, h wire.Header, u *state.User) []Output {
	ev := dropped("request behind the user's sequence numbers: told the last taken", from, slog.String("name", u.Name), slog.Uint64("seq", h.Seq), slog.Uint64("last", u.Seq))
	// No warning: a network that reorders delivers a user's requests
	// typed ahead out of order (a replay is summarised all the same).
	ev.Level = slog.LevelInfo
	out := []Output{ev}
	if s.mayRefuse(now) {
		r := wire.Reply{Reason: "sequence number behind the last one taken", Epoch: u.Seq}
		out = append(out, Send{To: from, ID: h.ID, Msg: r, Sign: true, Seq: h.Seq, Key: u.Secret, Quiet: true})
	}
	return out
}

// sameCookie reports whether m is the register with the cookie whose reply
// c caches (an unsigned reply is signed with its cookie).
func sameCookie(c cachedReply, m wire.Message) bool {
	r, ok := m.(wire.Register)
	return ok && wire.Key(r.Cookie) == c.key
}

// challengedMsg is the trace line of a register answered with a challenge:
// every peer's first, or one from a forged source.
const challengedMsg = "register challenged: no valid cookie"

// challenge answers a register that does not carry the user's secret. Without
// a valid cookie it gets a Challenge, sent to its source and smaller than
// the register (nothing else is done, nothing is kept); with one, the
// sender has shown that it receives at that address, and the register is
// acted on, its reply signed with the cookie.
func (s *Server) challenge(now time.Time, from netip.AddrPort, h wire.Header, m wire.Register) []Output {
	if s.cookieKey.IsZero() {
		s.cookieKey = newKey(s.cfg.Keys) // at the first: a server that never challenges draws none
	}
	w := now.UnixNano() / int64(cookieWindow)
	bound := s.cookieBinding(now, m.Name)
	want := cookie(s.cookieKey, w, m.Name, m.Addr, from, bound)
	if m.Cookie != want && m.Cookie != cookie(s.cookieKey, w-1, m.Name, m.Addr, from, bound) {
		// Every peer's first register comes so: traced at the info level,
		// not as a warning, but counted with the drops, and the challenge
		// sent quiet (traced as the drops are), so that a flood of forged
		// registers costs a few trace lines a minute.
		ev := dropped("", from, slog.String("name", m.Name))
		ev.Msg, ev.Level = challengedMsg, slog.LevelInfo
		return []Output{ev, Send{To: from, ID: h.ID, Msg: wire.Challenge{Cookie: want}, Quiet: true}}
	}
	return s.serve(now, from, h, m, false, wire.Key(m.Cookie))
}

// removal is when a name was deregistered, and its number.
type removal struct {
	at time.Time
	n  uint64
}

// maxRemoved bounds the names whose removal the cookies remember.
const maxRemoved = 4096

// cookieBinding is what a cookie for a register of name is bound to, so
// that it is acted on once, whoever sends it again (SPEC §7: a replayed
// request is never run again): the secret of the user registered as
// name, which its registration or a rejoin by cookie sets anew; for a name
// not registered, the number of its last removal, which a deregister sets
// anew, so that a register replayed after a deregister is challenged,
// not acted on. A removal is remembered for two cookie windows, as long as
// a cookie is good for; with more than maxRemoved names removed in that
// time, removedAll moves on instead, and every cookie for a name not
// registered is refused (its peer is challenged again).
func (s *Server) cookieBinding(now time.Time, name string) []byte {
	if u := s.users[name]; u != nil {
		return u.Secret[:]
	}
	r := s.removed[name]
	if !r.at.IsZero() && now.Sub(r.at) > 2*cookieWindow {
		r.n = 0
	}
	return append(u64(s.removedAll), u64(r.n)...)
}

// forgetName notes that name was deregistered at now (cookieBinding).
func (s *Server) forgetName(now time.Time, name string) {
	if s.removed == nil {
		s.removed = map[string]removal{}
	}
	if len(s.removed) >= maxRemoved {
		for k, r := range s.removed {
			if now.Sub(r.at) > 2*cookieWindow {
				delete(s.removed, k)
			}
		}
	}
	if len(s.removed) >= maxRemoved {
		clear(s.removed)
		s.removedAll++
	}
	s.removals++
	s.removed[name] = removal{at: now, n: s.removals}
}

// refuse answers a request that proved nothing: a FAILURE saying why, but
// only if it is no larger than the request (a forged source must not make
// the server a traffic amplifier), else nothing.
//
// At most refusalsPerSecond such answers go out in a second: a flood of
// forged requests is counted among the drops, and costs no traffic.
func (s *Server) refuse(now time.Time, from netip.AddrPort, h wire.Header, m wire.Message, why, reason string) []Output {
	out := []Output{dropped(why, from, slog.String("type", m.Type().String()))}
	r := wire.Reply{Reason: reason}
	if wire.EncodedLen(r) <= requestLen(h, m) && s.mayRefuse(now) {
		// Sent quiet, as a challenge is (traced as the drops are): the
		// drop above says it, and a stream of forged requests costs the
		// trace a few lines a minute, not a line a refusal too.
		out = append(out, Send{To: from, ID: h.ID, Msg: r, Quiet: true})
	}
	return out
}

// mayRefuse counts an answer to a request that is not acted on, and
// reports whether it may go: at most refusalsPerSecond a second.
func (s *Server) mayRefuse(now time.Time) bool {
	if sec := now.Unix(); sec != s.refusalSec {
		s.refusalSec, s.refusals = sec, 0
	}
	if s.refusals >= refusalsPerSecond {
		return false
	}
	s.refusals++
	return true
}

// refusalsPerSecond bounds the answers to requests that proved nothing.
const refusalsPerSecond = 10

// requestLen is the length of the datagram that carried m.
func requestLen(h wire.Header, m wire.Message) int {
	if h.Flags&wire.FlagAuth != 0 {
		return len(h.Signed) + wire.TagLen
	}
	return wire.EncodedLen(m)
}

// dirty notes a change to a user's persisted fields that no command
// commits: Tick writes it within seenFlush.
func (s *Server) dirty(now time.Time) {
	if s.seenDirty.IsZero() {
		s.seenDirty = now
	}
}

// requestName is the user a request names.
func requestName(m wire.Message) string {
	switch m := m.(type) {
	case wire.Register:
		return m.Name
	case wire.SetupDHT:
		return m.Name
	case wire.DHTComplete:
		return m.Name
	case wire.QueryDHT:
		return m.Name
	case wire.LeaveDHT:
		return m.Name
	case wire.DHTRebuilt:
		return m.Name
	case wire.Deregister:
		return m.Name
	case wire.TeardownDHT:
		return m.Name
	case wire.TeardownComplete:
		return m.Name
	case wire.JoinDHT:
		return m.Name
	case wire.Tickets:
		return m.Name
	}
	return ""
}

// stepTrusted handles a request taken as authentic: Step once the request
// has proved its origin, and the tests of the protocol's rules.
func (s *Server) stepTrusted(now time.Time, from netip.AddrPort, h wire.Header, m wire.Message) []Output {
	s.clock(now)
	s.late.heard(now, s.came)
	if a, ok := m.(wire.Alive); ok && NotUnicast(from.Addr()) == "" {
		u := s.users[a.Name]
		if u == nil || u.Addr != from {
			return []Output{dropped("alive for a user not registered at its source", from, slog.String("name", a.Name))}
		}
		return s.takeAlive(now, from, h, u, a, false)
	}
	switch m := m.(type) {
	case wire.Ack:
		return s.healAck(now, from, h, m, false)
	case wire.Healed:
		return s.healed(now, from, h, m, false)
	}
	if !isRequest(m) {
		return []Output{dropped("not a request", from, slog.String("type", m.Type().String()))}
	}
	if why := NotUnicast(from.Addr()); why != "" {
		return []Output{dropped("source is not a unicast address", from, slog.String("why", why))}
	}
	if c, ok := s.cache[from]; ok && c.id == h.ID {
		return s.again(now, from, h, c, false)
	}
	return s.serve(now, from, h, m, false, wire.Key{})
}

// again answers a retransmission of the request whose reply c holds, from
// the cache; with limit (Step: from the network), at most maxAgain times a
// second.
func (s *Server) again(now time.Time, from netip.AddrPort, h wire.Header, c cachedReply, limit bool) []Output {
	// Not a sign of life: anyone who captured the request can send it
	// again, and would keep a dead member in the ring (a red team's
	// replay). The user's own alives are.
	if sec := now.Unix(); c.second != sec {
		c.second, c.answers = sec, 0
	}
	c.answers++
	s.cache[from] = c
	if limit && c.answers > maxAgain {
		return []Output{dropped(fmt.Sprintf("duplicate request answered %d times this second already", maxAgain), from, slog.Uint64("id", uint64(h.ID)))}
	}
	// Traced as the drops are, its answer as a quiet send: a request
	// captured and replayed from its sender's address, or from each of
	// the 4096 the cache holds, was three lines a copy, ten copies a
	// second each, for as long as the replay went on (SPEC §7: bounded
	// trace). A lost reply's retransmission is the first of its window,
	// traced in full; the rest of the window are counted.
	ev := dropped("duplicate request: answered again from the cache", from, slog.Uint64("id", uint64(h.ID)))
	ev.Level = slog.LevelInfo
	return []Output{ev, Send{To: from, ID: h.ID, Msg: c.reply, Raw: c.raw, Quiet: true}}
}

// serve acts on an authentic request and answers it, signed with key
// (unsigned when key is zero); bySecret says the request was signed with
// the user's secret.
func (s *Server) serve(now time.Time, from netip.AddrPort, h wire.Header, m wire.Message, bySecret bool, key wire.Key) []Output {
	s.reqSeq = 0
	if bySecret {
		s.reqSeq = h.Seq
	}
	reply, changed := s.handle(now, from, m, bySecret)
	// A request is a sign of life too, but only once it has been judged:
	// setup-dht and join-dht refuse a caller that was silent until now.
	s.seen(now, from)
	send := Send{To: from, ID: h.ID, Msg: *reply, Sign: !key.IsZero(), Seq: h.Seq, Key: key}
	dg, err := send.Append(nil)
	if err != nil {
		panic(fmt.Sprintf("server: reply does not encode: %v", err))
	}
	s.cache[from] = cachedReply{id: h.ID, reply: *reply, seq: h.Seq, key: key, raw: dg}
	if len(s.cache) > maxCache {
		s.pruneCache()
	}
	var out []Output
	after := s.after
	s.after = nil
	if !changed && bySecret && !readOnly(m) {
		// A refusal changes no state but the request's number, which must
		// be on file before the answer leaves: else the request, captured
		// and replayed at the server restarted on its file, is taken as
		// new, and may succeed where it failed (a deregister once the
		// user's ring is gone). Its answer goes with it, as a success's:
		// a retransmission that reaches the restarted server gets it.
		changed = true
	}
	if changed {
		c := &state.CachedReply{Addr: from, ID: h.ID, Datagram: dg}
		if !bySecret {
			// Signed with the register's cookie: a copy of the register
			// is checked against it (sameCookie) after a restart too (a
			// code review: it got a new challenge, ran again as a rejoin
			// and changed the user's secret once more).
			c.Key = key
		}
		if _, ok := m.(wire.Deregister); ok && reply.OK {
			// The user and its secret are gone: the cached reply keeps
			// the key, so that a retransmission that reaches a restarted
			// server is still checked, and answered SUCCESS again.
			c.Key = key
		}
		out = append(out, s.persist(c))
		s.persisted[from] = true
	}
	return append(append(out, send), after...)
}

// maxCache bounds the in-memory reply cache: strangers sending requests
// from many addresses must not grow it without limit.
const maxCache = 4 * MaxUsers

// pruneCache forgets the answers to addresses that are not registered.
// Those answers were FAILUREs or a deregister: running a retransmission of
// one again changes nothing.
func (s *Server) pruneCache() {
	for addr := range s.cache {
		if s.byAddr[addr] == "" {
			delete(s.cache, addr)
			if s.persisted[addr] {
				delete(s.persisted, addr)
				s.forget = append(s.forget, addr)
			}
		}
	}
}

// readOnly reports a request that changes nothing, whatever its answer:
// run again, it is answered again (a query-dht, setup's further tickets).
func readOnly(m wire.Message) bool {
	switch m.(type) {
	case wire.QueryDHT, wire.Tickets:
		return true
	}
	return false
}

func isRequest(m wire.Message) bool {
	switch m.(type) {
	case wire.Register, wire.SetupDHT, wire.DHTComplete, wire.QueryDHT, wire.LeaveDHT,
		wire.DHTRebuilt, wire.Deregister, wire.TeardownDHT, wire.TeardownComplete, wire.JoinDHT, wire.Tickets:
		return true
	}
	return false
}

func fail(format string, args ...any) *wire.Reply {
	return &wire.Reply{Reason: fmt.Sprintf(format, args...)}
}

func ok(members ...wire.Member) *wire.Reply { return &wire.Reply{OK: true, Members: members} }

// handle applies one request; changed reports a state change to persist.
func (s *Server) handle(now time.Time, from netip.AddrPort, m wire.Message, bySecret bool) (reply *wire.Reply, changed bool) {
	switch m := m.(type) {
	case wire.Register:
		return s.register(now, from, m, bySecret)
	case wire.Tickets:
		return s.tickets(from, m), false
	case wire.SetupDHT:
		return s.setup(now, from, m)
	case wire.DHTComplete:
		return s.complete(now, from, m)
	case wire.QueryDHT:
		return s.query(now, from, m), false
	case wire.LeaveDHT:
		return s.leave(now, from, m)
	case wire.DHTRebuilt:
		return s.rebuilt(now, from, m)
	case wire.Deregister:
		return s.deregister(now, from, m)
	case wire.TeardownDHT:
		return s.teardown(now, from, m)
	case wire.TeardownComplete:
		return s.teardownComplete(now, from, m)
	case wire.JoinDHT:
		return s.join(now, from, m)
	}
	panic(fmt.Sprintf("server: %T is not a request", m))
}

// waiting is the FAILURE every request but the awaited one gets while an
// operation is in progress, with how long the server waits before it rolls
// the operation back; "" when the server waits for nothing.
func (s *Server) waiting(now time.Time) string {
	w := s.awaiting()
	if w == "" {
		return ""
	}
	if at, ok := s.waitDeadline(); ok {
		left := max(at.Sub(now), 0).Round(time.Second)
		end := "rolled back" // a setup: the DHT is dissolved
		switch s.dht.Phase {
		case state.PhaseTearing, state.PhaseHealing:
			end = "the DHT is dissolved" // nothing to roll back to (a new user's review)
		case state.PhaseJoining:
			end = fmt.Sprintf("ended (the ring heals without %s)", s.dht.Joiner)
		case state.PhaseLeaving:
			end = fmt.Sprintf("ended (the ring heals without %s)", s.dht.Leaver)
		}
		w += fmt.Sprintf("; %s in %s unless it comes (--op-timeout %s)", end, left, s.cfg.OpTimeout)
	}
	return w
}

// awaiting says what the server waits for, and from whom.
func (s *Server) awaiting() string {
	switch s.dht.Phase {
	case state.PhaseBuilding:
		return fmt.Sprintf("server is waiting for dht-complete from %s (setup-dht in progress)", s.dht.Leader)
	case state.PhaseLeaving:
		return fmt.Sprintf("server is waiting for dht-rebuilt from %s (leave-dht in progress)", s.dht.Leaver)
	case state.PhaseTearing:
		return fmt.Sprintf("server is waiting for teardown-complete from %s (teardown-dht in progress)", s.dht.Leader)
	case state.PhaseJoining:
		return fmt.Sprintf("server is waiting for dht-rebuilt from %s (join-dht in progress)", s.dht.Joiner)
	case state.PhaseHealing:
		why := s.healWhy
		if len(s.dht.Removed) > 0 {
			why = andList(s.dht.Removed) + " removed as offline"
		}
		if !s.healRetry.IsZero() {
			return fmt.Sprintf("the DHT is healing (%s); every member gave up a heal of it, the last %s: the server heals it again without a member that goes offline, or at %s", why, s.healLastQuit, s.healRetry.UTC().Format(time.TimeOnly))
		}
		if why != "" {
			return fmt.Sprintf("the DHT is healing (%s); server is waiting for healed from %s", why, s.dht.Leader)
		}
		return fmt.Sprintf("the DHT is healing; server is waiting for healed from %s", s.dht.Leader)
	}
	return ""
}

// idleCaller is caller for a request that may not come while the server
// waits for the end of an operation.
func (s *Server) idleCaller(now time.Time, from netip.AddrPort, name string) (*state.User, *wire.Reply) {
	if r := invalidName(name); r != nil {
		return nil, r
	}
	if w := s.waiting(now); w != "" {
		return nil, fail("%s", w)
	}
	return s.caller(from, name)
}

// invalidName refuses a request naming a user no register could make,
// saying so before anything else: a name that cannot be registered makes
// every other reason beside the point.
func invalidName(names ...string) *wire.Reply {
	for _, name := range names {
		if !ValidName(name) {
			return fail("invalid user name %q: ASCII letters only (A-Z, a-z), 1 to %d", name, MaxNameLen)
		}
	}
	return nil
}

// caller checks that name is registered and that the request came from its
// address.
func (s *Server) caller(from netip.AddrPort, name string) (*state.User, *wire.Reply) {
	u := s.users[name]
	if u == nil {
		if r := invalidName(name); r != nil {
			return nil, r
		}
		return nil, fail("%s is not registered", name)
	}
	if u.Addr != from {
		return nil, fail("a request for %s must come from its registered address %s, not %s", name, u.Addr, from)
	}
	return u, nil
}

func (s *Server) register(now time.Time, from netip.AddrPort, m wire.Register, bySecret bool) (*wire.Reply, bool) {
	if u := s.users[m.Name]; u != nil && u.Addr == m.Addr && from == m.Addr {
		return s.rejoin(now, u, m, bySecret)
	}
	if w := s.waiting(now); w != "" {
		return fail("%s", w), false
	}
	if r := invalidName(m.Name); r != nil {
		return r, false
	}
	switch {
	case NotUnicast(m.Addr.Addr()) != "":
		return fail("invalid address %s: %s; need a unicast IPv4 address", m.Addr, NotUnicast(m.Addr.Addr())), false
	case m.Addr.Port() == 0:
		return fail("invalid address %s: need a port 1-65535", m.Addr), false
	case m.Addr != from && s.byAddr[from] == m.Name:
		first := ""
		switch s.users[m.Name].State {
		case state.Leader:
			first = fmt.Sprintf("leave the DHT (leave-dht %s, or teardown-dht %s), then ", m.Name, m.Name)
		case state.InDHT:
			first = fmt.Sprintf("leave the DHT (leave-dht %s), then ", m.Name)
		}
		return fail("%s is registered at %s, where this register came from: a user keeps the address it registered (to move it, %sderegister %s, which ends its peer, and start a peer for %s at %s)", m.Name, from, first, m.Name, m.Name, m.Addr), false
	case m.Addr != from && s.byAddr[from] != "":
		return fail("register %s must be sent from %s, the address it registers; it came from %s, where %s is registered (a peer registers one user: start another peer for %s)", m.Name, m.Addr, from, s.byAddr[from], m.Name), false
	case m.Addr != from:
		return fail("register %s must be sent from %s, the address it registers (it came from %s)", m.Name, m.Addr, from), false
	case s.users[m.Name] != nil:
		return fail("%s is already registered, at another address (choose another name)", m.Name), false
	case s.byAddr[m.Addr] != "":
		return fail("%s is already registered by %s (a peer registers one user: give this one another port)", m.Addr, s.byAddr[m.Addr]), false
	case len(s.users) >= MaxUsers:
		return fail("the registry is full (%d users)", MaxUsers), false
	}
	u := &state.User{Name: m.Name, Addr: m.Addr, State: state.Free, Secret: newKey(s.cfg.Keys)}
	s.users[m.Name] = u
	s.byAddr[m.Addr] = m.Name
	return &wire.Reply{OK: true, Key: u.Secret}, true
}

func (s *Server) setup(now time.Time, from netip.AddrPort, m wire.SetupDHT) (*wire.Reply, bool) {
	leader, r := s.idleCaller(now, from, m.Name)
	if r != nil {
		return r, false
	}
	n := int(m.N)
	switch {
	case n < 2 || n > MaxRing:
		return fail("%s", badRingSize(strconv.Itoa(n))), false
	case s.dht.Phase != state.PhaseNone:
		return fail("a DHT already exists (leader %s); only one DHT at a time", s.dht.Leader), false
	case len(s.users) < n:
		if len(s.users) == 1 {
			return fail("only 1 user is registered, %d needed", n), false
		}
		return fail("only %d users are registered, %d needed", len(s.users), n), false
	}
	if r := s.offline(now, leader.Name); r != nil {
		return r, false
	}
	var free []string
	for name, u := range s.users {
		if name != leader.Name && u.State == state.Free && s.online(now, name) {
			free = append(free, name)
		}
	}
	if len(free) < n-1 {
		return fail("only %d of the %d registered users are live (not silent for --dead-after %s), %d needed",
			len(free)+1, len(s.users), s.cfg.DeadAfter, n), false
	}
	slices.Sort(free) // map order must not leak into a seeded choice
	s.cfg.Rand.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
	// Users heard from since this server started go first: one not heard
	// yet is online only by the grace a start gives every user, and may be
	// gone (a new user's review: a setup just after a restart picked a
	// peer stopped before it, and was rolled back at its --dead-after).
	slices.SortStableFunc(free, func(a, b string) int { return cmp.Compare(s.unheard(a), s.unheard(b)) })
	ring := append([]string{leader.Name}, free[:n-1]...)
	leader.State = state.Leader
	members := make([]wire.Member, n)
	for i, name := range ring {
		u := s.users[name]
		if i > 0 {
			u.State = state.InDHT
		}
		members[i] = wire.Member{Name: u.Name, Addr: u.Addr}
	}
	clear(s.healedOut) // a new ring: no user was healed out of it
	s.dht = state.DHT{Phase: state.PhaseBuilding, Leader: leader.Name, Members: ring, Since: now.UnixNano(), Epoch: s.newEpoch()}
	s.dht.KeyEpoch, s.dht.RingKey = s.dht.Epoch, newKey(s.cfg.Keys) // a new ring key: no earlier ring's messages are taken
	s.note = ""
	r = ok(members...)
	r.Epoch, r.KeyEpoch = s.dht.Epoch, s.dht.KeyEpoch // the leader hands them to every member
	r.Tickets = s.ringTickets(0, wire.MaxMessage-wire.EncodedLen(*r))
	return r, true
}

// ringTickets are the tickets of the members from index from on, as many as
// fit in room bytes.
func (s *Server) ringTickets(from, room int) []wire.Tag {
	var ts []wire.Tag
	for i := from; i < len(s.dht.Members) && room >= wire.TagLen; i++ {
		ts = append(ts, ticket(s.users[s.dht.Members[i]].Secret, s.dht.KeyEpoch, s.dht.RingKey))
		room -= wire.TagLen
	}
	return ts
}

// tickets answers the leader of a ring being set up that asks for the
// tickets the setup-dht reply had no room for.
func (s *Server) tickets(from netip.AddrPort, m wire.Tickets) *wire.Reply {
	u, r := s.caller(from, m.Name)
	switch {
	case r != nil:
		return r
	case s.dht.Phase != state.PhaseBuilding:
		return fail("no DHT is being set up")
	case u.Name != s.dht.Leader:
		return fail("%s is not the leader of the DHT being set up", u.Name)
	case int(m.From) >= len(s.dht.Members):
		return fail("the ring has %d members; no ticket from index %d", len(s.dht.Members), m.From)
	}
	r = &wire.Reply{OK: true, Epoch: s.dht.Epoch, KeyEpoch: s.dht.KeyEpoch}
	r.Tickets = s.ringTickets(int(m.From), wire.MaxMessage-wire.EncodedLen(*r))
	return r
}

// badRingSize is the one reason given for a setup-dht's N that is not a
// ring size, by the peer (not a number) and the server (out of range).
func badRingSize(got string) string {
	return fmt.Sprintf("ring size N must be a whole number from 2 to %d, got %s", MaxRing, got)
}

func (s *Server) complete(now time.Time, from netip.AddrPort, m wire.DHTComplete) (*wire.Reply, bool) {
	if _, r := s.awaited(now, from, m.Name, state.PhaseBuilding, "no DHT is being set up", "is not the leader of the DHT being set up"); r != nil {
		return r, false
	}
	s.dht.Phase, s.dht.Since = state.PhaseReady, 0
	s.places = nil
	return ok(), true
}

// awaited checks the command that ends a wait: the server must be in
// phase, and name must be the user it waits for (the leader, the leaver or
// the joiner) asking from its address. idle is the answer when nothing of the kind is in
// progress, notYou the one for another user.
func (s *Server) awaited(now time.Time, from netip.AddrPort, name string, phase state.Phase, idle, notYou string) (*state.User, *wire.Reply) {
	if r := invalidName(name); r != nil {
		return nil, r
	}
	if s.dht.Phase != phase {
		if w := s.waiting(now); w != "" {
			return nil, fail("%s", w)
		}
		if why := s.ended[name]; why != "" {
			return nil, fail("%s", why)
		}
		return nil, fail("%s%s", idle, s.noteSuffix())
	}
	u, r := s.caller(from, name)
	if r != nil {
		return nil, r
	}
	want := s.dht.Leader
	switch phase {
	case state.PhaseLeaving:
		want = s.dht.Leaver
	case state.PhaseJoining:
		want = s.dht.Joiner
	}
	if u.Name != want {
		return nil, fail("%s %s; %s", u.Name, notYou, s.waiting(now))
	}
	return u, nil
}

func (s *Server) query(now time.Time, from netip.AddrPort, m wire.QueryDHT) *wire.Reply {
	u, r := s.idleCaller(now, from, m.Name)
	if r != nil {
		return r
	}
	switch {
	case s.dht.Phase == state.PhaseNone:
		return fail("no DHT exists%s", s.noteSuffix())
	case u.State != state.Free:
		return fail("%s maintains the DHT (%s); only Free users may query", u.Name, u.State)
	}
	pick := s.users[s.dht.Members[s.cfg.Rand.IntN(len(s.dht.Members))]]
	r = ok(wire.Member{Name: pick.Name, Addr: pick.Addr})
	r.KeyEpoch, r.Key = s.dht.KeyEpoch, queryToken(s.dht.RingKey, s.dht.KeyEpoch, u.Addr)
	return r
}

func (s *Server) leave(now time.Time, from netip.AddrPort, m wire.LeaveDHT) (*wire.Reply, bool) {
	u, r := s.idleCaller(now, from, m.Name)
	if r != nil {
		return r, false
	}
	switch {
	case s.dht.Phase == state.PhaseNone:
		return fail("no DHT exists%s", s.noteSuffix()), false
	case u.State == state.Free && s.healedOut[u.Name] != "":
		return fail("%s does not maintain the DHT: %s", u.Name, s.healedOut[u.Name]), false
	case u.State == state.Free:
		return fail("%s does not maintain the DHT", u.Name), false
	case len(s.dht.Members) < 2:
		return fail("%s is the only node of the DHT; use teardown-dht", u.Name), false
	}
	// The renumbered ring's epoch is taken now, so that no heal of this
	// ring can take the same one.
	delete(s.ended, u.Name)
	s.dht.Phase, s.dht.Leaver, s.dht.Since = state.PhaseLeaving, u.Name, now.UnixNano()
	s.dht.Epoch = s.newEpoch()
	r = ok()
	r.Epoch = s.dht.Epoch
	return r, true
}

func (s *Server) rebuilt(now time.Time, from netip.AddrPort, m wire.DHTRebuilt) (*wire.Reply, bool) {
	if r := invalidName(m.Name, m.NewLeader); r != nil {
		return r, false
	}
	if s.dht.Phase == state.PhaseJoining {
		return s.joined(now, from, m)
	}
	u, r := s.awaited(now, from, m.Name, state.PhaseLeaving, "no leave-dht or join-dht is in progress", "did not ask to leave")
	if r != nil {
		return r, false
	}
	i := slices.Index(s.dht.Members, m.NewLeader)
	if i < 0 || m.NewLeader == u.Name {
		return fail("new leader %q is not a remaining member of the DHT", m.NewLeader), false
	}
	if r := s.unvouched(now, u.Name, m.NewLeader, m.NewLeader, m.Proof); r != nil {
		return r, false
	}
	// Keep ring order, starting at the new leader.
	var ring []string
	for k := range s.dht.Members {
		name := s.dht.Members[(i+k)%len(s.dht.Members)]
		if name != u.Name {
			ring = append(ring, name)
		}
	}
	u.State = state.Free
	s.rebuiltRing(m.NewLeader, ring)
	return ok(), true
}

// join lets a Free user into the ready DHT: the server waits for its
// dht-rebuilt, and answers with the ring, leader first, so that the joiner
// knows whom to ask (the leader takes it in, docs/DESIGN.md §7).
func (s *Server) join(now time.Time, from netip.AddrPort, m wire.JoinDHT) (*wire.Reply, bool) {
	u, r := s.idleCaller(now, from, m.Name)
	if r != nil {
		return r, false
	}
	switch {
	case s.dht.Phase == state.PhaseNone:
		return fail("no DHT exists%s", s.noteSuffix()), false
	case u.State != state.Free:
		return fail("%s already maintains the DHT (%s); only a Free user may join", u.Name, u.State), false
	case len(s.dht.Members) >= MaxRing:
		return fail("the DHT already has %d members, the most a ring may have", len(s.dht.Members)), false
	}
	if r := s.offline(now, u.Name); r != nil {
		return r, false
	}
	members := make([]wire.Member, len(s.dht.Members))
	for i, name := range s.dht.Members {
		members[i] = wire.Member{Name: name, Addr: s.users[name].Addr}
	}
	// The larger ring's epoch is taken now, as a leave's.
	delete(s.ended, u.Name)
	s.dht.Phase, s.dht.Joiner, s.dht.Since = state.PhaseJoining, u.Name, now.UnixNano()
	s.dht.Epoch = s.newEpoch()
	r = ok(members...)
	r.Epoch, r.KeyEpoch = s.dht.Epoch, s.dht.KeyEpoch
	r.Key = wire.Key(ticket(u.Secret, s.dht.KeyEpoch, s.dht.RingKey))
	return r, true
}

// joined ends a join: the joiner is a member of the ring, placed where the
// join put it, last, just before the leader (docs/DESIGN.md §7); NEWLEADER
// may be any member of the larger ring, and the list starts at it.
func (s *Server) joined(now time.Time, from netip.AddrPort, m wire.DHTRebuilt) (*wire.Reply, bool) {
	u, r := s.awaited(now, from, m.Name, state.PhaseJoining, "", "did not ask to join")
	if r != nil {
		return r, false
	}
	grown := append(slices.Clone(s.dht.Members), u.Name)
	i := slices.Index(grown, m.NewLeader)
	if i < 0 {
		return fail("new leader %q is not a member of the DHT %s joined", m.NewLeader, u.Name), false
	}
	// The leader the join-dht reply named took the joiner in, whoever
	// leads now.
	if r := s.unvouched(now, u.Name, s.dht.Leader, m.NewLeader, m.Proof); r != nil {
		return r, false
	}
	ring := make([]string, 0, len(grown))
	ring = append(append(ring, grown[i:]...), grown[:i]...)
	u.State = state.InDHT
	delete(s.healedOut, u.Name)
	s.rebuiltRing(m.NewLeader, ring)
	return ok(), true
}

// unvouched refuses a dht-rebuilt whose proof is not the rebuilder's (by:
// the new leader of a leave, the leader that took a joiner in) for user,
// newLeader and this epoch (rebuiltProof): the rebuild did not happen, or
// not for this leave or join, or not with that leader. A user's word alone
// made a Free user a member of a ring that never took it in, renumbered a
// ring at the server only, or named a leader the ring does not have.
func (s *Server) unvouched(now time.Time, user, by, newLeader string, proof wire.Tag) *wire.Reply {
	if proof != rebuiltProof(s.users[by].Secret, user, newLeader, s.dht.Epoch) {
		return fail("%s has not vouched for the rebuild of epoch %d led by %s (the peer sends dht-rebuilt itself, with that proof, once the rebuild is done); %s", by, s.dht.Epoch, newLeader, s.waiting(now))
	}
	return nil
}

// rebuiltRing makes ring (newLeader first) the ready DHT after a leave or
// a join: the old leader, if it stays, is InDHT, newLeader the Leader; the
// epoch and the ring key stay.
func (s *Server) rebuiltRing(newLeader string, ring []string) {
	if old := s.users[s.dht.Leader]; old != nil && old.Name != newLeader && slices.Contains(ring, old.Name) {
		old.State = state.InDHT
	}
	s.users[newLeader].State = state.Leader
	s.places = nil
	s.dht = state.DHT{Phase: state.PhaseReady, Leader: newLeader, Members: ring, Epoch: s.dht.Epoch,
		KeyEpoch: s.dht.KeyEpoch, RingKey: s.dht.RingKey}
}

func (s *Server) deregister(now time.Time, from netip.AddrPort, m wire.Deregister) (*wire.Reply, bool) {
	u, r := s.idleCaller(now, from, m.Name)
	if r != nil {
		return r, false
	}
	if u.State != state.Free {
		if u.State == state.Leader && len(s.dht.Members) == 1 {
			return fail("%s maintains the DHT (%s), its only node; tear it down first (teardown-dht %s)", u.Name, u.State, u.Name), false
		}
		return fail("%s maintains the DHT (%s); leave it first (leave-dht %s)", u.Name, u.State, u.Name), false
	}
	delete(s.users, u.Name)
	delete(s.byAddr, u.Addr)
	delete(s.lastSeen, u.Name)
	delete(s.ended, u.Name)
	delete(s.healedOut, u.Name)
	delete(s.places, u.Name)
	delete(s.offPace, u.Name)
	s.forgetName(now, u.Name)
	return ok(), true
}

func (s *Server) teardown(now time.Time, from netip.AddrPort, m wire.TeardownDHT) (*wire.Reply, bool) {
	u, r := s.idleCaller(now, from, m.Name)
	if r != nil {
		return r, false
	}
	switch {
	case s.dht.Phase == state.PhaseNone:
		return fail("no DHT exists%s", s.noteSuffix()), false
	case u.Name != s.dht.Leader:
		return fail("%s is not the leader of the DHT (%s is)", u.Name, s.dht.Leader), false
	}
	s.dht.Phase, s.dht.Since = state.PhaseTearing, now.UnixNano()
	// The epoch, as a setup's, a leave's and a join's reply carries theirs:
	// a peer that gave the request up unanswered names it by its sequence
	// number, and quit finds the teardown by this reply in the cache.
	r = ok()
	r.Epoch = s.dht.Epoch
	return r, true
}

func (s *Server) teardownComplete(now time.Time, from netip.AddrPort, m wire.TeardownComplete) (*wire.Reply, bool) {
	if _, r := s.awaited(now, from, m.Name, state.PhaseTearing, "no teardown-dht is in progress", "is not the leader of the DHT"); r != nil {
		return r, false
	}
	s.dissolve()
	return ok(), true
}

// dissolve frees every member and forgets the DHT, but for its epoch:
// epochs never repeat, so that a peer back from a crash never mistakes a
// new ring for the one it remembers.
func (s *Server) dissolve() {
	for _, name := range s.dht.Members {
		if u := s.users[name]; u != nil {
			u.State = state.Free
		}
	}
	s.dht = state.DHT{Epoch: s.dht.Epoch}
}

func (s *Server) noteSuffix() string {
	if s.note == "" {
		return ""
	}
	return " (" + s.note + ")"
}

// NextDeadline is when Tick next has work: the end of the current wait,
// the next copy of a heal, the time a member would turn offline, or the
// write of LastSeen changes.
func (s *Server) NextDeadline() (time.Time, bool) {
	t, ok := s.late.deadline(s.judgementDue())
	earlier := func(d time.Time) {
		if !ok || d.Before(t) {
			t, ok = d, true
		}
	}
	if s.dht.Phase == state.PhaseHealing && !s.healAcked {
		earlier(s.healNext)
	}
	if !s.repace.IsZero() {
		earlier(s.repace)
	}
	if !s.seenDirty.IsZero() {
		earlier(s.seenDirty.Add(seenFlush))
	}
	return t, ok
}

// judgementDue is when Tick next has to judge on what it has heard: the
// first member to fall silent for DeadAfter, the waiting operation's
// timeout, or a new round of a heal every member gave up (healRetry).
func (s *Server) judgementDue() (time.Time, bool) {
	t, ok := s.waitDeadline()
	if d, found := s.nextOffline(); found && (!ok || d.Before(t)) {
		t, ok = d, true
	}
	if d := s.healRetry; s.dht.Phase == state.PhaseHealing && !d.IsZero() && (!ok || d.Before(t)) {
		t, ok = d, true
	}
	return t, ok
}

func (s *Server) waitDeadline() (time.Time, bool) {
	if !s.dht.Phase.Waiting() {
		return time.Time{}, false
	}
	// A wait its file held when the server started counts from the start:
	// the time the server was down is no time its peers had to reach it.
	since := time.Unix(0, s.dht.Since)
	if since.Before(s.startedAt) {
		since = s.startedAt
	}
	return since.Add(s.cfg.OpTimeout), true
}

// Tick rolls back an operation whose initiator has not finished it within
// OpTimeout. Every rollback ends in the same consistent state: no DHT, every
// former member Free (peers accept a new set-id whatever they held).
func (s *Server) Tick(now time.Time) []Output {
	s.clock(now)
	if !s.repace.IsZero() && !now.Before(s.repace) {
		if out := s.paceUnheard(now, false); len(out) > 0 {
			return out
		}
	}
	due, ok := s.judgementDue()
	judge, late := s.late.judging(now, due, ok)
	if from, d := s.late.takeMute(); d > 0 {
		s.spareMute(from, d)
	}
	switch {
	case judge:
		if out := s.checkLive(now); out != nil {
			s.judged = now
			return out
		}
		if at, ok := s.waitDeadline(); ok && !now.Before(at) {
			s.judged = now
			return s.rollback(now)
		}
		if s.dht.Phase == state.PhaseHealing && !s.healRetry.IsZero() && !now.Before(s.healRetry) {
			// A judgement too: none went offline meanwhile.
			return s.retryHeal(now)
		}
	case late > 0:
		return []Output{lateEvent("it judges who went silent and what waited too long", late)}
	}
	if s.dht.Phase == state.PhaseHealing && !s.healAcked && !now.Before(s.healNext) {
		return s.sendHeal(now)
	}
	if !s.seenDirty.IsZero() && !now.Before(s.seenDirty.Add(seenFlush)) {
		return []Output{s.persist(nil)}
	}
	return nil
}

// spareMute: this server did not run for d from `from`, and nothing came on
// its socket meanwhile (lateGuard.takeMute): no one's silence counts for
// that time. Who was last heard before it is taken as heard d later.
func (s *Server) spareMute(from time.Time, d time.Duration) {
	for name, t := range s.lastSeen {
		if !t.After(from) {
			s.lastSeen[name] = t.Add(d)
		}
	}
	if !s.started.After(from) {
		s.started = s.started.Add(d)
	}
}

// rollback ends the wait that has lasted OpTimeout. A join's or a leave's
// heals the ring round the joiner or the leaver, as when it goes offline
// or gives its operation up, if another member is online: a Free user's
// join, or a member's leave, stalled, ends nobody's place but its own.
func (s *Server) rollback(now time.Time) []Output {
	d := s.dht
	op, who := "join-dht", d.Joiner
	if d.Phase == state.PhaseLeaving {
		op, who = "leave-dht", d.Leaver
	}
	if (d.Phase == state.PhaseJoining || d.Phase == state.PhaseLeaving) &&
		slices.ContainsFunc(d.Members, func(m string) bool { return m != d.Leaver && s.online(now, m) }) {
		why := fmt.Sprintf("no dht-rebuilt came within --op-timeout %s", s.cfg.OpTimeout)
		s.endedFor(who, op, why)
		out := s.healAroundFor(now, who, fmt.Sprintf("%s by %s: %s", op, who, why))
		return slices.Insert(out, 1, Output(s.persist(nil))) // after the heal's event, before its sends
	}
	var what string
	switch s.dht.Phase {
	case state.PhaseBuilding:
		what = fmt.Sprintf("setup-dht led by %s got no dht-complete", s.dht.Leader)
	case state.PhaseLeaving:
		what = fmt.Sprintf("leave-dht by %s got no dht-rebuilt", s.dht.Leaver)
	case state.PhaseTearing:
		what = fmt.Sprintf("teardown-dht led by %s got no teardown-complete", s.dht.Leader)
	case state.PhaseJoining:
		what = fmt.Sprintf("join-dht by %s got no dht-rebuilt", s.dht.Joiner)
	case state.PhaseHealing:
		what = fmt.Sprintf("the heal led by %s got no healed", s.dht.Leader)
	}
	s.note = fmt.Sprintf("%s within --op-timeout %s and was rolled back: the DHT was dissolved and its members are Free", what, s.cfg.OpTimeout)
	s.dissolve()
	return []Output{
		event("op-timeout rollback", slog.String("what", s.note)),
		s.persist(nil),
	}
}
