package wire

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"hash"
	"net/netip"
	"sync"
	"unsafe"
)

// Authentication trailer. A datagram whose header has FlagAuth ends with
//
//	offset      size field
//	len-24      8    seq  the sender's sequence number or ring epoch (u64)
//	len-16      16   tag  HMAC-SHA256(key, every byte before the tag), first 16 bytes
//
// and for a datagram to a peer the tag also covers the address it is sent
// to (AppendSignedTo, VerifyAt), and for one from a peer to a peer the
// address it is sent from as well (AppendSignedBetween, VerifyBetween).
//
// The body lies between the header and the trailer. Which key signs a
// message, and what seq means for it, is the protocol's business (package
// app, docs/DESIGN.md "Who may command whom"); this package only appends and
// checks the trailer.
const (
	SeqLen  = 8
	TagLen  = 16
	AuthLen = SeqLen + TagLen
	KeyLen  = 16 // the length of every key the protocol signs with
)

// Tag is an authentication tag.
type Tag [TagLen]byte

// Key is a 16-byte secret: a user's secret, a ring key or a query token.
type Key [KeyLen]byte

// IsZero reports whether k is all zero bytes (no key).
func (k Key) IsZero() bool { return k == Key{} }

// macPool keeps HMAC states, each keyed with the keys it used last.
var macPool = sync.Pool{New: func() any { return &macState{hs: make(map[Key]hash.Hash)} }}

// macKeys bounds the keys one macState keeps an HMAC for. A ring node
// signs and checks with its ring key and one query token a querier; with
// one HMAC kept, queries from 16 queriers interleaved made a new one (its
// key schedule, two hash states) nearly every time: a check cost 655 ns
// and 6 allocations, against 234 ns and 1 (BenchmarkVerifyManyKeys).
const macKeys = 64

type macState struct {
	hs  map[Key]hash.Hash
	sum [sha256.Size]byte
	to  [toLen]byte // the address a tag covers, written here: no allocation
	fr  [toLen]byte // the address it is sent from, likewise
}

// hmac is an HMAC under key, ready to write to.
func (s *macState) hmac(key Key) hash.Hash {
	h, ok := s.hs[key]
	if ok {
		h.Reset()
		return h
	}
	if len(s.hs) >= macKeys {
		clear(s.hs)
	}
	k := key // escapes to hmac.New: a copy, so that key itself need not
	h = hmac.New(sha256.New, k[:])
	s.hs[key] = h
	return h
}

func (s *macState) tag(key Key, parts ...[]byte) Tag {
	h := s.hmac(key)
	for _, p := range parts {
		h.Write(p)
	}
	var t Tag
	copy(t[:], h.Sum(s.sum[:0]))
	return t
}

// MAC is HMAC-SHA256(key, the concatenation of parts), cut to 16 bytes.
// The protocol derives its tickets and tokens with it.
func MAC(key Key, parts ...[]byte) Tag {
	s := macPool.Get().(*macState)
	t := s.tag(key, parts...)
	macPool.Put(s)
	return t
}

// AppendSigned is Append with the authentication trailer: it sets
// FlagAuth, appends seq and the tag of the datagram under key. The
// datagram without its trailer is at most MaxMessage, as Append checks.
func AppendSigned(b []byte, id uint32, flags Flags, m Message, seq uint64, key Key) ([]byte, error) {
	start := len(b)
	out, err := Append(b, id, flags|FlagAuth, m)
	if err != nil {
		return b, err
	}
	out = binary.BigEndian.AppendUint64(out, seq)
	t := MAC(key, out[start:])
	return append(out, t[:]...), nil
}

// AppendSignedTo is AppendSigned for a datagram to a peer: its tag also
// covers to, the address it is sent to, which the datagram does not carry
// (its IPv6 form, an IPv4 address mapped into it, then the port: toBytes).
// A copy sent anywhere else does not verify there, whoever
// sends it: a message signed with a key several peers hold (a ring's)
// cannot be redirected from the peer it was for to another one.
func AppendSignedTo(b []byte, id uint32, flags Flags, m Message, seq uint64, key Key, to netip.AddrPort) ([]byte, error) {
	return appendSignedAt(b, id, flags, m, seq, key, to, nil)
}

// AppendSignedBetween is AppendSignedTo for a datagram from one peer to
// another: its tag also covers from, the sender's own address (to, then
// from, each as toBytes). A copy sent again with another source does not
// verify: whoever lacks the key cannot make a message of one peer's pass
// for another's (a receiver checks where a message comes from, and its
// duplicate filter holds the ids of each sender).
func AppendSignedBetween(b []byte, id uint32, flags Flags, m Message, seq uint64, key Key, from, to netip.AddrPort) ([]byte, error) {
	return appendSignedAt(b, id, flags, m, seq, key, to, &from)
}

// appendSignedAt is AppendSignedTo, the tag covering from after to when
// from is not nil (AppendSignedBetween).
func appendSignedAt(b []byte, id uint32, flags Flags, m Message, seq uint64, key Key, to netip.AddrPort, from *netip.AddrPort) ([]byte, error) {
	start := len(b)
	out, err := Append(b, id, flags|FlagAuth, m)
	if err != nil {
		return b, err
	}
	out = binary.BigEndian.AppendUint64(out, seq)
	ms := macPool.Get().(*macState)
	var t Tag
	if from == nil {
		t = ms.tag(key, out[start:], toBytes(&ms.to, to))
	} else {
		t = ms.tag(key, out[start:], toBytes(&ms.to, to), toBytes(&ms.fr, *from))
	}
	macPool.Put(ms)
	return append(out, t[:]...), nil
}

// toLen is the length of an address as a tag covers it: the IPv6 form of
// the address (an IPv4 address mapped into it), then the port.
const toLen = 18

func toBytes(b *[toLen]byte, a netip.AddrPort) []byte {
	ip := a.Addr().As16()
	copy(b[:16], ip[:])
	binary.BigEndian.PutUint16(b[16:], a.Port())
	return b[:]
}

// Verify reports whether h, a header Decode returned, carries the
// authentication trailer and its tag is that of the datagram under key
// (AppendSigned).
func Verify(key Key, h Header) bool {
	return verify(key, h, nil)
}

// VerifyAt is Verify for a datagram that arrived at address at, signed
// for it (AppendSignedTo).
func VerifyAt(key Key, h Header, at netip.AddrPort) bool {
	return verify(key, h, &at)
}

// VerifyBetween is VerifyAt for a datagram that came from address from
// to address at, signed for both (AppendSignedBetween).
func VerifyBetween(key Key, h Header, from, at netip.AddrPort) bool {
	return verifyFrom(key, h, &at, &from)
}

func verify(key Key, h Header, at *netip.AddrPort) bool {
	return verifyFrom(key, h, at, nil)
}

func verifyFrom(key Key, h Header, at, from *netip.AddrPort) bool {
	if h.Flags&FlagAuth == 0 || len(h.Signed) < HeaderLen+SeqLen {
		return false
	}
	s := macPool.Get().(*macState)
	mac := s.hmac(key)
	mac.Write(unsafe.Slice(unsafe.StringData(h.Signed), len(h.Signed))) // read only
	if at != nil {
		mac.Write(toBytes(&s.to, *at))
	}
	if from != nil {
		mac.Write(toBytes(&s.fr, *from))
	}
	sum := mac.Sum(s.sum[:0])
	ok := subtle.ConstantTimeCompare(sum[:TagLen], h.Tag[:]) == 1
	macPool.Put(s)
	return ok
}
