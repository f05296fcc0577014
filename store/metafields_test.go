package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A second meta page, the one in use, whose page size differs from the
// first's but whose checksum holds (written by a faulty program, or
// damaged and resealed) is refused as damaged: the checksum alone does not
// vouch for its fields, and the pages are checked at the first's size.
func TestMetaPagesDisagreeOnPageSize(t *testing.T) {
	_, _, size := realFiles(t)
	dir := t.TempDir()
	for _, f := range realCopies(t) {
		img := f.img
		m0, m1 := img.data[pageHeaderSize:], img.data[testPageSize+pageHeaderSize:]
		txid := max(binary.NativeEndian.Uint64(m0[metaTxid:]), binary.NativeEndian.Uint64(m1[metaTxid:]))
		binary.NativeEndian.PutUint64(m1[metaTxid:], txid+1)
		binary.NativeEndian.PutUint32(m1[8:], 2*testPageSize)
		h := fnv.New64a()
		h.Write(m1[:metaChecksum])
		binary.NativeEndian.PutUint64(m1[metaChecksum:], h.Sum64())
		refusedSaying(t, dir, f.kind, img, size, "page size changed", "the meta pages disagree on the page size (4096, 8192)")
	}
}

// A freelist that names a page in use, or leaves a page out, is refused:
// bbolt would hand the page in use out again, or lose the page left out.
// (A freelist page carries no checksum.)
func TestFreelistMismatchRefused(t *testing.T) {
	_, _, size := realFiles(t)
	tests := []struct {
		name string
		edit func(ids []byte, count int, root uint64) int // returns the new count
		want string
	}{
		{"a page in use listed free", func(ids []byte, count int, root uint64) int {
			binary.NativeEndian.PutUint64(ids[8*count:], root)
			return count + 1
		}, "is both free and in use"},
		{"a free page left out", func(ids []byte, count int, _ uint64) int { return count - 1 }, "is neither free nor in use"},
		{"a meta page listed free", func(ids []byte, count int, _ uint64) int {
			binary.NativeEndian.PutUint64(ids[8*count:], 1)
			return count + 1
		}, "free page 1 out of range"},
		{"a page listed free twice", func(ids []byte, count int, _ uint64) int {
			copy(ids[8*count:], ids[:8])
			return count + 1
		}, "freed twice"},
		{"not a freelist page", func(ids []byte, count int, _ uint64) int { return -1 }, "has type 0x2"},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		for _, f := range realCopies(t) {
			img := f.img
			m := metaInUse(img)
			fl := binary.NativeEndian.Uint64(m[32:])
			p := img.data[fl*testPageSize:]
			count := int(binary.NativeEndian.Uint16(p[10:]))
			if count == 0 || count >= 0xFFFF-1 {
				t.Fatalf("%s file: freelist page %d holds %d ids", f.kind, fl, count)
			}
			if count = tt.edit(p[pageHeaderSize:], count, binary.NativeEndian.Uint64(m[16:])); count < 0 {
				binary.NativeEndian.PutUint16(p[8:], leafPage)
			} else {
				binary.NativeEndian.PutUint16(p[10:], uint16(count))
			}
			refusedSaying(t, dir, f.kind, img, size, tt.name, tt.want)
		}
	}
}

// A page whose overflow count runs to the last page or over another page
// in use is refused (bbolt would read past the file, or free a page in use
// with it).
func TestPageOverflowChecked(t *testing.T) {
	_, _, size := realFiles(t)
	tests := []struct {
		name     string
		freelist bool // the freelist page, the first read, else a leaf page
		overflow func(id, hwm uint64) uint32
		want     string
	}{
		{"to the last page and one past it", true, func(id, hwm uint64) uint32 { return uint32(hwm - id) }, "overflow pages run past the last page"},
		{"over the next page, in use", false, func(uint64, uint64) uint32 { return 1 }, "is used twice"},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		for _, f := range realCopies(t) {
			img := f.img
			m := metaInUse(img)
			hwm, fl := binary.NativeEndian.Uint64(m[40:]), binary.NativeEndian.Uint64(m[32:])
			free := freePages(img)
			// A page of the tree, with no overflow, followed by another.
			id := uint64(0)
			for p := uint64(2); p+1 < hwm && id == 0; p++ {
				h, next := img.data[p*testPageSize:], img.data[(p+1)*testPageSize:]
				if !free[p] && !free[p+1] && binary.NativeEndian.Uint32(h[12:]) == 0 &&
					binary.NativeEndian.Uint16(h[8:]) == leafPage && binary.NativeEndian.Uint16(next[8:])&(branchPage|leafPage) != 0 {
					id = p
				}
			}
			if id == 0 {
				t.Fatalf("%s file: no leaf page followed by a page in use", f.kind)
			}
			if tt.freelist {
				id = fl
			}
			binary.NativeEndian.PutUint32(img.data[id*testPageSize+12:], tt.overflow(id, hwm))
			refusedSaying(t, dir, f.kind, img, size, tt.name, tt.want)
		}
	}
}

// A leaf page whose keys are not in strict order (a key repeated) is
// refused: bbolt's binary search would miss keys.
func TestLeafKeyOrderChecked(t *testing.T) {
	_, _, size := realFiles(t)
	tests := []struct {
		name string
		edit func(p []byte, j, n int) // keys j and j+1 are of one length; n: the page's element count
		want string
	}{
		{"a key repeated", func(p []byte, j, n int) { copy(leafKey(p, j+1), leafKey(p, j)) }, "is not after key"},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		for _, f := range realCopies(t) {
			img := f.img
			// A leaf page under a branch, two keys in a row of one length.
			var p []byte
			j := 0
			free := freePages(img)
			for id := 2; (id+1)*testPageSize <= len(img.data) && p == nil; id++ {
				b := img.data[id*testPageSize : (id+1)*testPageSize]
				if free[uint64(id)] || binary.NativeEndian.Uint16(b[8:]) != branchPage {
					continue
				}
				for i := range int(binary.NativeEndian.Uint16(b[10:])) {
					child := binary.NativeEndian.Uint64(b[pageHeaderSize+i*elemSize+8:])
					c := img.data[child*testPageSize : (child+1)*testPageSize]
					if binary.NativeEndian.Uint16(c[8:]) != leafPage {
						continue
					}
					for k := range int(binary.NativeEndian.Uint16(c[10:])) - 1 {
						if len(leafKey(c, k)) == len(leafKey(c, k+1)) {
							p, j = c, k
							break
						}
					}
					if p != nil {
						break
					}
				}
			}
			if p == nil {
				t.Fatalf("%s, %s file: no leaf page for the test", tt.name, f.kind)
			}
			tt.edit(p, j, int(binary.NativeEndian.Uint16(p[10:])))
			refusedSaying(t, dir, f.kind, img, size, tt.name, tt.want)
		}
	}
}

// leafKey is key i of leaf page p, in p.
func leafKey(p []byte, i int) []byte {
	off := pageHeaderSize + i*elemSize
	pos, ksize := binary.NativeEndian.Uint32(p[off+4:]), binary.NativeEndian.Uint32(p[off+8:])
	return p[off+int(pos) : off+int(pos)+int(ksize)]
}

// A branch page's key that is not its child's first key is refused.
func TestBranchKeyChecked(t *testing.T) {
	_, _, size := realFiles(t)
	dir := t.TempDir()
	for _, f := range realCopies(t) {
		img := f.img
		// Key 1 of a branch page, its last byte made one less (still
		// after key 0): between the keys of its parent, not its child's.
		free := freePages(img)
		done := false
		for id := 2; (id+1)*testPageSize <= len(img.data) && !done; id++ {
			b := img.data[id*testPageSize : (id+1)*testPageSize]
			if free[uint64(id)] || binary.NativeEndian.Uint16(b[8:]) != branchPage || binary.NativeEndian.Uint16(b[10:]) < 2 {
				continue
			}
			key := func(i int) []byte {
				off := pageHeaderSize + i*elemSize
				pos, ksize := binary.NativeEndian.Uint32(b[off:]), binary.NativeEndian.Uint32(b[off+4:])
				return b[off+int(pos) : off+int(pos)+int(ksize)]
			}
			k := key(1)
			if k[len(k)-1] == 0 {
				continue
			}
			k[len(k)-1]--
			if bytes.Compare(key(0), k) >= 0 {
				k[len(k)-1]++
				continue
			}
			done = true
		}
		if !done {
			t.Fatalf("%s file: no branch page for the test", f.kind)
		}
		refusedSaying(t, dir, f.kind, img, size, "branch key changed", "is not the first key of its child page")
	}
}

// freePages is the set of pages the freelist of the meta page in use
// lists, and the freelist page itself.
func freePages(img image) map[uint64]bool {
	m := metaInUse(img)
	fl := binary.NativeEndian.Uint64(m[32:])
	free := map[uint64]bool{fl: true}
	p := img.data[fl*testPageSize:]
	for i := range int(binary.NativeEndian.Uint16(p[10:])) {
		free[binary.NativeEndian.Uint64(p[pageHeaderSize+8*i:])] = true
	}
	return free
}

// A bucket's value (its header, and its inline page when it has no page of
// its own) is checked before it is read.
func TestBucketValueChecked(t *testing.T) {
	_, _, size := realFiles(t)
	u32 := binary.NativeEndian.PutUint32
	tests := []struct {
		name string
		// edit changes leaf page p, whose element i is an inline bucket of
		// at least one element, its value at val.
		edit func(p []byte, i int, val []byte)
		want string
	}{
		{"header one byte short", func(p []byte, i int, _ []byte) { u32(p[pageHeaderSize+i*elemSize+12:], bucketSize-1) }, "15-byte bucket header"},
		{"inline page cut short", func(p []byte, i int, _ []byte) { u32(p[pageHeaderSize+i*elemSize+12:], bucketSize+8) }, "inline page cut short"},
		{"inline page of branch type", func(_ []byte, _ int, val []byte) {
			binary.NativeEndian.PutUint16(val[bucketSize+8:], branchPage)
		}, "inline page has type 0x1"},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		for _, f := range realCopies(t) {
			img := f.img
			free := freePages(img)
			var p, val []byte
			at := 0
			for id := 2; (id+1)*testPageSize <= len(img.data) && p == nil; id++ {
				b := img.data[id*testPageSize : (id+1)*testPageSize]
				if free[uint64(id)] || binary.NativeEndian.Uint16(b[8:]) != leafPage {
					continue
				}
				for i := range int(binary.NativeEndian.Uint16(b[10:])) {
					off := pageHeaderSize + i*elemSize
					flags, pos := binary.NativeEndian.Uint32(b[off:]), binary.NativeEndian.Uint32(b[off+4:])
					ksize, vsize := binary.NativeEndian.Uint32(b[off+8:]), binary.NativeEndian.Uint32(b[off+12:])
					v := b[off+int(pos+ksize) : off+int(pos+ksize+vsize)]
					if flags == bucketFlag && len(v) > bucketSize+pageHeaderSize && binary.NativeEndian.Uint64(v) == 0 &&
						binary.NativeEndian.Uint16(v[bucketSize+10:]) > 0 {
						p, val, at = b, v, i
						break
					}
				}
			}
			if p == nil {
				t.Fatalf("%s file: no inline bucket", f.kind)
			}
			tt.edit(p, at, val)
			refusedSaying(t, dir, f.kind, img, size, tt.name, tt.want)
		}
	}
}

// refusedSaying writes img to a file of the given kind in dir and checks
// that Inspect and the open both refuse it as damaged, saying want.
func refusedSaying(t *testing.T, dir, kind string, img image, size int64, name, want string) {
	t.Helper()
	path := filepath.Join(dir, kind+".db")
	img.write(t, path, size)
	_, ierr := Inspect(path, 100*time.Millisecond)
	err := openAs(kind, path)
	for _, e := range []error{ierr, err} {
		if !errors.Is(e, ErrDamaged) || !strings.Contains(e.Error(), want) {
			t.Errorf("%s, %s file: got %v, want ErrDamaged saying %q", name, kind, e, want)
		}
	}
}

// A check of the pages that panics (a fault of its own) refuses the file as
// damaged, saying the check failed, and lets the file go: the next open in
// the same process finds it free, not "in use by another process".
func TestAPanicInTheCheckLetsTheFileGo(t *testing.T) {
	_, _, size := realFiles(t)
	dir := t.TempDir()
	for _, f := range realCopies(t) {
		path := filepath.Join(dir, f.kind+".db")
		f.img.write(t, path, size)
		verifyHook = func() { panic("a fault of the check's own") }
		err := openAs(f.kind, path)
		verifyHook = nil
		if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "checking its pages failed: a fault of the check's own") {
			t.Fatalf("%s file: got %v, want ErrDamaged saying the check failed", f.kind, err)
		}
		if err := openAs(f.kind, path); err != nil {
			t.Fatalf("%s file: the next open: %v", f.kind, err)
		}
	}
}

// kindImage is a copy of a real file of a kind, to damage.
type kindImage struct {
	kind string
	img  image
}

// realCopies is a copy of the real server file and one of the real peer
// file.
func realCopies(t *testing.T) []kindImage {
	t.Helper()
	server, peer, _ := realFiles(t)
	return []kindImage{
		{kindServer, image{data: append([]byte(nil), server.data...)}},
		{kindPeer, image{data: append([]byte(nil), peer.data...)}},
	}
}

// metaInUse is the meta page bbolt takes: the one of the later
// transaction.
func metaInUse(img image) []byte {
	m := img.data[pageHeaderSize:]
	if other := img.data[testPageSize+pageHeaderSize:]; binary.NativeEndian.Uint64(other[metaTxid:]) > binary.NativeEndian.Uint64(m[metaTxid:]) {
		m = other
	}
	return m
}
