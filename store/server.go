package store

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"dht/app/state"
)

// kv is an encoded key and value.
type kv struct {
	k string
	v []byte
}

// serverWrite is a Save, encoded and checked before any transaction starts,
// so that a bad value changes nothing and both twins reject the same input.
type serverWrite struct {
	users  []kv // sorted by name, no duplicates
	dht    []byte
	reply  *kv
	forget []string // reply keys to delete
}

func prepareSave(st state.ServerState, reply *state.CachedReply, forget []netip.AddrPort) (serverWrite, error) {
	var w serverWrite
	w.users = make([]kv, 0, len(st.Users))
	for _, u := range st.Users {
		v, err := encodeUser(u)
		if err != nil {
			return w, err
		}
		w.users = append(w.users, kv{u.Name, seal(v)})
	}
	slices.SortFunc(w.users, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	for i := 1; i < len(w.users); i++ {
		if w.users[i].k == w.users[i-1].k {
			return w, fmt.Errorf("store: user %s listed twice: %w", quote(w.users[i].k), ErrInvalid)
		}
	}
	var err error
	if w.dht, err = encodeDHT(st.DHT); err != nil {
		return w, err
	}
	w.dht = seal(w.dht)
	if reply != nil {
		k, v, err := encodeReply(*reply)
		if err != nil {
			return w, err
		}
		w.reply = &kv{k, seal(v)}
	}
	for _, a := range forget {
		k, err := replyKey(a)
		if err != nil {
			return w, err
		}
		if w.reply == nil || k != w.reply.k {
			w.forget = append(w.forget, k)
		}
	}
	return w, nil
}

// ServerDB is the server's bbolt file. It is safe for concurrent use.
type ServerDB struct {
	db   *bolt.DB
	file *file
}

// OpenServer opens or creates the server file at path. A file held by
// another process gives ErrLocked after a second; a damaged one, or one
// whose state breaks the rules every saved state keeps, gives ErrDamaged.
func OpenServer(path string) (*ServerDB, error) {
	db, h, err := open(path, kindServer, bucketUsers, bucketDHT, bucketReplies)
	if err != nil {
		return nil, err
	}
	s := &ServerDB{db: db, file: h}
	st, _, err := s.Load()
	if err = refuse(path, kindServer, err, st.Check()); err != nil {
		err = h.refused(err)
		s.Close()
		return nil, err
	}
	return s, nil
}

// Load returns the saved state (users sorted by name) and every cached reply
// (sorted by address text).
func (s *ServerDB) Load() (st state.ServerState, replies []state.CachedReply, err error) {
	err = s.file.guard(func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			st, replies, err = loadServer(tx)
			return err
		})
	})
	if err != nil {
		return state.ServerState{}, nil, dbErr(err)
	}
	return st, replies, nil
}

func loadServer(tx *bolt.Tx) (state.ServerState, []state.CachedReply, error) {
	var (
		st      state.ServerState
		replies []state.CachedReply
	)
	users, dhtB, repB, err := serverBuckets(tx)
	if err != nil {
		return st, nil, err
	}
	sealed := sealedValues(tx)
	err = users.ForEach(func(k, v []byte) error {
		v, err := unseal(sealed, "user "+quote(string(k)), v)
		if err != nil {
			return err
		}
		u, err := decodeUser(string(k), v)
		st.Users = append(st.Users, u)
		return err
	})
	if err != nil {
		return st, nil, err
	}
	if v := dhtB.Get(keyState); v != nil {
		if v, err = unseal(sealed, "the dht state", v); err != nil {
			return st, nil, err
		}
		if st.DHT, err = decodeDHT(v); err != nil {
			return st, nil, err
		}
	}
	err = repB.ForEach(func(k, v []byte) error {
		v, err := unseal(sealed, "the reply cached for "+string(k), v)
		if err != nil {
			return err
		}
		r, err := decodeReply(string(k), v)
		replies = append(replies, r)
		return err
	})
	return st, replies, err
}

func serverBuckets(tx *bolt.Tx) (users, dht, replies *bolt.Bucket, err error) {
	users, dht, replies = tx.Bucket(bucketUsers), tx.Bucket(bucketDHT), tx.Bucket(bucketReplies)
	if users == nil || dht == nil || replies == nil {
		return nil, nil, nil, fmt.Errorf("store: server file lacks a bucket: %w", ErrCorrupt)
	}
	return users, dht, replies, nil
}

// Save writes st, and reply if it is not nil, in one transaction: the users
// bucket becomes exactly st.Users, the DHT state is replaced, reply
// replaces the one cached for its address, and the replies cached for the
// addresses in forget (but reply's) are deleted.
func (s *ServerDB) Save(st state.ServerState, reply *state.CachedReply, forget ...netip.AddrPort) error {
	w, err := prepareSave(st, reply, forget)
	if err != nil {
		return err
	}
	return s.file.update(s.db, func(tx *bolt.Tx) error {
		users, dhtB, repB, err := serverBuckets(tx)
		if err != nil {
			return err
		}
		// Delete the users that are gone and put only those that changed,
		// so an unchanged registry dirties no page.
		want := make(map[string][]byte, len(w.users))
		for _, u := range w.users {
			want[u.k] = u.v
		}
		var gone []string
		err = users.ForEach(func(k, v []byte) error {
			nv, ok := want[string(k)]
			switch {
			case !ok:
				gone = append(gone, string(k))
			case bytes.Equal(v, nv):
				delete(want, string(k))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, name := range gone {
			if err := users.Delete([]byte(name)); err != nil {
				return fmt.Errorf("store: delete user %s: %w", quote(name), err)
			}
		}
		for _, u := range w.users {
			if _, changed := want[u.k]; !changed {
				continue
			}
			if err := users.Put([]byte(u.k), u.v); err != nil {
				return fmt.Errorf("store: put user %s: %w", quote(u.k), err)
			}
		}
		if err := dhtB.Put(keyState, w.dht); err != nil {
			return fmt.Errorf("store: put dht state: %w", err)
		}
		for _, k := range w.forget {
			if err := repB.Delete([]byte(k)); err != nil {
				return fmt.Errorf("store: delete reply for %s: %w", k, err)
			}
		}
		if w.reply != nil {
			if err := repB.Put([]byte(w.reply.k), w.reply.v); err != nil {
				return fmt.Errorf("store: put reply for %s: %w", w.reply.k, err)
			}
		}
		return nil
	})
}

// Close closes the file.
func (s *ServerDB) Close() error { return s.file.close(s.db) }

// RolledBack says, for the person running the server, that the open rolled
// back a last commit that did not reach the disk whole; "" if it did not.
func (s *ServerDB) RolledBack() string { return s.file.rollbackNote() }
