//go:build unix

package store

import (
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"

	"dht/app/state"
	"dht/dataset"
)

// A new file is written out to preallocSize at once (blocks allocated, not
// a hole beyond bbolt's first pages), so that commits overwrite blocks instead of allocating them; the
// file stays a valid bbolt file that reopens with its contents.
func TestNewFilesArePreallocated(t *testing.T) {
	dir := t.TempDir()
	check := func(path string) {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			t.Skip("no block counts on this system")
		}
		// bbolt's first pages may hold a hole of its own making.
		if fi.Size() < preallocSize || st.Blocks*512 < preallocSize-64<<10 {
			t.Fatalf("%s: size %d, %d bytes allocated; want %d, nearly all allocated", path, fi.Size(), st.Blocks*512, preallocSize)
		}
	}
	sp := filepath.Join(dir, "server.db")
	sdb, err := OpenServer(sp)
	if err != nil {
		t.Fatal(err)
	}
	check(sp)
	if err := sdb.Close(); err != nil {
		t.Fatal(err)
	}
	pp := filepath.Join(dir, "peer.db")
	db, err := OpenPeer(pp)
	if err != nil {
		t.Fatal(err)
	}
	check(pp)
	id := sampleIdentity()
	mustApply(t, db, state.Batch{Identity: &id, Put: []dataset.Record{aruba, civ}})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = OpenPeer(pp); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check(pp)
	if gotID, recs := mustLoadPeer(t, db); gotID != id || !reflect.DeepEqual(recs, slotOrder(aruba, civ)) {
		t.Fatalf("after reopen: %+v %q", gotID, recs)
	}
}
