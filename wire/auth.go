package wire

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"hash"
	"sync"
	"unsafe"
)

// Authentication trailer. A datagram whose header has FlagAuth ends with
//
//	offset      size field
//	len-24      8    seq  the sender's sequence number or ring epoch (u64)
//	len-16      16   tag  HMAC-SHA256(key, every byte before the tag), first 16 bytes
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

// macPool keeps HMAC states, each keyed with the last key it used.
var macPool = sync.Pool{New: func() any { return new(macState) }}

type macState struct {
	key Key
	h   hash.Hash
	sum [sha256.Size]byte
}

func (s *macState) tag(key Key, parts ...[]byte) Tag {
	if s.h == nil || s.key != key {
		s.key, s.h = key, hmac.New(sha256.New, key[:])
	} else {
		s.h.Reset()
	}
	for _, p := range parts {
		s.h.Write(p)
	}
	var t Tag
	copy(t[:], s.h.Sum(s.sum[:0]))
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

// Verify reports whether h, a header Decode returned, carries the
// authentication trailer and its tag is that of the datagram under key.
func Verify(key Key, h Header) bool {
	if h.Flags&FlagAuth == 0 || len(h.Signed) < HeaderLen+SeqLen {
		return false
	}
	s := macPool.Get().(*macState)
	if s.h == nil || s.key != key {
		s.key, s.h = key, hmac.New(sha256.New, key[:])
	} else {
		s.h.Reset()
	}
	s.h.Write(unsafe.Slice(unsafe.StringData(h.Signed), len(h.Signed))) // read only
	sum := s.h.Sum(s.sum[:0])
	ok := subtle.ConstantTimeCompare(sum[:TagLen], h.Tag[:]) == 1
	macPool.Put(s)
	return ok
}
