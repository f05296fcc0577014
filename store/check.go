package store

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// What an existing file of each kind holds, besides the meta bucket: the
// buckets it must have, and the only keys of the buckets that hold fixed
// keys. A bucket of any other name (a slot bucket's aside) is damage: a
// byte changed in "users" would otherwise hide every registration.
var (
	layoutBuckets = map[string][][]byte{
		kindServer: {bucketUsers, bucketDHT, bucketReplies},
		kindPeer:   {bucketIdentity},
	}
	fixedKeys = map[string][][]byte{
		string(bucketMeta):     {keyKind, keyVersion},
		string(bucketDHT):      {keyState},
		string(bucketIdentity): {keyIdentity},
	}
)

// checkLayout checks that tx, a dht file of the given kind, holds exactly
// the buckets of that kind, and no key in them that the layout lacks.
func checkLayout(path string, tx *bolt.Tx, kind string) error {
	want := layoutBuckets[kind]
	seen := 0
	c := tx.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v != nil {
			return damaged(path, kind+" file", fmt.Sprintf("a value %s where only buckets belong", quote(string(k))), nil)
		}
		_, slot := slotPos(k)
		switch {
		case bytes.Equal(k, bucketMeta):
		case slices.ContainsFunc(want, func(b []byte) bool { return bytes.Equal(b, k) }):
			seen++
		case kind == kindPeer && slot:
		default:
			return damaged(path, kind+" file", fmt.Sprintf("unknown bucket %s", quote(string(k))), nil)
		}
		keys, fixed := fixedKeys[string(k)]
		if !fixed {
			continue
		}
		bc := tx.Bucket(k).Cursor()
		for bk, bv := bc.First(); bk != nil; bk, bv = bc.Next() {
			if bv == nil || !slices.ContainsFunc(keys, func(b []byte) bool { return bytes.Equal(b, bk) }) {
				return damaged(path, kind+" file", fmt.Sprintf("unknown key %s in bucket %s", quote(string(bk)), k), nil)
			}
		}
	}
	if seen != len(want) {
		return damaged(path, kind+" file", "a bucket is missing", nil)
	}
	return nil
}

// refuse is the error for a file of the given kind whose values did not load
// (loadErr) or, loaded, broke its rules (checkErr); nil if neither.
func refuse(path, kind string, loadErr, checkErr error) error {
	var ke *kindError
	switch {
	case errors.As(loadErr, &ke), errors.Is(loadErr, ErrClosed):
		return loadErr // says what is wrong already
	case loadErr != nil:
		return damaged(path, kind+" file", "a value does not decode", loadErr)
	case checkErr != nil:
		return inconsistent(path, kind+" file", checkErr.Error())
	}
	return nil
}

// Check reports the first rule st breaks of those every state the server
// saves keeps, which OpenServer and Inspect check a file's state against: addresses valid and unique; with no DHT, no leader,
// member, leaver or wait, and every user Free; with one, members that are
// registered users, listed once, the leader first and in state Leader, the
// others InDHT, every other user Free, a wait exactly while the DHT is
// being built, left or torn down, and a leaver, one of two or more
// members, exactly while it is left.
func (st ServerState) Check() error {
	users := make(map[string]User, len(st.Users))
	addrs := make(map[netip.AddrPort]string, len(st.Users))
	for _, u := range st.Users {
		if !u.Addr.IsValid() || u.Addr.Port() == 0 {
			return fmt.Errorf("user %s has no address", quote(u.Name))
		}
		if other, ok := addrs[u.Addr]; ok {
			return fmt.Errorf("users %s and %s have the same address %s", quote(other), quote(u.Name), u.Addr)
		}
		users[u.Name], addrs[u.Addr] = u, u.Name
	}
	d := st.DHT
	if d.Phase == PhaseNone {
		if d.Leader != "" || len(d.Members) != 0 || d.Leaver != "" || d.Since != 0 {
			return errors.New("no DHT, but a leader, members, a leaver or a wait")
		}
		for _, u := range st.Users {
			if u.State != Free {
				return fmt.Errorf("user %s is %s, but there is no DHT", quote(u.Name), u.State)
			}
		}
		return nil
	}
	if len(d.Members) == 0 || d.Members[0] != d.Leader {
		return fmt.Errorf("the DHT's members do not start with its leader %s", quote(d.Leader))
	}
	for i, m := range d.Members {
		if slices.Index(d.Members, m) != i {
			return fmt.Errorf("member %s is listed twice", quote(m))
		}
		u, ok := users[m]
		if !ok {
			return fmt.Errorf("member %s is not registered", quote(m))
		}
		want := InDHT
		if i == 0 {
			want = Leader
		}
		if u.State != want {
			return fmt.Errorf("member %s is %s, not %s", quote(m), u.State, want)
		}
	}
	for _, u := range st.Users {
		if u.State != Free && !slices.Contains(d.Members, u.Name) {
			return fmt.Errorf("user %s is %s, but not a member of the DHT", quote(u.Name), u.State)
		}
	}
	waiting := d.Phase == PhaseBuilding || d.Phase == PhaseLeaving || d.Phase == PhaseTearing
	if waiting != (d.Since != 0) {
		return fmt.Errorf("DHT %s with a wait started at %d", d.Phase, d.Since)
	}
	if (d.Phase == PhaseLeaving) != (d.Leaver != "") {
		return fmt.Errorf("DHT %s with leaver %s", d.Phase, quote(d.Leaver))
	}
	if d.Leaver != "" && (!slices.Contains(d.Members, d.Leaver) || len(d.Members) < 2) {
		return fmt.Errorf("leaver %s is not one of two or more members", quote(d.Leaver))
	}
	return nil
}

// Check reports the first rule a peer's saved identity breaks, which
// OpenPeer and Inspect check a file's identity against: it
// names the peer and its address and the server's; in a ring its id is
// below the ring size, outside one both are 0; a neighbour has an address
// exactly when it has a name.
func (id Identity) Check() error {
	if id == (Identity{}) {
		return nil // none saved
	}
	if id.Name == "" || !id.Addr.IsValid() || id.Addr.Port() == 0 || !id.Server.IsValid() || id.Server.Port() == 0 {
		return errors.New("the identity lacks the peer's name, its address or the server's")
	}
	if id.InRing && (id.N < 1 || id.ID >= id.N) {
		return fmt.Errorf("id %d in a ring of %d", id.ID, id.N)
	}
	if !id.InRing && (id.ID != 0 || id.N != 0) {
		return fmt.Errorf("id %d in a ring of %d, but not in a ring", id.ID, id.N)
	}
	for _, m := range [2]Member{id.Left, id.Right} {
		if (m.Name != "") != (m.Addr.IsValid() && m.Addr.Port() != 0) {
			return fmt.Errorf("neighbour %s at %v", quote(m.Name), m.Addr)
		}
	}
	return nil
}
