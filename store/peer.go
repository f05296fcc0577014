package store

import (
	"fmt"
	"os"
	"sync"

	"dht/app/state"
	"dht/dataset"

	bolt "go.etcd.io/bbolt"
)

type slotKV struct {
	pos int
	kv
}

// peerWrite is a Batch, encoded and checked before any transaction starts.
type peerWrite struct {
	identity []byte
	clear    bool
	put      []slotKV
}

func prepareApply(b state.Batch) (peerWrite, error) {
	w := peerWrite{clear: b.Clear}
	if b.Identity != nil {
		v, err := encodeIdentity(*b.Identity)
		if err != nil {
			return w, err
		}
		w.identity = seal(v)
	}
	w.put = make([]slotKV, 0, len(b.Put))
	// Every value goes into one buffer, sized first: one allocation for
	// the batch rather than one a record (bbolt keeps the slices it is
	// given until the commit, and none outlives it).
	size := 0
	for _, r := range b.Put {
		size += recordLen(r)
	}
	buf := make([]byte, 0, size)
	for _, r := range b.Put {
		pos, k, err := recordKey(r)
		if err != nil {
			return w, err
		}
		start := len(buf)
		if buf, err = appendRecord(buf, r); err != nil {
			return w, err
		}
		w.put = append(w.put, slotKV{pos, kv{k, buf[start:len(buf):len(buf)]}})
	}
	return w, nil
}

// PeerDB is a peer's bbolt file: its identity and its local hash table. It is
// safe for concurrent use.
type PeerDB struct {
	db   *bolt.DB
	file *file

	// rd is a read transaction Lookup keeps open between writes: beginning
	// one for every query was most of a lookup's cost. Whatever writes or
	// closes ends it first (endRead): bbolt cannot grow a file's mapping
	// under an open reader (a write would wait for it forever), and a
	// reader would keep the pages a write frees from being reused. A write
	// holds mu until it has committed, so that no Lookup opens a reader
	// in the meantime.
	mu sync.Mutex
	rd *bolt.Tx
}

// endRead ends the kept read transaction, if any; with mu held.
func (p *PeerDB) endRead() {
	if p.rd != nil && p.file.failed() == nil { // else bbolt is not to be called again
		_ = p.rd.Rollback() // a read-only transaction: nothing to lose
	}
	p.rd = nil
}

// OpenPeer opens or creates the peer file at path. A file held by another
// process gives ErrLocked after a second; a damaged or inconsistent one
// gives ErrDamaged.
func OpenPeer(path string) (*PeerDB, error) {
	db, h, err := open(path, kindPeer, bucketIdentity)
	if err != nil {
		return nil, err
	}
	p := &PeerDB{db: db, file: h}
	id, recs, err := p.Load()
	if err = refuse(path, kindPeer, err, checkPeer(id, recs)); err != nil {
		err = h.refused(err)
		p.Close()
		return nil, err
	}
	return p, nil
}

// Apply writes the whole batch in one transaction: all of it or none of it.
func (p *PeerDB) Apply(b state.Batch) error {
	w, err := prepareApply(b)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endRead()
	return p.file.update(p.db, func(tx *bolt.Tx) error {
		if w.clear {
			// The root's keys name the buckets: a cursor lists them
			// without opening each (tx.ForEach would).
			var slots [][]byte
			c := tx.Cursor()
			for name, _ := c.First(); name != nil; name, _ = c.Next() {
				if pos, ok := slotPos(name); ok {
					slots = append(slots, slotBucket(pos))
				}
			}
			for _, name := range slots {
				if err := tx.DeleteBucket(name); err != nil {
					return fmt.Errorf("store: delete bucket %s: %w", name, err)
				}
			}
		}
		if w.identity != nil {
			id := tx.Bucket(bucketIdentity)
			if id == nil {
				return fmt.Errorf("store: peer file lacks the identity bucket: %w", ErrCorrupt)
			}
			if err := id.Put(keyIdentity, w.identity); err != nil {
				return fmt.Errorf("store: put identity: %w", err)
			}
		}
		var slots [dataset.TableSize]*bolt.Bucket
		for _, r := range w.put {
			b := slots[r.pos]
			if b == nil {
				var err error
				if b, err = tx.CreateBucketIfNotExists(slotBucket(r.pos)); err != nil {
					return fmt.Errorf("store: create slot %d: %w", r.pos, err)
				}
				slots[r.pos] = b
			}
			if err := b.Put([]byte(r.k), r.v); err != nil {
				return fmt.Errorf("store: put slot %d record %s: %w", r.pos, quote(r.k), err)
			}
		}
		return nil
	})
}

// Load returns the identity (zero if none was ever written) and every record,
// in slot order and, within a slot, by Long Name bytes.
func (p *PeerDB) Load() (state.Identity, []dataset.Record, error) {
	var (
		id   state.Identity
		recs []dataset.Record
	)
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.file.guard(func() error {
		return p.db.View(func(tx *bolt.Tx) error {
			var err error
			id, recs, err = loadPeer(tx, func(int, int) {})
			return err
		})
	})
	if err != nil {
		return state.Identity{}, nil, dbErr(err)
	}
	return id, recs, nil
}

// Identity reads the registration and place the file holds (zero if none
// was ever written), without its table.
func (p *PeerDB) Identity() (state.Identity, error) {
	var id state.Identity
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.file.guard(func() error {
		return p.db.View(func(tx *bolt.Tx) error {
			var err error
			id, err = loadIdentity(tx)
			return err
		})
	})
	if err != nil {
		return state.Identity{}, dbErr(err)
	}
	return id, nil
}

// loadIdentity reads a peer file's identity (zero if none).
func loadIdentity(tx *bolt.Tx) (state.Identity, error) {
	if b := tx.Bucket(bucketIdentity); b != nil {
		if v := b.Get(keyIdentity); v != nil {
			v, err := unseal(sealedValues(tx), "the identity", v)
			if err != nil {
				return state.Identity{}, err
			}
			return decodeIdentity(v)
		}
	}
	return state.Identity{}, nil
}

// loadPeer reads a peer file. slot is called with each non-empty slot's
// position and the index in the returned records where it starts.
func loadPeer(tx *bolt.Tx, slot func(pos, start int)) (state.Identity, []dataset.Record, error) {
	id, err := loadIdentity(tx)
	if err != nil {
		return state.Identity{}, nil, err
	}
	var recs []dataset.Record
	// Bucket names sort by position, so this walks the slots in order.
	err = tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		pos, ok := slotPos(name)
		if !ok {
			return nil
		}
		start := len(recs)
		err := b.ForEach(func(k, v []byte) error {
			r, err := decodeSlotRecord(pos, string(k), v)
			recs = append(recs, r)
			return err
		})
		if err != nil {
			return err
		}
		if len(recs) > start {
			slot(pos, start)
		}
		return nil
	})
	if err != nil {
		return state.Identity{}, nil, err
	}
	return id, recs, nil
}

// Lookup finds the record with this Long Name, compared whole, in the slot
// it hashes to. A query reads the file, not a copy in memory: a node's
// memory does not grow with its share of the dataset.
func (p *PeerDB) Lookup(longName string) (r dataset.Record, found bool, err error) {
	pos := dataset.Pos(longName)
	p.mu.Lock()
	defer p.mu.Unlock()
	// The file is read through bbolt's map: a file truncated under it
	// faults here instead of at the next commit.
	err = p.file.guard(func() error {
		if p.rd == nil {
			tx, err := p.db.Begin(false)
			if err != nil {
				return dbErr(err)
			}
			p.rd = tx
		}
		b := p.rd.Bucket(slotBucket(pos))
		var v []byte
		if b != nil {
			v = b.Get([]byte(longName))
		}
		if v == nil {
			return p.notFound(pos, b)
		}
		var err error
		r, err = decodeSlotRecord(pos, longName, v)
		found = err == nil
		return err
	})
	if err != nil {
		return dataset.Record{}, false, err
	}
	return r, found, nil
}

// notFound makes sure that a Long Name not in slot pos (bucket b, nil if
// the slot is empty) is not there because the file is whole and this
// process's, before the ring answers "not found": a record's checksum
// finds a changed value, but a changed key, or a file another program
// copied over this one while it was open, only reads as a record missing,
// and a member of a settled ring makes no commit that would notice. It
// reads the slot's every record (a query for a missing name is rare) and
// checks the file as a commit does. Under p.mu, in guard.
func (p *PeerDB) notFound(pos int, b *bolt.Bucket) error {
	if err := p.file.check(0); err != nil {
		return err
	}
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		_, err := decodeSlotRecord(pos, string(k), v)
		return err
	})
}

// Discard closes the file and, if nothing was ever written to it (no
// identity, no records: it was opened for a register the server refused),
// removes it.
func (p *PeerDB) Discard() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endRead()
	path := p.db.Path()
	empty := false
	// A file that is no longer the one at path is left alone: the path may
	// name another process's file now.
	err := p.file.check(0)
	if err == nil {
		err = p.file.guard(func() error {
			return p.db.View(func(tx *bolt.Tx) error {
				if b := tx.Bucket(bucketIdentity); b != nil && b.Get(keyIdentity) != nil {
					return nil
				}
				empty = true
				return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
					if _, ok := slotPos(name); ok {
						empty = false
					}
					return nil
				})
			})
		})
	}
	if cerr := p.file.close(p.db); err == nil {
		err = cerr
	}
	if err != nil {
		return dbErr(err)
	}
	if empty {
		return os.Remove(path)
	}
	return nil
}

// RolledBack says, for the person running the peer, that the open rolled
// back a last commit that did not reach the disk whole; "" if it did not.
func (p *PeerDB) RolledBack() string { return p.file.rollbackNote() }

// Close closes the file.
func (p *PeerDB) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endRead()
	return p.file.close(p.db)
}

// decodeSlotRecord decodes a record and checks that it belongs in slot pos.
func decodeSlotRecord(pos int, key string, v []byte) (dataset.Record, error) {
	r, err := decodeRecord(key, v)
	if err != nil {
		return r, err
	}
	if r.Pos() != pos {
		return r, fmt.Errorf("store: record %s hashes to slot %d but is stored in slot %d: %w",
			quote(r.LongName), r.Pos(), pos, ErrCorrupt)
	}
	return r, nil
}
