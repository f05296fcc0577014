package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"dht/app/state"
	"dht/dataset"
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

// checkPeer is the rules a peer file's values keep: its identity's
// (state.Identity.Check), and, in a ring, a table of its place's records
// only (state.Identity.CheckTable).
func checkPeer(id state.Identity, recs []dataset.Record) error {
	if err := id.Check(); err != nil {
		return err
	}
	return id.CheckTable(recs)
}
