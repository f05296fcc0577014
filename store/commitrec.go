package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// A commit record says what a commit made with one fdatasync wrote before
// its meta page, so that an open can tell whether all of it reached the
// disk.
//
// bbolt commits with two fdatasyncs: the pages, then the meta page that
// names them, so that the meta page never reaches the disk before them. A
// file committed with the raw calls (rawio_linux.go) writes the pages and
// the meta page and syncs once, and the meta page carries this record of
// the pages written: their runs and a CRC-32C of their bytes, in the order
// written, with the transaction's id. Whatever order the disk puts the
// writes in when the power goes, the record and the meta page it sits in
// arrive together, since it lies in the page's first 512-byte sector
// (bbolt's meta ends at byte 80): if the meta page bbolt would use carries
// a record of its transaction and the pages it names do not hold what was
// written, the commit is torn, and the open that writes the file rolls it
// back to the meta page before (openers: file.verify). That commit was
// never reported done, since its fdatasync had not returned; the one
// before it was, and its pages are intact: bbolt writes a commit into
// pages that were free when the commit before it was made.
//
// A commit whose pages make more runs than the record holds syncs them
// before its meta page, as bbolt does, and records none. A meta page with
// no record, or one of another transaction (the page was last written
// with bbolt's own syncs), is taken as it is.
type commitRec struct {
	txid uint64
	crc  uint32
	runs []pageRun
}

// pageRun is n pages from pgid, written by one commit.
type pageRun struct {
	pgid uint64
	n    uint32
}

const (
	recOff     = 96         // in the meta page: after bbolt's page header (16) and meta (64), with room
	recEnd     = 512        // the page's first sector, written whole
	recMagic1  = 0x64687431 // "dht1": a record without a checksum of its own
	recMagic   = 0x64687432 // "dht2": its last 4 bytes, a CRC-32C of the rest (recSumAt)
	recHeader  = 4 + 8 + 4 + 2
	recRunSize = 8 + 4
	recSumAt   = recEnd - recOff - 4
	maxRuns    = (recSumAt - recHeader) / recRunSize
)

// errRecDamaged: the record of the meta page bbolt would use fails its
// own checksum. It reaches the disk with its meta page, in the page's first
// sector, which a disk writes whole: it was damaged since, and whether the
// commit's pages are whole cannot be told.
var errRecDamaged = errors.New("the record of the last commit is damaged")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var le = binary.LittleEndian

// reset starts the record of a new commit.
func (r *commitRec) reset() {
	r.txid, r.crc, r.runs = 0, 0, r.runs[:0]
}

// wrote adds b, written at page pgid, to the record.
func (r *commitRec) wrote(pgid uint64, b []byte, pageSize int) {
	n := uint32((len(b) + pageSize - 1) / pageSize)
	r.crc = crc32.Update(r.crc, castagnoli, b)
	if k := len(r.runs); k > 0 && r.runs[k-1].pgid+uint64(r.runs[k-1].n) == pgid {
		r.runs[k-1].n += n
		return
	}
	r.runs = append(r.runs, pageRun{pgid, n})
}

// recRuns is the most runs a record is given: maxRuns, less in tests.
var recRuns = maxRuns

// fits reports whether the record's runs fit in a meta page.
func (r *commitRec) fits() bool { return len(r.runs) <= recRuns }

// put writes the record into meta page page (at least recEnd bytes).
func (r *commitRec) put(page []byte) {
	b := page[recOff:recEnd]
	clear(b)
	le.PutUint32(b[0:], recMagic)
	le.PutUint64(b[4:], r.txid)
	le.PutUint32(b[12:], r.crc)
	le.PutUint16(b[16:], uint16(len(r.runs)))
	for i, run := range r.runs {
		at := b[recHeader+i*recRunSize:]
		le.PutUint64(at, run.pgid)
		le.PutUint32(at[8:], run.n)
	}
	le.PutUint32(b[recSumAt:], crc32.Checksum(b[:recSumAt], castagnoli))
}

// readRec reads the record in meta page page (its first recEnd bytes); ok
// is false if there is none.
func readRec(page []byte) (r commitRec, ok bool) {
	r, ok, _ = readRecChecked(page)
	return r, ok
}

// readRecChecked is readRec, and damaged when the record fails its own
// checksum (ok is then false).
func readRecChecked(page []byte) (r commitRec, ok, damaged bool) {
	if len(page) < recEnd {
		return r, false, false
	}
	b := page[recOff:recEnd]
	limit := maxRuns
	switch le.Uint32(b) {
	case recMagic:
		if le.Uint32(b[recSumAt:]) != crc32.Checksum(b[:recSumAt], castagnoli) {
			return r, false, true
		}
	case recMagic1: // written before records had a checksum, up to the sector's end
		limit = (recEnd - recOff - recHeader) / recRunSize
	default:
		return r, false, false
	}
	n := int(le.Uint16(b[16:]))
	if n > limit {
		return r, false, false
	}
	r.txid, r.crc = le.Uint64(b[4:]), le.Uint32(b[12:])
	r.runs = make([]pageRun, n)
	for i := range r.runs {
		at := b[recHeader+i*recRunSize:]
		r.runs[i] = pageRun{le.Uint64(at), le.Uint32(at[8:])}
	}
	return r, true, false
}

// tornCommit looks at the meta page bbolt would use in the file r (size
// bytes): if it carries a commit record of its transaction and the pages
// the record names do not hold what the commit wrote, it reports that meta
// page's offset and transaction; torn is false otherwise, and for a file
// that is no bbolt file (verifyFile says what is wrong with it).
func tornCommit(r io.ReaderAt, size int64) (off int64, txid uint64, torn bool, err error) {
	v := verifier{r: r, size: size}
	ps, ok := v.pageSize()
	if !ok || ps < 1024 || ps > 1<<24 || uint64(size) < 2*ps {
		return 0, 0, false, nil
	}
	m, off := v.inUse(ps)
	if !m.valid {
		return 0, 0, false, nil
	}
	page := make([]byte, recEnd)
	if _, err := r.ReadAt(page, off); err != nil {
		return 0, 0, false, err
	}
	rec, ok, damaged := readRecChecked(page)
	if damaged {
		return 0, m.txid, false, errRecDamaged
	}
	if !ok || rec.txid != m.txid {
		return 0, 0, false, nil
	}
	crc, whole, err := runsCRC(r, size, ps, m.pgid, rec.runs)
	if err != nil {
		return 0, 0, false, err
	}
	if !whole {
		return off, m.txid, true, nil // its pages are not all there
	}
	return off, m.txid, crc != rec.crc, nil
}

// runsCRC is the CRC-32C of the pages runs name in r (size bytes, pages of
// ps bytes), read in order, as commitRec.wrote summed them as they were
// written; whole is false if a run lies outside the pages below the
// high-water mark hwm or past the file's end.
func runsCRC(r io.ReaderAt, size int64, ps, hwm uint64, runs []pageRun) (crc uint32, whole bool, err error) {
	buf := make([]byte, 0, 64*ps)
	for _, run := range runs {
		start, n := int64(run.pgid)*int64(ps), int64(run.n)*int64(ps)
		if run.pgid < 2 || run.n == 0 || run.pgid >= hwm || uint64(run.n) > hwm-run.pgid || start+n > size {
			return 0, false, nil
		}
		for n > 0 {
			k := min(n, int64(cap(buf)))
			b := buf[:k]
			if _, err := r.ReadAt(b, start); err != nil {
				return 0, false, fmt.Errorf("read page %d: %w", start/int64(ps), err)
			}
			crc = crc32.Update(crc, castagnoli, b)
			start, n = start+k, n-k
		}
	}
	return crc, true, nil
}

// lostCommit looks for a last commit whose meta page was damaged after it
// reached the disk: the meta page bbolt would not use fails its checksum
// (not one rollBack cleared, which reads 0), yet carries the commit record
// of the transaction right after the one bbolt would use. That commit was
// whole when it was written (its record and its meta page share the
// page's first sector, which a disk writes whole; a commit whose pages did
// not all arrive is tornCommit's), so it was reported done: bbolt, taking
// the meta page before it, would read the file without it, and say
// nothing. It reports that commit's transaction; lost is false otherwise.
func lostCommit(r io.ReaderAt, size int64) (txid uint64, lost bool, err error) {
	v := verifier{r: r, size: size}
	ps, ok := v.pageSize()
	if !ok || ps < 1024 || ps > 1<<24 || uint64(size) < 2*ps {
		return 0, false, nil
	}
	m, off := v.inUse(ps)
	if !m.valid {
		return 0, false, nil
	}
	other := int64(ps) - off
	page := make([]byte, recEnd)
	if _, err := r.ReadAt(page, other); err != nil {
		return 0, false, err
	}
	om, _ := v.readMeta(other)
	rec, ok := readRec(page)
	cleared := native.Uint64(page[pageHeaderSize+metaChecksum:]) == 0
	if om.valid || cleared || !ok || rec.txid != m.txid+1 {
		return 0, false, nil
	}
	return rec.txid, true, nil
}

// lostWhy says what lostCommit found, for inspect and for an open alike.
func lostWhy(txid uint64) string {
	return fmt.Sprintf("the meta page of its last commit (transaction %d) is damaged, though that commit reached the disk whole: read from the meta page before it, the file would lack a change reported done", txid)
}
