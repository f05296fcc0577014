package store

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"net/netip"
	"strings"

	"dht/app/state"
	"dht/dataset"
)

// maxKey is bbolt's MaxKeySize; the in-memory twins enforce it too so that
// both behave alike.
const maxKey = 32768

func checkKey(what string, k string) error {
	if k == "" {
		return fmt.Errorf("store: %s is empty: %w", what, ErrInvalid)
	}
	if len(k) > maxKey {
		return fmt.Errorf("store: %s is %d bytes, longer than %d: %w", what, len(k), maxKey, ErrInvalid)
	}
	return nil
}

// enc appends values; the first error sticks.
type enc struct {
	b   []byte
	err error
}

func (e *enc) u8(v uint8)   { e.b = append(e.b, v) }
func (e *enc) u16(v uint16) { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *enc) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *enc) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }

func (e *enc) str(what, s string) {
	if len(s) > math.MaxUint16 {
		if e.err == nil {
			e.err = fmt.Errorf("store: %s is %d bytes, longer than %d: %w", what, len(s), math.MaxUint16, ErrInvalid)
		}
		return
	}
	e.u16(uint16(len(s)))
	e.b = append(e.b, s...)
}

func (e *enc) boolean(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

func (e *enc) int32(what string, v int) {
	if v < 0 || uint64(v) > math.MaxUint32 {
		if e.err == nil {
			e.err = fmt.Errorf("store: %s %d out of range: %w", what, v, ErrInvalid)
		}
		return
	}
	e.u32(uint32(v))
}

func (e *enc) addr(a netip.AddrPort) {
	if !a.IsValid() {
		e.u8(0)
		e.u16(0)
		return
	}
	ip := a.Addr().AsSlice()
	e.u8(uint8(len(ip)))
	e.b = append(e.b, ip...)
	e.u16(a.Port())
}

// dec reads values; the first error sticks and later reads return zeros.
// Everything returned is a copy: bbolt's bytes are only valid inside the
// transaction.
type dec struct {
	what string
	key  string // if set, the error names it after what (quoted only then)
	b    []byte
	err  error
}

func (d *dec) fail(field string) {
	if d.err == nil {
		what := d.what
		if d.key != "" {
			what += " " + quote(d.key)
		}
		d.err = fmt.Errorf("store: %s: %s: %w", what, field, ErrCorrupt)
	}
}

func (d *dec) take(field string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.fail(field + " is cut short")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) u8(field string) uint8 {
	if v := d.take(field, 1); v != nil {
		return v[0]
	}
	return 0
}

func (d *dec) u16(field string) uint16 {
	if v := d.take(field, 2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *dec) u32(field string) uint32 {
	if v := d.take(field, 4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *dec) u64(field string) uint64 {
	if v := d.take(field, 8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (d *dec) str(field string) string {
	n := d.u16(field)
	return string(d.take(field, int(n)))
}

func (d *dec) boolean(field string) bool {
	switch d.u8(field) {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail(field + " is not 0 or 1")
	return false
}

func (d *dec) addr(field string) netip.AddrPort {
	n := d.u8(field)
	if n != 0 && n != 4 && n != 16 {
		d.fail(field + " has a bad address length")
		return netip.AddrPort{}
	}
	ip := d.take(field, int(n))
	port := d.u16(field)
	if d.err != nil || n == 0 {
		return netip.AddrPort{}
	}
	a, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(a, port)
}

func (d *dec) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Sprintf("%d trailing bytes", len(d.b)))
	}
	return d.err
}

// ---- checksums ----

// valueSum is the size of the checksum that ends every value of a server
// file and a peer's identity: a CRC-32C of the bytes before it. As for a
// record (recordSum), bbolt checks a commit's meta page, not the pages it
// names: a byte changed on the disk since would be read back as a user's
// state, address or secret, or as the DHT's members.
const valueSum = 4

// seal appends v's checksum to v.
func seal(v []byte) []byte {
	return binary.BigEndian.AppendUint32(v, crc32.Checksum(v, castagnoli))
}

// unseal checks the checksum that ends v, a value of a file whose values
// carry one (sealed), and returns v without it; what names the value.
func unseal(sealed bool, what string, v []byte) ([]byte, error) {
	if !sealed {
		return v, nil
	}
	if len(v) < valueSum || binary.BigEndian.Uint32(v[len(v)-valueSum:]) != crc32.Checksum(v[:len(v)-valueSum], castagnoli) {
		return nil, fmt.Errorf("store: %s fails its checksum (the file changed on the disk since it was written): %w", what, ErrCorrupt)
	}
	return v[:len(v)-valueSum], nil
}

// ---- server values ----

func encodeUser(u state.User) ([]byte, error) {
	if err := checkKey("user name", u.Name); err != nil {
		return nil, err
	}
	if u.State > state.InDHT {
		return nil, fmt.Errorf("store: user %q: state %d: %w", u.Name, u.State, ErrInvalid)
	}
	e := enc{b: make([]byte, 0, 24)}
	e.u8(uint8(u.State))
	e.addr(u.Addr)
	// Last seen, then the secret and the sequence number, then the last
	// alive's, go last, and only once known: a file written before
	// liveness (or secrets, or alives' numbers) existed holds the same
	// bytes, and reads the same.
	secret := !u.Secret.IsZero() || u.Seq != 0
	if u.LastSeen != 0 || secret {
		e.u64(uint64(u.LastSeen))
	}
	if secret {
		e.b = append(e.b, u.Secret[:]...)
		e.u64(u.Seq)
		// The address written to, only one of a host's (as decodeUser
		// reads it).
		via := u.Via.Is4() && state.NotUnicast(u.Via) == ""
		if u.AliveSeq != 0 || via {
			e.u64(u.AliveSeq)
		}
		if via {
			a := u.Via.As4()
			e.b = append(e.b, a[:]...)
		}
	}
	return e.b, e.err
}

func decodeUser(name string, v []byte) (state.User, error) {
	d := dec{what: "user " + quote(name), b: v}
	u := state.User{Name: name}
	u.State = state.State(d.u8("state"))
	if d.err == nil && u.State > state.InDHT {
		d.fail("unknown state")
	}
	u.Addr = d.addr("addr")
	if d.err == nil && len(d.b) > 0 {
		u.LastSeen = int64(d.u64("last seen"))
		if d.err == nil && u.LastSeen == 0 && len(d.b) == 0 {
			d.fail("last seen") // written only when known
		}
	}
	if d.err == nil && len(d.b) > 0 {
		copy(u.Secret[:], d.take("secret", len(u.Secret)))
		u.Seq = d.u64("sequence number")
	}
	if d.err == nil && len(d.b) > 0 {
		u.AliveSeq = d.u64("alive sequence number")
		if d.err == nil && u.AliveSeq == 0 && len(d.b) == 0 {
			d.fail("alive sequence number") // written only when known, or the address follows
		}
	}
	if d.err == nil && len(d.b) > 0 {
		b := d.take("address written to", 4)
		if d.err == nil {
			u.Via = netip.AddrFrom4([4]byte(b))
			if state.NotUnicast(u.Via) != "" {
				d.fail("address written to")
			}
		}
	}
	return u, d.done()
}

// encodeDHT writes the joiner, then the epoch and the removed members,
// then the ring key's epoch and the key, last, and only when they are not
// empty: a file written before joins, epochs or keys holds the same bytes,
// and reads the same.
func encodeDHT(h state.DHT) ([]byte, error) {
	if h.Phase > state.PhaseHealing {
		return nil, fmt.Errorf("store: dht phase %d: %w", h.Phase, ErrInvalid)
	}
	if len(h.Members) > math.MaxUint16 {
		return nil, fmt.Errorf("store: dht has %d members: %w", len(h.Members), ErrInvalid)
	}
	e := enc{}
	e.u8(uint8(h.Phase))
	e.str("dht leader", h.Leader)
	e.u16(uint16(len(h.Members)))
	for _, m := range h.Members {
		e.str("dht member", m)
	}
	e.str("dht leaver", h.Leaver)
	e.u64(uint64(h.Since))
	keys := h.KeyEpoch != 0 || !h.RingKey.IsZero()
	tail := h.Epoch != 0 || len(h.Removed) != 0 || keys
	if h.Joiner != "" || tail {
		e.str("dht joiner", h.Joiner)
	}
	if tail {
		e.u64(h.Epoch)
		if len(h.Removed) > math.MaxUint16 {
			return nil, fmt.Errorf("store: dht has %d removed members: %w", len(h.Removed), ErrInvalid)
		}
		e.u16(uint16(len(h.Removed)))
		for _, r := range h.Removed {
			e.str("dht removed member", r)
		}
	}
	if keys {
		e.u64(h.KeyEpoch)
		e.b = append(e.b, h.RingKey[:]...)
	}
	return e.b, e.err
}

func decodeDHT(v []byte) (h state.DHT, err error) {
	d := dec{what: "dht state", b: v}
	h.Phase = state.Phase(d.u8("phase"))
	if d.err == nil && h.Phase > state.PhaseHealing {
		d.fail("unknown phase")
	}
	h.Leader = d.str("leader")
	n := int(d.u16("member count"))
	// Each member takes at least its 2-byte length: check before allocating.
	if d.err == nil && n*2 > len(d.b) {
		d.fail("member count")
	}
	if d.err == nil && n > 0 {
		h.Members = make([]string, n)
		for i := range h.Members {
			h.Members[i] = d.str("member")
		}
	}
	h.Leaver = d.str("leaver")
	h.Since = int64(d.u64("since"))
	if d.err == nil && len(d.b) > 0 {
		h.Joiner = d.str("joiner")
		if d.err == nil && h.Joiner == "" && len(d.b) == 0 {
			d.fail("joiner") // written only when there is one, or an epoch follows
		}
	}
	if d.err == nil && len(d.b) > 0 {
		h.Epoch = d.u64("epoch")
		n := int(d.u16("removed count"))
		if d.err == nil && n*2 > len(d.b) {
			d.fail("removed count")
		}
		for i := 0; d.err == nil && i < n; i++ {
			h.Removed = append(h.Removed, d.str("removed member"))
		}
	}
	if d.err == nil && len(d.b) > 0 {
		h.KeyEpoch = d.u64("key epoch")
		copy(h.RingKey[:], d.take("ring key", len(h.RingKey)))
	}
	return h, d.done()
}

func replyKey(a netip.AddrPort) (string, error) {
	if !a.IsValid() {
		return "", fmt.Errorf("store: cached reply without an address: %w", ErrInvalid)
	}
	return a.String(), nil
}

func encodeReply(r state.CachedReply) (key string, v []byte, err error) {
	key, err = replyKey(r.Addr)
	if err != nil {
		return "", nil, err
	}
	v = make([]byte, 0, 4+1+len(r.Key)+len(r.Datagram))
	v = binary.BigEndian.AppendUint32(v, r.ID)
	if !r.Key.IsZero() {
		// A datagram starts with the magic, never with a zero byte.
		v = append(append(v, replyKeyMark), r.Key[:]...)
	}
	return key, append(v, r.Datagram...), nil
}

// replyKeyMark follows a reply's id when its key comes next.
const replyKeyMark = 0

func decodeReply(key string, v []byte) (state.CachedReply, error) {
	a, err := netip.ParseAddrPort(key)
	if err != nil {
		return state.CachedReply{}, fmt.Errorf("store: reply key %s: %w", quote(key), ErrCorrupt)
	}
	if len(v) < 4 {
		return state.CachedReply{}, fmt.Errorf("store: reply for %s is cut short: %w", key, ErrCorrupt)
	}
	r := state.CachedReply{Addr: a, ID: binary.BigEndian.Uint32(v)}
	v = v[4:]
	if len(v) > 0 && v[0] == replyKeyMark {
		if len(v) < 1+len(r.Key) {
			return state.CachedReply{}, fmt.Errorf("store: reply for %s: its key is cut short: %w", key, ErrCorrupt)
		}
		copy(r.Key[:], v[1:])
		v = v[1+len(r.Key):]
	}
	if len(v) > 0 {
		r.Datagram = append([]byte(nil), v...)
	}
	return r, nil
}

// ---- peer values ----

func encodeIdentity(id state.Identity) ([]byte, error) {
	e := enc{}
	e.str("identity name", id.Name)
	e.addr(id.Addr)
	e.addr(id.Server)
	e.boolean(id.InRing)
	e.int32("identity id", id.ID)
	e.int32("identity ring size", id.N)
	for _, m := range [2]state.Member{id.Left, id.Right} {
		e.str("neighbour name", m.Name)
		e.addr(m.Addr)
	}
	// The epoch, then the secret and the ring key, go last, and only once
	// known: a file written before epochs or keys existed holds the same
	// bytes, and reads the same.
	keys := !id.Secret.IsZero() || id.KeyEpoch != 0 || !id.RingKey.IsZero()
	if id.Epoch != 0 || keys {
		e.u64(id.Epoch)
	}
	if keys {
		e.b = append(e.b, id.Secret[:]...)
		e.u64(id.KeyEpoch)
		e.b = append(e.b, id.RingKey[:]...)
	}
	return e.b, e.err
}

func decodeIdentity(v []byte) (state.Identity, error) {
	d := dec{what: "identity", b: v}
	var id state.Identity
	id.Name = d.str("name")
	id.Addr = d.addr("addr")
	id.Server = d.addr("server")
	id.InRing = d.boolean("in-ring")
	id.ID = int(d.u32("id"))
	id.N = int(d.u32("ring size"))
	id.Left = state.Member{Name: d.str("left name"), Addr: d.addr("left addr")}
	id.Right = state.Member{Name: d.str("right name"), Addr: d.addr("right addr")}
	if d.err == nil && len(d.b) > 0 {
		id.Epoch = d.u64("epoch")
		if d.err == nil && id.Epoch == 0 && len(d.b) == 0 {
			d.fail("epoch") // written only when known, or keys follow
		}
	}
	if d.err == nil && len(d.b) > 0 {
		copy(id.Secret[:], d.take("secret", len(id.Secret)))
		id.KeyEpoch = d.u64("key epoch")
		copy(id.RingKey[:], d.take("ring key", len(id.RingKey)))
	}
	return id, d.done()
}

func recordKey(r dataset.Record) (pos int, key string, err error) {
	if err := checkKey("record Long Name", r.LongName); err != nil {
		return 0, "", err
	}
	pos = r.Pos()
	if pos < 0 || pos >= dataset.TableSize {
		return 0, "", fmt.Errorf("store: record %s: position %d out of range: %w", quote(r.LongName), pos, ErrInvalid)
	}
	return pos, r.LongName, nil
}

// recordLen is the length of r encoded.
func recordLen(r dataset.Record) int {
	size := recordSum
	for _, s := range r.Fields() {
		size += 2 + len(s)
	}
	return size
}

// recordSum is the size of a record's checksum: a CRC-32C of its fields as
// encoded, after them. bbolt checks a commit's meta page, not the pages it
// names: a byte of a record changed on the disk since (a page a commit
// left alone for a long time) would be read back as a record of the
// dataset, and a query answered with it.
const recordSum = 4

// appendRecord appends r encoded to b: its fields, then their checksum.
func appendRecord(b []byte, r dataset.Record) ([]byte, error) {
	start := len(b)
	e := enc{b: b}
	for i, s := range r.Fields() {
		e.str(recordFieldWhat[i], s)
	}
	return binary.BigEndian.AppendUint32(e.b, crc32.Checksum(e.b[start:], castagnoli)), e.err
}

// recordFieldWhat names each field in appendRecord's errors.
var recordFieldWhat = func() (what [dataset.NumFields]string) {
	for i, h := range dataset.Headers {
		what[i] = "record field " + h
	}
	return what
}()

// decodeRecord copies the fields into one string of their own (a query
// decodes one record from the file, and its fields leave the transaction).
func decodeRecord(key string, v []byte) (dataset.Record, error) {
	if len(v) < recordSum || binary.BigEndian.Uint32(v[len(v)-recordSum:]) != crc32.Checksum(v[:len(v)-recordSum], castagnoli) {
		return dataset.Record{}, fmt.Errorf("store: the record under key %s fails its checksum (the file changed on the disk since it was written): %w", quote(key), ErrCorrupt)
	}
	d := dec{what: "record", key: key, b: v[:len(v)-recordSum]}
	var raw [dataset.NumFields][]byte
	size := 0
	for i := range raw {
		n := d.u16(dataset.Headers[i])
		raw[i] = d.take(dataset.Headers[i], int(n))
		size += len(raw[i])
	}
	if err := d.done(); err != nil {
		return dataset.Record{}, err
	}
	var b strings.Builder
	b.Grow(size)
	for _, r := range raw {
		b.Write(r)
	}
	all := b.String()
	var f [dataset.NumFields]string
	for i, r := range raw {
		f[i], all = all[:len(r)], all[len(r):]
	}
	r := dataset.FromFields(f)
	if r.LongName != key {
		return dataset.Record{}, fmt.Errorf("store: record %s is stored under key %s: %w", quote(r.LongName), quote(key), ErrCorrupt)
	}
	return r, nil
}

// slotBucket names the bucket of slot pos so that names sort by position.
func slotBucket(pos int) []byte { return slotNames[pos] }

var slotNames = func() (names [dataset.TableSize][]byte) {
	for pos := range names {
		names[pos] = fmt.Appendf(nil, "slot/%03d", pos)
	}
	return names
}()

// slotPos parses a slot bucket name; ok is false for any other name.
func slotPos(name []byte) (pos int, ok bool) {
	s, found := strings.CutPrefix(string(name), "slot/")
	if !found || len(s) != 3 {
		return 0, false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		pos = pos*10 + int(c-'0')
	}
	return pos, pos < dataset.TableSize
}

// quote is for names in error messages: they may hold any bytes.
func quote(s string) string { return fmt.Sprintf("%q", s) }
