package simnet

import (
	"errors"
	"path/filepath"

	"dht/app/state"
	"dht/store"
)

// WriteFiles writes what the server and every registered peer have
// persisted so far to bbolt files in dir, under the names the real
// processes give them (dht-server.db, dht-peer-NAME.db), so that
// `dht inspect` and `dht ring` read a simulated run as they read a real one.
func (s *Sim) WriteFiles(dir string) error {
	st, _, err := s.sstore.Load()
	if err != nil {
		return err
	}
	sdb, err := store.OpenServer(filepath.Join(dir, "dht-server.db"))
	if err != nil {
		return err
	}
	if err := errors.Join(sdb.Save(st, nil), sdb.Close()); err != nil {
		return err
	}
	for _, name := range s.Names() {
		id, recs, err := s.procs[name].Table.Load()
		if err != nil {
			return err
		}
		if id.Name == "" {
			continue // never registered: a real peer would have no file
		}
		pdb, err := store.OpenPeer(filepath.Join(dir, "dht-peer-"+id.Name+".db"))
		if err != nil {
			return err
		}
		if err := errors.Join(pdb.Apply(state.Batch{Identity: &id, Clear: true, Put: recs}), pdb.Close()); err != nil {
			return err
		}
	}
	return nil
}
