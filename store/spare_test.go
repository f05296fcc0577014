package store

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"dht/app/state"
)

// lastPage is where bbolt's pages end in db (tx.Size).
func lastPage(t *testing.T, db *bolt.DB) int64 {
	t.Helper()
	var n int64
	if err := db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFreshFilesHaveSparePages: a new file's first commits (a node's
// setup, a server's save) reuse pages the creation left free instead of
// adding pages past bbolt's last, and the file holds no trace of them.
func TestFreshFilesHaveSparePages(t *testing.T) {
	dir := t.TempDir()
	p, err := OpenPeer(filepath.Join(dir, "peer.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	before := lastPage(t, p.db)
	id := sampleIdentity()
	for i := range 3 { // a setup, a teardown, a setup
		recs := synthetic(30, uint64(i))
		if i == 1 {
			recs = nil
		}
		mustApply(t, p, state.Batch{Identity: &id, Clear: true, Put: recs})
	}
	if after := lastPage(t, p.db); after != before {
		t.Fatalf("peer file: bbolt's pages ended at %d, after three commits at %d; want no pages added", before, after)
	}

	s, err := OpenServer(filepath.Join(dir, "server.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before = lastPage(t, s.db)
	if err := s.Save(sampleState(), nil); err != nil {
		t.Fatal(err)
	}
	if after := lastPage(t, s.db); after != before {
		t.Fatalf("server file: bbolt's pages ended at %d, after a save at %d; want no pages added", before, after)
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketSpare) != nil {
			t.Error("the spare pages' bucket is still in the file")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestCreationStoppedHalfway: a file whose creation stopped after the
// spare pages' commit (the process killed) is a fresh file to the next
// open, which makes it a dht file as usual.
func TestCreationStoppedHalfway(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peer.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucketSpare)
		if err != nil {
			return err
		}
		return b.Put(bucketSpare, make([]byte, spareBytes))
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	p, err := OpenPeer(path)
	if err != nil {
		t.Fatalf("open after a creation stopped halfway: %v", err)
	}
	id := sampleIdentity()
	mustApply(t, p, state.Batch{Identity: &id, Put: synthetic(5, 1)})
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if p, err = OpenPeer(path); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer p.Close()
	if gotID, recs := mustLoadPeer(t, p); gotID != id || len(recs) != 5 {
		t.Fatalf("after reopen: %+v, %d records", gotID, len(recs))
	}
}
