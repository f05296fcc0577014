package app

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"dht/app/state"
	"dht/wire"
)

// Members that die (docs/DESIGN.md §6, Healing). The server's Tick looks
// at the members of the DHT, and at the user it waits for: one silent for
// more than DeadAfter is offline, and the DHT does not wait for it.
//
//   - While the DHT is set up or torn down, the operation is ended: the DHT
//     is dissolved and its members are Free (a setup has nothing to heal; a
//     teardown was going to free them anyway).
//   - Otherwise (ready, leaving, joining, healing) the ring heals: the live
//     members, in ring order from the leader (the first live one if the
//     leader is offline), become the ring; a leaver and a joiner are Free;
//     the server sends heal to the new leader, which re-runs the setup's
//     set-id and store round over them and reports healed. A heal that
//     loses another member heals again with the rest; one that is not done
//     within OpTimeout is rolled back (dissolved). With no live member
//     left, the DHT is dissolved.

// healRTO is how long the server first waits for the new leader to
// acknowledge a heal before it sends it again; it doubles up to
// healMaxRTO.
const (
	healRTO    = 200 * time.Millisecond
	healMaxRTO = 2 * time.Second
)

// healID is the message id of the heal of epoch: the same in every copy,
// so that the leader acts on one and acknowledges each.
func healID(epoch uint64) uint32 {
	if id := uint32(epoch); id != 0 {
		return id
	}
	return 1
}

// checkLive ends or heals the DHT when a user it needs is offline; nil
// when none is.
func (s *Server) checkLive(now time.Time) []Output {
	d := s.dht
	if d.Phase == state.PhaseNone {
		return nil
	}
	var gone []string
	for _, m := range d.Members {
		if !s.online(now, m) {
			gone = append(gone, m)
		}
	}
	if d.Phase == state.PhaseJoining && !s.online(now, d.Joiner) {
		gone = append(gone, d.Joiner)
	}
	if len(gone) == 0 {
		return nil
	}
	why := fmt.Sprintf("%s offline (silent for more than --dead-after %s)", andList(gone), s.cfg.DeadAfter)
	switch d.Phase {
	case state.PhaseBuilding, state.PhaseTearing:
		what := fmt.Sprintf("setup-dht led by %s was rolled back", d.Leader)
		if d.Phase == state.PhaseTearing {
			what = fmt.Sprintf("teardown-dht led by %s was ended", d.Leader)
		}
		s.note = fmt.Sprintf("%s: %s; the DHT was dissolved and its members are Free", what, why)
		s.dissolve()
		return []Output{event("offline member: DHT dissolved", slog.String("what", s.note)), s.persist(nil)}
	}
	var survivors []string
	for _, m := range d.Members {
		if !slices.Contains(gone, m) && m != d.Leaver {
			survivors = append(survivors, m)
		}
	}
	var ended, op, who string // the leave or the join the heal ends
	switch d.Phase {
	case state.PhaseLeaving:
		op, who = "leave-dht", d.Leaver
	case state.PhaseJoining:
		op, who = "join-dht", d.Joiner
	}
	if who != "" {
		ended = fmt.Sprintf("; %s by %s was ended, and %s is Free", op, who, who)
	}
	if len(survivors) == 0 {
		s.note = fmt.Sprintf("%s%s: no member of the DHT is live, so it was dissolved", why, ended)
		s.dissolve()
		return []Output{event("offline members: DHT dissolved", slog.String("what", s.note)), s.persist(nil)}
	}
	if who != "" {
		s.endedFor(who, op, why)
	}
	return s.heal(now, survivors, gone, why+ended)
}

// endedFor keeps why the op (leave-dht or join-dht) that name asked for
// ended without its dht-rebuilt, for the dht-rebuilt that may still come
// from its peer (a peer stopped, then continued, finishes its part).
func (s *Server) endedFor(name, op, why string) {
	if s.ended == nil {
		s.ended = make(map[string]string)
	}
	s.ended[name] = fmt.Sprintf("the %s of %s was ended before its dht-rebuilt came: %s; the ring was healed without %s, who is Free", op, name, why, name)
}

// quit ends at once the operation u's peer started and gave up, its
// alive says (op: the type of the request that started it; epoch: its
// epoch), when it is the one the server waits for u to finish: a setup or
// a teardown is dissolved, as it would be at --op-timeout or once a member
// is offline; a leave or a join heals the ring round the leaver or the
// joiner, who is Free, as when a member restarts during one. Otherwise
// nil: the pair names one operation (a setup, leave and join each take a
// new epoch; a teardown keeps its ring's), and the alive that carries it
// is signed and never taken twice (alive), so a late or replayed one ends
// nothing else.
func (s *Server) quit(now time.Time, u *state.User, op wire.Type, epoch uint64) []Output {
	d := s.dht
	if epoch >= seqFloor {
		// No epoch but a request's sequence number (above any epoch): the
		// peer gave the request up with no answer (the server, or its
		// disk, stalled longer than the peer's give-up time). The
		// operation it started, if the server took it, is the one whose
		// answer the cache holds for that number.
		c, ok := s.cache[u.Addr]
		if !ok || c.seq != epoch || !c.reply.OK {
			return nil
		}
		epoch = c.reply.Epoch
	}
	if epoch == 0 || epoch != d.Epoch {
		return nil
	}
	var what string
	switch {
	case op == wire.TypeSetupDHT && d.Phase == state.PhaseBuilding && d.Leader == u.Name:
		what = fmt.Sprintf("setup-dht led by %s was rolled back", u.Name)
	case op == wire.TypeTeardownDHT && d.Phase == state.PhaseTearing && d.Leader == u.Name:
		what = fmt.Sprintf("teardown-dht led by %s was ended", u.Name)
	case op == wire.TypeHeal && d.Phase == state.PhaseHealing && d.Leader == u.Name:
		return s.quitHeal(now, u)
	case op == wire.TypeLeaveDHT && d.Phase == state.PhaseLeaving && d.Leaver == u.Name,
		op == wire.TypeJoinDHT && d.Phase == state.PhaseJoining && d.Joiner == u.Name:
		if slices.ContainsFunc(d.Members, func(m string) bool { return m != d.Leaver && s.online(now, m) }) {
			out := s.healAroundFor(now, u.Name, u.Name+"'s peer gave up")
			return slices.Insert(out, 1, Output(s.persist(nil))) // after the heal's event, before its sends
		}
		what = fmt.Sprintf("%s by %s was ended", op, u.Name)
	default:
		return nil
	}
	s.note = fmt.Sprintf("%s: its peer gave it up; the DHT was dissolved and its members are Free", what)
	s.dissolve()
	return []Output{event("operation given up: DHT dissolved", slog.String("what", s.note)), s.persist(nil)}
}

// quitHeal: u, the leader of the heal in progress, gave it up (a survivor
// stopped acknowledging its set-id or its stores, or its dataset would
// not load). The ring heals again at once, the same members led by the
// next one in ring order that has not given up a heal of this ring, one
// heard from lately first; waiting for --op-timeout would end in a
// dissolve, every member live. A survivor that stopped is healed out once
// it is offline. When every member has given a heal up (a member dead
// since it gave up, not yet offline, makes every later leader give up on
// it), the server waits: a member offline heals the ring without it, and
// after DeadAfter and two alive periods, by when a member silent meanwhile
// is offline or back, a new round begins (retryHeal, a judgement Tick
// makes with the others). The heals of one such episode keep the first
// one's start, so --op-timeout bounds them all; a heal without a member
// gone offline starts a new one.
func (s *Server) quitHeal(now time.Time, u *state.User) []Output {
	quitters := s.healQuitters
	if quitters[u.Name] {
		return nil // its alives name the heal it gave up for a while: the first was acted on
	}
	if quitters == nil {
		quitters = make(map[string]bool)
	}
	quitters[u.Name] = true
	next := s.nextHealLeader(now, u.Name, quitters)
	if next == "" {
		// Past DeadAfter and two alive periods, a member silent since
		// then has been judged offline (silent for more than DeadAfter).
		s.healQuitters, s.healLastQuit, s.healRetry = quitters, u.Name, now.Add(s.cfg.DeadAfter+2*s.Pace())
		return []Output{event("every member gave up a heal: the ring heals again without a member that goes offline, or at the time given", slog.String("last", u.Name), slog.Time("again", s.healRetry))}
	}
	out := s.healAgainLedBy(now, next, fmt.Sprintf("%s gave up the heal it led", u.Name))
	s.healQuitters = quitters // healState forgets them: this heal goes on from the last
	return out
}

// nextHealLeader is the member after `after`, in ring order, that is not
// in quitters, one heard from within two alive periods first; "" if none.
func (s *Server) nextHealLeader(now time.Time, after string, quitters map[string]bool) string {
	d := s.dht
	k := slices.Index(d.Members, after)
	next := ""
	for i := 1; i <= len(d.Members); i++ {
		m := d.Members[(k+i)%len(d.Members)]
		if quitters[m] {
			continue
		}
		if next == "" {
			next = m
		}
		if silent, _ := s.Silent(now, m); silent <= 2*s.Pace() {
			return m
		}
	}
	return next
}

// healAgainLedBy heals the ring of the heal in progress again, the same
// members in ring order led by leader, keeping the first heal's start.
func (s *Server) healAgainLedBy(now time.Time, leader, why string) []Output {
	d := s.dht
	at := slices.Index(d.Members, leader)
	survivors := append(slices.Clone(d.Members[at:]), d.Members[:at]...)
	return s.healSince(now, survivors, d.Removed, why, d.Since)
}

// retryHeal: every member gave up a heal of this ring DeadAfter ago, and
// none went offline since: the ones silent then are back. A new round,
// led by a member heard from lately.
func (s *Server) retryHeal(now time.Time) []Output {
	last := s.healLastQuit
	return s.healAgainLedBy(now, s.nextHealLeader(now, last, nil), fmt.Sprintf("every member gave up a heal of it, the last %s, and none went offline since", last))
}

// heal makes survivors (in ring order, the new leader first) the ring and
// asks their leader to rebuild it; removed are the users whose being
// offline started it.
func (s *Server) heal(now time.Time, survivors, removed []string, why string) []Output {
	return s.healSince(now, survivors, removed, why, now.UnixNano())
}

// healSince is heal, the wait counted from since (unix nanoseconds).
func (s *Server) healSince(now time.Time, survivors, removed []string, why string, since int64) []Output {
	s.healState(now, survivors, removed, why)
	s.dht.Since = since
	out := []Output{event("heal", slog.String("what", s.note), slog.Uint64("epoch", s.dht.Epoch)), s.persist(nil)}
	return append(out, s.sendHeal(now)...)
}

// healState makes the heal the DHT's state.
func (s *Server) healState(now time.Time, survivors, removed []string, why string) {
	for _, m := range s.dht.Members {
		s.users[m].State = state.Free
		if slices.Contains(removed, m) {
			if s.healedOut == nil {
				s.healedOut = make(map[string]string)
			}
			// Its own reason: a heal round a restarted member removes
			// the offline ones with it (a review).
			own := why
			if _, off := s.Silent(now, m); off {
				own = fmt.Sprintf("%s offline (silent for more than --dead-after %s)", m, s.cfg.DeadAfter)
			}
			s.healedOut[m] = fmt.Sprintf("the ring of epoch %d healed without %s: %s", s.dht.Epoch, m, own)
		}
	}
	for i, m := range survivors {
		delete(s.healedOut, m)
		s.users[m].State = state.InDHT
		if i == 0 {
			s.users[m].State = state.Leader
		}
	}
	// The ring key stays (docs/DESIGN.md §9): the survivors hold it, and
	// the heal's set-ids are signed with it.
	s.dht = state.DHT{Phase: state.PhaseHealing, Leader: survivors[0], Members: survivors, Since: now.UnixNano(),
		Epoch: s.newEpoch(), Removed: removed, KeyEpoch: s.dht.KeyEpoch, RingKey: s.dht.RingKey}
	s.note = fmt.Sprintf("%s: the ring heals to %d node(s) led by %s", why, len(survivors), survivors[0])
	s.healWhy = why
	s.healQuitters, s.healLastQuit, s.healRetry = nil, "", time.Time{}

	s.healAcked, s.healNext, s.healRTO = false, now, healRTO
}

// sendHeal sends the heal in progress to its leader, and schedules the
// next copy.
func (s *Server) sendHeal(now time.Time) []Output {
	members := make([]wire.Member, len(s.dht.Members))
	for i, name := range s.dht.Members {
		members[i] = wire.Member{Name: name, Addr: s.users[name].Addr}
	}
	var flags wire.Flags
	if s.healNext.Before(now) || s.healRTO > healRTO {
		flags = wire.FlagRetransmit
	}
	// The timer is not in the file: a server started during a heal (the
	// file's phase) has none, and starts it as healState does.
	s.healRTO = max(s.healRTO, healRTO)
	s.healNext = now.Add(s.healRTO)
	s.healRTO = min(2*s.healRTO, healMaxRTO)
	// Signed with the leader's secret: only the server names a heal's leader.
	heal := wire.Heal{Epoch: s.dht.Epoch, Members: members, KeyEpoch: s.dht.KeyEpoch}
	if !s.dht.RingKey.IsZero() {
		heal.Tickets = s.ringTickets(0, wire.MaxMessage-wire.EncodedLen(heal))
	}
	return []Output{Send{To: members[0].Addr, ID: healID(s.dht.Epoch), Flags: flags, Msg: heal,
		Sign: true, Seq: s.dht.Epoch, Key: s.users[s.dht.Leader].Secret}}
}

// healAck: the leader of the heal has it.
//
// With verify (Step), the ack must be signed with the leader's secret.
func (s *Server) healAck(now time.Time, from netip.AddrPort, h wire.Header, a wire.Ack, verify bool) []Output {
	if s.dht.Phase == state.PhaseHealing && from == s.users[s.dht.Leader].Addr &&
		(!verify || wire.Verify(s.users[s.dht.Leader].Secret, h)) {
		id := healID(s.dht.Epoch)
		if h.ID == id || slices.Contains(a.More, id) {
			if s.healAcked {
				// A copy (a network that duplicates; the ack of a copy
				// of the heal sent again): nothing amiss, traced as the
				// ack of the heal that ended is.
				ev := dropped("ack of the heal taken before", from, slog.Uint64("epoch", s.dht.Epoch))
				ev.Level = slog.LevelDebug
				return []Output{ev}
			}
			s.healAcked = true
			s.seen(now, from)
			return nil
		}
	}
	if l := s.healedLast; l.epoch != 0 && s.users[l.name] != nil && from == s.users[l.name].Addr &&
		(!verify || wire.Verify(s.users[l.name].Secret, h)) {
		if id := healID(l.epoch); h.ID == id || slices.Contains(a.More, id) {
			// The ack of the heal that ended, behind its healed (a ring
			// of one places itself and reports at once): nothing amiss.
			// Signed with the leader's secret: unchecked, anyone who
			// knew the leader's address and the epoch had a line of
			// trace for each ack forged from there (SPEC §7).
			// Traced as a drop (its receive at the debug level,
			// summarised): the leader's ack, captured and sent again
			// from its address, was a receive line a copy (SPEC §7).
			ev := dropped("ack of the heal that ended", from, slog.Uint64("epoch", l.epoch))
			ev.Level = slog.LevelDebug
			return []Output{ev}
		}
	}
	return []Output{dropped("ack matches no heal in progress", from, slog.Uint64("id", uint64(h.ID)))}
}

// healed: the leader reports the heal of an epoch done. The heal in
// progress ends; the one that ended the wait, reported again (its ack
// lost), is acknowledged again, even once the ring has moved on; one ended
// or replaced meanwhile is not.
//
// With verify (Step), it must be signed with the user's secret; it is
// acted on once (a copy, or a replay, only finds no heal in progress), so
// its sequence number is only noted. The ack is signed as it was.
func (s *Server) healed(now time.Time, from netip.AddrPort, h wire.Header, m wire.Healed, verify bool) []Output {
	u := s.users[m.Name]
	if u == nil || u.Addr != from || m.Epoch > s.dht.Epoch {
		return []Output{dropped("healed from no leader of a heal", from, slog.String("name", m.Name))}
	}
	if verify && !wire.Verify(u.Secret, h) {
		return []Output{dropped("healed not signed with the user's secret", from, slog.String("name", m.Name))}
	}
	u.Seq = max(u.Seq, h.Seq)
	ack := Send{To: from, ID: h.ID, Msg: wire.Ack{}, Sign: verify, Seq: h.Seq, Key: u.Secret}
	if l := &s.healedLast; m.Epoch == l.epoch && m.Name == l.name {
		// The heal that ended its wait, reported again: its ack was lost.
		// Acknowledged even once the ring has moved on (a leave, a join,
		// a teardown typed right after it, another heal): unacknowledged,
		// its leader would give up and say its heal failed. Like a
		// request answered from the cache, at most maxAgain times a
		// second, and traced as the drops are: a copy captured and sent
		// again and again costs neither an ack nor a line each (SPEC §7).
		return s.healedAgain(now, from, m, ack)
	}
	if m.Epoch != s.dht.Epoch || m.Name != s.dht.Leader || s.dht.Phase != state.PhaseHealing && s.dht.Phase != state.PhaseReady {
		// The heal was ended (the DHT dissolved, or healed again) while
		// its leader worked at it: no ack, so that it does not report a
		// ring the server no longer has; its next pace tells it (or a
		// new heal's set-id), and its heal fails saying why.
		return []Output{dropped("healed for a heal that was ended or replaced", from, slog.Uint64("epoch", m.Epoch))}
	}
	if s.dht.Phase != state.PhaseHealing {
		// The heal that ended this ring's wait, its ack lost, at a server
		// restarted since (healedLast is in memory).
		return s.healedAgain(now, from, m, ack)
	}
	// A sign of life only when acted on: a copy, or a replay, is not (a
	// red team kept a dead heal leader in the ring by replaying its
	// healed); the leader's alives are.
	s.seen(now, from)
	s.dht.Phase, s.dht.Since, s.dht.Removed = state.PhaseReady, 0, nil
	s.places = nil
	s.note = ""
	s.healedLast.name, s.healedLast.epoch = m.Name, m.Epoch
	return []Output{s.persist(nil), ack}
}

// healedAgain acknowledges again the healed of the heal that ended: at
// most maxAgain times a second, and traced as the drops are, its ack as a
// quiet send.
func (s *Server) healedAgain(now time.Time, from netip.AddrPort, m wire.Healed, ack Send) []Output {
	l := &s.healedLast
	if sec := now.Unix(); l.second != sec {
		l.second, l.answers = sec, 0
	}
	if l.answers++; l.answers > maxAgain {
		return []Output{dropped(fmt.Sprintf("healed again for the heal that ended, acknowledged %d times this second already", maxAgain), from, slog.Uint64("epoch", m.Epoch))}
	}
	// At the info level, as a request answered from the cache: the first
	// of a window is the only line that says a healed came (its receive
	// is at the debug level).
	ev := dropped("healed again for the heal that ended: acknowledged again", from, slog.Uint64("epoch", m.Epoch))
	ev.Level = slog.LevelInfo
	ack.Quiet = true
	return []Output{ev, ack}
}

// nextOffline is when the first user the DHT needs turns offline, if no
// sign of life comes from it first.
func (s *Server) nextOffline() (time.Time, bool) {
	if s.started.IsZero() {
		return time.Time{}, false // every user counts as seen at the first Step or Tick
	}
	var t time.Time
	found := false
	check := func(name string) {
		last, ok := s.lastSeen[name]
		if !ok {
			last = s.started
		}
		at := last.Add(s.cfg.DeadAfter + 1)
		if !found || at.Before(t) {
			t, found = at, true
		}
	}
	for _, m := range s.dht.Members {
		check(m)
	}
	if s.dht.Phase == state.PhaseJoining {
		check(s.dht.Joiner)
	}
	return t, found
}

// andList is "a", "a and b", "a, b and c".
func andList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// rejoin is a register of a registered user, from its registered address
// (SPEC §3): its peer restarted. It is the one place that decides on a
// rejoin; the authentication of the rejoin (the user's secret, or a
// return-routability check when the peer holds none) belongs here.
//
// The user keeps its state; the reply says which, and for a ring member
// the DHT's epoch; when the rejoin makes the ring heal, its reason says
// why (and what became of a setup, leave or join in progress): the one
// SUCCESS that carries a reason. A member whose file holds no place in the ring the
// server counts it in (m.Epoch is another epoch) cannot serve that ring,
// and one back while a store round may be going may have lost records it
// was forwarding: the ring heals with it, so that every record is placed
// again (not while the DHT is torn down: it is dissolved anyway).
//
// Signed with the user's secret, the secret stays; without it (a new,
// empty file: the register came with a challenge's cookie), the user gets
// a new secret, which the reply carries, and the old one stops working. A
// ring member's reply carries its ticket for the ring's key too: a peer on
// a new file has none, and a heal of its ring is signed with it.
func (s *Server) rejoin(now time.Time, u *state.User, m wire.Register, bySecret bool) (*wire.Reply, bool) {
	s.seen(now, u.Addr)
	// A new process: the alives of the one before, counted from another
	// clock perhaps (a host's set back since), do not bound its own, which
	// go on above this register's sequence number (registerOp.answered);
	// with a new secret, none from before verifies anyway. A count that
	// goes back (a clock behind) is committed with the reply: a file left
	// holding the higher one would refuse the new process's alives after
	// a restart.
	was := u.AliveSeq
	if bySecret {
		u.AliveSeq = s.reqSeq
	} else {
		u.AliveSeq = 0
	}
	if !bySecret {
		// First: a heal this rejoin starts is signed with the new secret.
		u.Secret, u.Seq = newKey(s.cfg.Keys), 0
	}
	changed, ended := u.AliveSeq < was, false
	recorded := s.dht.Phase != state.PhaseNone
	if ev, ok := s.outdate(u, m.Epoch); ok {
		// The peer holds a place in a ring newer than this server's file.
		s.after = append(s.after, ev)
		changed, ended = true, recorded
	}
	member := slices.Contains(s.dht.Members, u.Name)
	// A member back while a store round may be going (setup, leave, join,
	// heal) may have lost records it acknowledged and was still forwarding:
	// the ring heals with it, as it does when its file holds another ring.
	lost := s.dht.Phase != state.PhaseReady || m.Epoch != s.dht.Epoch
	if member && lost {
		switch s.dht.Phase {
		case state.PhaseReady, state.PhaseBuilding, state.PhaseHealing, state.PhaseLeaving, state.PhaseJoining:
			// A leaver's or joiner's peer still running may send its
			// dht-rebuilt: it is told why its operation ended.
			d := s.dht
			if d.Phase == state.PhaseLeaving && d.Leaver != u.Name {
				s.endedFor(d.Leaver, "leave-dht", u.Name+" restarted without its place in the ring")
			} else if d.Phase == state.PhaseJoining {
				s.endedFor(d.Joiner, "join-dht", u.Name+" restarted without its place in the ring")
			}
			s.after = s.healAround(now, u.Name)
			changed = true
		}
	}
	if s.dht.Phase == state.PhaseJoining && u.Name == s.dht.Joiner {
		// The joiner restarted: its process no longer runs the join, and
		// nothing would send dht-rebuilt. The ring, which the join's leader
		// may be reshaping, heals with its members, now rather than at
		// --op-timeout.
		s.after = s.healAroundFor(now, u.Name, fmt.Sprintf("%s restarted during its join-dht", u.Name))
		changed = true
	}
	if s.dht.Phase == state.PhaseTearing && member {
		// A member of a ring being torn down restarted: its process no
		// longer runs the teardown. The leader's would send no
		// teardown-complete; another's would drop the torn-down that must
		// pass it (it no longer knows the teardown that came before), and
		// the round would never end. The DHT was being dissolved: it is,
		// now, rather than at --op-timeout; the teardown's leader learns
		// it from its next pace.
		if u.Name == s.dht.Leader {
			s.note = fmt.Sprintf("%s restarted during its teardown-dht: the DHT was dissolved and its members are Free", u.Name)
		} else {
			s.note = fmt.Sprintf("%s restarted during the teardown-dht led by %s: the DHT was dissolved and its members are Free", u.Name, s.dht.Leader)
		}
		s.dissolve()
		changed, ended = true, true
		s.after = append(s.after, event("a member restarted during a teardown: DHT dissolved", slog.String("what", s.note)))
	}
	r := ok()
	r.State = uint8(u.State)
	if s.after != nil || ended {
		// What became of the DHT, and of an operation the user's process
		// was part of: the resumed peer says so.
		r.Reason = s.note
	}
	if !bySecret {
		r.Key, changed = u.Secret, true
	}
	if slices.Contains(s.dht.Members, u.Name) {
		r.Epoch = s.dht.Epoch
		if !s.dht.RingKey.IsZero() {
			r.KeyEpoch = s.dht.KeyEpoch
			r.Tickets = []wire.Tag{ticket(u.Secret, s.dht.KeyEpoch, s.dht.RingKey)}
		}
	}
	return r, changed
}

// healAround heals the ring with its live members, name among them, which
// came back without its place; the caller persists.
func (s *Server) healAround(now time.Time, name string) []Output {
	return s.healAroundFor(now, name, fmt.Sprintf("%s restarted without its place in the ring (epoch %d)", name, s.dht.Epoch))
}

// healAroundFor heals the ring with its live members, name among them or
// not, for the reason why (what it says of an operation in progress is
// added); the caller persists.
func (s *Server) healAroundFor(now time.Time, name, why string) []Output {
	d := s.dht
	var survivors []string
	for _, m := range d.Members {
		if s.online(now, m) && m != d.Leaver {
			survivors = append(survivors, m)
		}
	}
	switch d.Phase {
	case state.PhaseBuilding:
		why = fmt.Sprintf("%s restarted while the ring was set up; setup-dht by %s ends in a heal", name, d.Leader)
	case state.PhaseLeaving:
		why += fmt.Sprintf("; leave-dht by %s was ended, and %s is Free", d.Leaver, d.Leaver)
	case state.PhaseJoining:
		why += fmt.Sprintf("; join-dht by %s was ended, and %s is Free", d.Joiner, d.Joiner)
	}
	if len(survivors) == 0 {
		// The leaver or the joiner back, every other member offline but
		// not yet judged so (a Tick comes after the socket is read, late).
		s.note = fmt.Sprintf("%s: no member of the DHT is live, so it was dissolved", why)
		s.dissolve()
		return []Output{event("no live member: DHT dissolved", slog.String("what", s.note))}
	}
	var removed []string
	for _, m := range d.Members {
		if !slices.Contains(survivors, m) && m != d.Leaver {
			removed = append(removed, m)
		}
	}
	s.healState(now, survivors, removed, why)
	return append([]Output{event("heal", slog.String("what", s.note), slog.Uint64("epoch", s.dht.Epoch))}, s.sendHeal(now)...)
}
