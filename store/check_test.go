package store

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"dht/app/state"
	"dht/dataset"
)

// TestInconsistentFiles: files whose every value decodes but whose values
// contradict each other (break a rule of state's Check methods, tested
// rule by rule there), or whose buckets are not those of their kind, are
// refused by OpenServer, OpenPeer and Inspect alike, saying what is wrong.
func TestInconsistentFiles(t *testing.T) {
	withState := func(edit func(*state.ServerState)) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			st := sampleState()
			edit(&st)
			writeServer(t, path, st, nil)
		}
	}
	identity := func(edit func(*state.Identity)) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			id := sampleIdentity()
			edit(&id)
			writePeer(t, path, state.Batch{Identity: &id, Put: []dataset.Record{aruba}})
		}
	}
	raw := func(kind string, edit func(tx *bolt.Tx) error) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			if kind == kindServer {
				writeServer(t, path, sampleState(), nil)
			} else {
				id := sampleIdentity()
				writePeer(t, path, state.Batch{Identity: &id, Put: []dataset.Record{aruba}})
			}
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.Update(edit); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name  string
		kind  string
		write func(t *testing.T, path string)
		says  string
	}{
		{"a member that is not registered", kindServer, withState(func(st *state.ServerState) {
			st.DHT.Members = append(st.DHT.Members, "zed")
		}), `member "zed" is not registered`},
		{"a peer id outside its ring", kindPeer, identity(func(id *state.Identity) {
			id.ID = 3
		}), "id 3 in a ring of 1"},
		// A table its place does not own (a code review: opened, and
		// inspected as the peer's, though no commit of a peer writes one).
		{"a record another id owns", kindPeer, identity(func(id *state.Identity) {
			id.ID, id.N = 1, 3
		}), `record "Aruba" (slot 138) belongs to id 0 of a ring of 3, not to this node's id 1`},
		{"a server file without its users", kindServer, raw(kindServer, func(tx *bolt.Tx) error {
			return tx.DeleteBucket(bucketUsers)
		}), "a bucket is missing"},
		{"a server file with an unknown bucket", kindServer, raw(kindServer, func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket([]byte("usars"))
			return err
		}), `unknown bucket "usars"`},
		{"a peer file with a slot past the table", kindPeer, raw(kindPeer, func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket([]byte("slot/353"))
			return err
		}), `unknown bucket "slot/353"`},
		{"an unknown key in the dht bucket", kindServer, raw(kindServer, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketDHT).Put([]byte("stale"), []byte{0})
		}), `unknown key "stale" in bucket dht`},
		{"a bucket where the identity belongs", kindPeer, raw(kindPeer, func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketIdentity)
			if err := b.Delete(keyIdentity); err != nil {
				return err
			}
			_, err := b.CreateBucket(keyIdentity)
			return err
		}), `unknown key "identity" in bucket identity`},
		{"a value where only buckets belong", kindPeer, raw(kindPeer, func(tx *bolt.Tx) error {
			return tx.Cursor().Bucket().Put([]byte("stray"), []byte("x"))
		}), `a value "stray" where only buckets belong`},
		{"a user whose state does not decode", kindServer, raw(kindServer, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketUsers).Put([]byte("dave"), seal([]byte{7, 4, 10, 0, 0, 4, 0x13, 0x8c}))
		}), "a value does not decode"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), c.kind+".db")
			c.write(t, path)
			err := openAs(c.kind, path)
			_, ierr := inspect(t, path)
			for what, err := range map[string]error{"open": err, "Inspect": ierr} {
				if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.says) {
					t.Errorf("%s: got %v, want ErrDamaged naming the file and saying %q", what, err, c.says)
				}
			}
		})
	}
}
