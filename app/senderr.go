package app

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"
)

// sendErr is a send this host refused: the error, and when.
type sendErr struct {
	err error
	at  time.Time
}

// maxSendErrs bounds the addresses whose refused sends a peer keeps; a
// full map is emptied.
const maxSendErrs = 64

// SendFailed tells the peer that this host refused to send a datagram to
// to (the runner's socket returned err): a loopback address sending to
// another host, a network down, a firewall. The failure lines that name
// that address say so, instead of blaming its silence (a walk-through on
// several hosts: a register from 127.0.0.1 to a server on another host
// waited its 10 s and asked whether a server was running there). A nil
// err: the host took a send to to since (its route came back), so the
// refusal before it is no cause of a silence.
func (p *Peer) SendFailed(now time.Time, to netip.AddrPort, err error) {
	if err == nil {
		delete(p.sendErrs, to)
		return
	}
	if p.sendErrs == nil || len(p.sendErrs) >= maxSendErrs {
		if _, ok := p.sendErrs[to]; !ok {
			p.sendErrs = make(map[netip.AddrPort]sendErr)
		}
	}
	p.sendErrs[to] = sendErr{err: err, at: now}
}

// sendRefused says why this host refused the last send to to, if that was
// at since or later; "" if it did not.
func (p *Peer) sendRefused(to netip.AddrPort, since time.Time) string {
	e, ok := p.sendErrs[to]
	if !ok || e.at.Before(since) {
		return ""
	}
	why := "this host refused to send there: " + e.err.Error()
	switch {
	case p.self.Addr.Addr().IsLoopback() && !to.Addr().IsLoopback():
		// Whatever the error (EINVAL; ENETUNREACH on a host with no
		// route there), a loopback source is the cause.
		why += fmt.Sprintf("; %s is a loopback address, which reaches this host only: register with an address of this host that %s reaches", p.self.Addr.Addr(), to.Addr())
	case errors.Is(e.err, syscall.ENETUNREACH), errors.Is(e.err, syscall.EHOSTUNREACH):
		why += "; is this host's network down?"
	case errors.Is(e.err, syscall.EPERM), errors.Is(e.err, syscall.EACCES):
		why += "; a firewall of this host's may refuse it"
	}
	return why
}

// serverOnThisHost reports whether the server is on this peer's host, as
// far as its address says: a loopback one, or self, the address this peer
// registers from. A user registered at a loopback address is then on this
// host too (the server heard it from there), and the server reaches every
// address of this host.
func (p *Peer) serverOnThisHost(self netip.Addr) bool {
	s := p.cfg.Server.Addr()
	return s.IsLoopback() || s == self
}
