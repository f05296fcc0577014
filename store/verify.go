package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"io"
	"math/bits"
)

// verifyFile reads the pages of a bbolt file the way bbolt will and checks
// what bbolt relies on without checking it: bbolt trusts its pages, and a
// damaged one makes it read out of bounds, fault on a page past the end of
// the file, or fail an assertion, at open or at the first commit that
// touches it. What is checked here is what bbolt's own Check checks, with
// every length bounded before it is used, and a little more:
//
//   - a valid meta page, chosen as bbolt chooses it (the newer of the two
//     whose checksum holds), and pages up to its high-water mark all inside
//     the file;
//   - the freelist: page ids in range, each once;
//   - every page reachable from the root, once each, of the type its parent
//     says, with its elements, keys and values inside the page, its keys
//     not empty, strictly increasing and within the bounds its parent gives
//     them; a branch page's key for a child is the child's first key (bbolt
//     finds a child in its parent by that key when it writes the child
//     back: a key that differs adds a second, stale entry for the child);
//     inline buckets likewise;
//   - no page both free and in use, and none neither.
//
// It returns nil or a *verifyError; a file with no valid meta page at all
// is errNoMeta (not a bbolt file, rather than a damaged one).
func verifyFile(r io.ReaderAt, size int64) error {
	v := verifier{r: r, size: size}
	return v.run()
}

// The bbolt file format (go.etcd.io/bbolt/internal/common), in the byte
// order of the machine that wrote it.
const (
	pageHeaderSize = 16 // id u64, flags u16, count u16, overflow u32
	elemSize       = 16 // leaf: flags, pos, ksize, vsize u32; branch: pos, ksize u32, pgid u64
	metaSize       = 64 // magic, version, page size, flags u32; root, sequence, freelist, pgid, txid, checksum u64
	metaTxid       = 48 // the txid's offset in the meta
	metaChecksum   = 56 // the checksum's: of the meta's bytes before it
	bucketSize     = 16 // a bucket's value: root pgid u64, sequence u64 (then an inline page if root is 0)

	branchPage   = 0x01
	leafPage     = 0x02
	metaPage     = 0x04
	freelistPage = 0x10
	bucketFlag   = 0x01

	boltMagic   = 0xED0CDAED
	boltVersion = 2
	noFreelist  = ^uint64(0)
)

var native = binary.NativeEndian

// errNoMeta: neither meta page is valid.
var errNoMeta = errors.New("no valid bbolt meta page")

// verifyError says what is wrong with a file's pages.
type verifyError struct{ why string }

func (e *verifyError) Error() string { return e.why }

func bad(format string, args ...any) error { return &verifyError{fmt.Sprintf(format, args...)} }

type meta struct {
	valid    bool
	pageSize uint64
	root     uint64
	freelist uint64
	pgid     uint64 // high-water mark: pages 0..pgid-1 are in use or free
	txid     uint64
}

type verifier struct {
	r    io.ReaderAt
	size int64
	ps   uint64
	hwm  uint64
	used []bool // by page id: reachable from a meta, the freelist or the tree
	free []bool
}

// readMeta reads the meta page at off; ok is false if the file is too short
// to hold it.
func (v *verifier) readMeta(off int64) (m meta, ok bool) {
	var b [pageHeaderSize + metaSize]byte
	if off < 0 || off+int64(len(b)) > v.size {
		return m, false
	}
	if _, err := v.r.ReadAt(b[:], off); err != nil {
		return m, false
	}
	f := b[pageHeaderSize:]
	h := fnv.New64a()
	h.Write(f[:metaChecksum])
	m = meta{
		valid: native.Uint32(f[0:]) == boltMagic && native.Uint32(f[4:]) == boltVersion &&
			native.Uint64(f[metaChecksum:]) == h.Sum64(),
		pageSize: uint64(native.Uint32(f[8:])),
		root:     native.Uint64(f[16:]),
		freelist: native.Uint64(f[32:]),
		pgid:     native.Uint64(f[40:]),
		txid:     native.Uint64(f[metaTxid:]),
	}
	return m, true
}

// pageSize finds the page size as bbolt does: from the first meta page if
// it is valid, else from the first valid meta page found at 1 KiB, 2 KiB, …
func (v *verifier) pageSize() (uint64, bool) {
	if m, ok := v.readMeta(0); ok && m.valid {
		return m.pageSize, true
	}
	for i := 0; i <= 14; i++ {
		pos := int64(1024) << i
		if pos >= v.size-1024 {
			break
		}
		if m, ok := v.readMeta(pos); ok && m.valid {
			return m.pageSize, true
		}
	}
	return 0, false
}

// noMeta is the error for a file with no valid meta page: errNoMeta (not
// a bbolt file), unless the file is one whose two meta pages are both
// damaged (a new user's review: a dht file with both meta checksums, or
// both magic numbers, flipped was "not a bbolt database", and the peer
// and the server took it for the path of another program's file). Either
// meta page's magic number, both pages' headers (pages 0 and 1, of the
// meta type), or a page of bbolt's after them, at a page size bbolt may
// use, tell such a file.
func (v *verifier) noMeta() error {
	for i := 0; i <= 14; i++ {
		ps := int64(1024) << i
		if 2*ps > v.size {
			break
		}
		var b [2][pageHeaderSize + 4]byte
		headers := true
		for k := range b {
			if _, err := v.r.ReadAt(b[k][:], int64(k)*ps); err != nil {
				return errNoMeta
			}
			if native.Uint32(b[k][pageHeaderSize:]) == boltMagic {
				return bad("neither meta page's checksum holds (both are damaged)")
			}
			headers = headers && native.Uint64(b[k][0:]) == uint64(k) && native.Uint16(b[k][8:]) == metaPage
		}
		if headers {
			return bad("neither meta page holds bbolt's magic number (both are damaged)")
		}
		if v.dataPages(ps) {
			return bad("neither meta page is valid (both are damaged), and the pages after them are bbolt's")
		}
	}
	return errNoMeta
}

// dataPages reports whether one of pages 2 to 7 at page size ps has the
// header of a bbolt page there (its own id, the type of a tree or a
// freelist page), as a file whose meta pages were overwritten (zeroed)
// has; one, not all: a page there may continue a node of several pages.
func (v *verifier) dataPages(ps int64) bool {
	var b [pageHeaderSize]byte
	for id := int64(2); id < 8 && (id+1)*ps <= v.size; id++ {
		if _, err := v.r.ReadAt(b[:], id*ps); err != nil {
			return false
		}
		switch native.Uint16(b[8:]) {
		case branchPage, leafPage, freelistPage:
			if native.Uint64(b[0:]) == uint64(id) {
				return true
			}
		}
	}
	return false
}

// inUse is the meta page bbolt uses, of the two at page size ps, and its
// offset: the one with the higher txid if it is valid, else the other (not
// valid either: no meta page is).
func (v *verifier) inUse(ps uint64) (m meta, off int64) {
	m0, _ := v.readMeta(0)
	m1, _ := v.readMeta(int64(ps))
	a, b, offA, offB := m0, m1, int64(0), int64(ps)
	if m1.txid > m0.txid {
		a, b, offA, offB = m1, m0, offB, offA
	}
	if !a.valid {
		return b, offB
	}
	return a, offA
}

// fingerprint is the meta page in use and a CRC-32C of its first sector
// and, unless metaOnly, of the first sector of the root page it names:
// bbolt's meta, the record of the commit's pages when the raw calls made
// it (commitrec.go), and the top of the tree. Two files at the same
// transaction (the members of a ring, set up together, make the same
// commits) differ in it: a process that finds its file's time moved tells
// a copy of another file put over it by its fingerprint, which its last
// commit left. The record alone tells them apart when it names the pages
// written (their CRC): metaOnly.
func (v *verifier) fingerprint(metaOnly bool) (m meta, sum uint32) {
	ps, ok := v.pageSize()
	if !ok {
		return meta{}, 0
	}
	m, off := v.inUse(ps)
	at := []int64{off, int64(min(m.root, uint64(v.size)/ps) * ps)}
	if metaOnly {
		at = at[:1]
	}
	var b [recEnd]byte
	for i, at := range at {
		n, _ := v.r.ReadAt(b[:min(int64(len(b)), max(v.size-at, 0))], at)
		if i == 0 {
			n = min(n, metaSumEnd)
		}
		sum = crc32.Update(sum, castagnoli, b[:n])
	}
	return m, sum
}

// metaSumEnd is where a meta page's fingerprint ends: before its record's
// own checksum. A CRC over bytes that end with their own CRC-32C is the
// same whatever those bytes are (CRCs are linear): two meta pages alike
// but for their records would have the same.
const metaSumEnd = recOff + recSumAt

func (v *verifier) run() error {
	ps, ok := v.pageSize()
	if !ok {
		return v.noMeta()
	}
	if ps < 1024 || ps > 1<<24 || bits.OnesCount64(ps) != 1 {
		return bad("page size %d", ps)
	}
	v.ps = ps
	if uint64(v.size) < 2*ps {
		return bad("truncated: %d bytes cannot hold the two meta pages of %d bytes", v.size, ps)
	}
	m, _ := v.inUse(ps)
	if !m.valid {
		return v.noMeta()
	}
	if m.pageSize != ps {
		return bad("the meta pages disagree on the page size (%d, %d)", ps, m.pageSize)
	}
	if m.pgid < 3 {
		return bad("meta page says the file has %d pages", m.pgid)
	}
	if m.pgid > uint64(v.size)/ps {
		return bad("truncated: its %d bytes hold %d of its %d pages of %d bytes",
			v.size, uint64(v.size)/ps, m.pgid, ps)
	}
	v.hwm = m.pgid
	v.used, v.free = make([]bool, v.hwm), make([]bool, v.hwm)
	v.used[0], v.used[1] = true, true
	if m.freelist != noFreelist {
		if err := v.freelist(m.freelist); err != nil {
			return err
		}
	}
	if m.root < 2 || m.root >= v.hwm {
		return bad("root page %d out of range", m.root)
	}
	if _, _, err := v.tree(m.root, nil, nil, 0); err != nil {
		return err
	}
	if m.freelist == noFreelist {
		return nil // bbolt rebuilds the freelist from what is unreachable
	}
	for id := uint64(2); id < v.hwm; id++ {
		switch {
		case v.used[id] && v.free[id]:
			return bad("page %d is both free and in use", id)
		case !v.used[id] && !v.free[id]:
			return bad("page %d is neither free nor in use", id)
		}
	}
	return nil
}

// page reads page id (with its overflow pages) and marks it in use.
func (v *verifier) page(id uint64) (flags uint16, count int, b []byte, err error) {
	if id < 2 || id >= v.hwm {
		return 0, 0, nil, bad("page %d out of range", id)
	}
	var h [pageHeaderSize]byte
	if _, err := v.r.ReadAt(h[:], int64(id*v.ps)); err != nil {
		return 0, 0, nil, bad("page %d: %v", id, err)
	}
	if got := native.Uint64(h[0:]); got != id {
		return 0, 0, nil, bad("page %d says it is page %d", id, got)
	}
	flags, count = native.Uint16(h[8:]), int(native.Uint16(h[10:]))
	overflow := uint64(native.Uint32(h[12:]))
	if overflow >= v.hwm-id {
		return 0, 0, nil, bad("page %d: %d overflow pages run past the last page", id, overflow)
	}
	for i := id; i <= id+overflow; i++ {
		if v.used[i] {
			return 0, 0, nil, bad("page %d is used twice", i)
		}
		v.used[i] = true
	}
	b = make([]byte, (1+overflow)*v.ps)
	if _, err := v.r.ReadAt(b, int64(id*v.ps)); err != nil {
		return 0, 0, nil, bad("page %d: %v", id, err)
	}
	return flags, count, b, nil
}

func (v *verifier) freelist(id uint64) error {
	flags, count, b, err := v.page(id)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	if flags != freelistPage {
		return bad("freelist page %d has type %#x", id, flags)
	}
	ids := b[pageHeaderSize:]
	n := uint64(count)
	if count == 0xFFFF { // the count did not fit: it is the first element
		n, ids = native.Uint64(ids), ids[8:]
	}
	if n > uint64(len(ids))/8 {
		return bad("freelist page %d: %d ids do not fit", id, n)
	}
	for i := range n {
		f := native.Uint64(ids[8*i:])
		if f < 2 || f >= v.hwm {
			return bad("freelist page %d: free page %d out of range", id, f)
		}
		if v.free[f] {
			return bad("freelist page %d: page %d freed twice", id, f)
		}
		v.free[f] = true
	}
	return nil
}

// maxDepth bounds the nesting of branch pages and buckets (every page is
// read once, so this only bounds the recursion).
const maxDepth = 64

// tree checks the page tree rooted at id, whose keys must be >= lo and < hi
// (nil: unbounded), and returns its first and last keys (nil if it is
// empty).
func (v *verifier) tree(id uint64, lo, hi []byte, depth int) (first, last []byte, err error) {
	if depth > maxDepth {
		return nil, nil, bad("page %d: nested too deep", id)
	}
	flags, count, b, err := v.page(id)
	if err != nil {
		return nil, nil, err
	}
	switch flags {
	case branchPage:
		return v.branch(id, count, b, lo, hi, depth)
	case leafPage:
		return v.leaf(fmt.Sprintf("page %d", id), count, b, lo, hi, depth)
	}
	return nil, nil, bad("page %d has type %#x where a branch or leaf page belongs", id, flags)
}

// elems checks that count elements fit in page b.
func elems(what string, count int, b []byte) error {
	if pageHeaderSize+count*elemSize > len(b) {
		return bad("%s: %d elements do not fit", what, count)
	}
	return nil
}

// slice returns b[off+pos : off+pos+n], or false if it does not fit.
func slice(b []byte, off int, pos, n uint32) ([]byte, bool) {
	start := uint64(off) + uint64(pos)
	end := start + uint64(n)
	if end > uint64(len(b)) {
		return nil, false
	}
	return b[start:end], true
}

// inOrder checks that key is not empty, and checks it against the previous
// key (or lo, for the first) and hi.
func inOrder(what string, i int, key, prev, lo, hi []byte) error {
	switch {
	case len(key) == 0:
		return bad("%s: key %d is empty", what, i)
	case i > 0 && bytes.Compare(prev, key) >= 0:
		return bad("%s: key %d is not after key %d", what, i, i-1)
	case i == 0 && lo != nil && bytes.Compare(key, lo) < 0:
		return bad("%s: first key is before its parent's", what)
	case hi != nil && bytes.Compare(key, hi) >= 0:
		return bad("%s: key %d is not before its parent's next key", what, i)
	}
	return nil
}

func (v *verifier) branch(id uint64, count int, b, lo, hi []byte, depth int) (first, last []byte, err error) {
	what := fmt.Sprintf("branch page %d", id)
	if count == 0 {
		return nil, nil, bad("%s is empty", what)
	}
	if err := elems(what, count, b); err != nil {
		return nil, nil, err
	}
	key := func(i int) ([]byte, uint64, error) {
		off := pageHeaderSize + i*elemSize
		k, ok := slice(b, off, native.Uint32(b[off:]), native.Uint32(b[off+4:]))
		if !ok {
			return nil, 0, bad("%s: key %d runs past the page", what, i)
		}
		return k, native.Uint64(b[off+8:]), nil
	}
	var prev []byte
	for i := range count {
		k, child, err := key(i)
		if err != nil {
			return nil, nil, err
		}
		if err := inOrder(what, i, k, prev, lo, hi); err != nil {
			return nil, nil, err
		}
		next := hi
		if i+1 < count {
			if next, _, err = key(i + 1); err != nil {
				return nil, nil, err
			}
		}
		var cfirst []byte
		if cfirst, last, err = v.tree(child, k, next, depth+1); err != nil {
			return nil, nil, err
		}
		if !bytes.Equal(cfirst, k) {
			return nil, nil, bad("%s: key %d is not the first key of its child page %d", what, i, child)
		}
		if i == 0 {
			first = k
		}
		prev = last
	}
	return first, last, nil
}

// leaf checks a leaf page b (a page of the file, or an inline bucket's).
func (v *verifier) leaf(what string, count int, b, lo, hi []byte, depth int) (first, last []byte, err error) {
	if err := elems(what, count, b); err != nil {
		return nil, nil, err
	}
	var prev []byte
	for i := range count {
		off := pageHeaderSize + i*elemSize
		flags, pos := native.Uint32(b[off:]), native.Uint32(b[off+4:])
		ksize, vsize := native.Uint32(b[off+8:]), native.Uint32(b[off+12:])
		k, ok := slice(b, off, pos, ksize)
		if !ok {
			return nil, nil, bad("%s: key %d runs past the page", what, i)
		}
		val, ok := slice(b, off+int(pos), ksize, vsize) // the value follows the key
		if !ok {
			return nil, nil, bad("%s: value %d runs past the page", what, i)
		}
		if err := inOrder(what, i, k, prev, lo, hi); err != nil {
			return nil, nil, err
		}
		if i == 0 {
			first = k
		}
		prev = k
		switch flags {
		case 0:
		case bucketFlag:
			if err := v.bucket(fmt.Sprintf("%s: bucket %q", what, k), val, depth); err != nil {
				return nil, nil, err
			}
		default:
			return nil, nil, bad("%s: element %d has flags %#x", what, i, flags)
		}
	}
	return first, prev, nil
}

// bucket checks a bucket's value: its root page, or its inline page.
func (v *verifier) bucket(what string, val []byte, depth int) error {
	if len(val) < bucketSize {
		return bad("%s: %d-byte bucket header", what, len(val))
	}
	root := native.Uint64(val)
	if root != 0 {
		_, _, err := v.tree(root, nil, nil, depth+1)
		return err
	}
	p := val[bucketSize:]
	if len(p) < pageHeaderSize {
		return bad("%s: inline page cut short", what)
	}
	if flags := native.Uint16(p[8:]); flags != leafPage {
		return bad("%s: inline page has type %#x", what, flags)
	}
	count := int(native.Uint16(p[10:]))
	if err := elems(what, count, p); err != nil {
		return err
	}
	for i := range count {
		// bbolt never makes a bucket that holds buckets inline.
		if native.Uint32(p[pageHeaderSize+i*elemSize:]) != 0 {
			return bad("%s: inline bucket holds a bucket", what)
		}
	}
	_, _, err := v.leaf(what, count, p, nil, nil, depth)
	return err
}
