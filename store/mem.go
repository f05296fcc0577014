package store

import (
	"maps"
	"net/netip"
	"slices"
	"sync"

	"dht/app/state"
	"dht/dataset"
)

// MemServer is ServerDB without a disk: same methods, same checks, same
// encoded values, kept in maps. It is safe for concurrent use.
type MemServer struct {
	mu      sync.Mutex
	closed  bool
	users   map[string][]byte
	dht     []byte
	replies map[string][]byte
}

// NewMemServer returns an empty in-memory server store.
func NewMemServer() *MemServer {
	return &MemServer{users: map[string][]byte{}, replies: map[string][]byte{}}
}

// Load is ServerDB.Load.
func (m *MemServer) Load() (state.ServerState, []state.CachedReply, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return state.ServerState{}, nil, ErrClosed
	}
	var st state.ServerState
	for _, name := range slices.Sorted(maps.Keys(m.users)) {
		v, err := unseal(true, "user "+quote(name), m.users[name])
		if err != nil {
			return state.ServerState{}, nil, err
		}
		u, err := decodeUser(name, v)
		if err != nil {
			return state.ServerState{}, nil, err
		}
		st.Users = append(st.Users, u)
	}
	if m.dht != nil {
		v, err := unseal(true, "the dht state", m.dht)
		if err != nil {
			return state.ServerState{}, nil, err
		}
		if st.DHT, err = decodeDHT(v); err != nil {
			return state.ServerState{}, nil, err
		}
	}
	var replies []state.CachedReply
	for _, k := range slices.Sorted(maps.Keys(m.replies)) {
		v, err := unseal(true, "the reply cached for "+k, m.replies[k])
		if err != nil {
			return state.ServerState{}, nil, err
		}
		r, err := decodeReply(k, v)
		if err != nil {
			return state.ServerState{}, nil, err
		}
		replies = append(replies, r)
	}
	return st, replies, nil
}

// Save is ServerDB.Save.
func (m *MemServer) Save(st state.ServerState, reply *state.CachedReply, forget ...netip.AddrPort) error {
	w, err := prepareSave(st, reply, forget)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.users = make(map[string][]byte, len(w.users))
	for _, u := range w.users {
		m.users[u.k] = u.v
	}
	m.dht = w.dht
	for _, k := range w.forget {
		delete(m.replies, k)
	}
	if w.reply != nil {
		m.replies[w.reply.k] = w.reply.v
	}
	return nil
}

// Close makes later calls fail with ErrClosed.
func (m *MemServer) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// MemPeer is PeerDB without a disk: same methods, same checks, same encoded
// values, kept in maps. It is safe for concurrent use.
type MemPeer struct {
	mu       sync.Mutex
	closed   bool
	identity []byte
	slots    [dataset.TableSize]map[string][]byte
}

// NewMemPeer returns an empty in-memory peer store.
func NewMemPeer() *MemPeer { return &MemPeer{} }

// Apply is PeerDB.Apply.
func (m *MemPeer) Apply(b state.Batch) error {
	w, err := prepareApply(b)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if w.clear {
		clear(m.slots[:])
	}
	if w.identity != nil {
		m.identity = w.identity
	}
	for _, r := range w.put {
		if m.slots[r.pos] == nil {
			m.slots[r.pos] = map[string][]byte{}
		}
		m.slots[r.pos][r.k] = r.v
	}
	return nil
}

// Load is PeerDB.Load.
func (m *MemPeer) Load() (state.Identity, []dataset.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return state.Identity{}, nil, ErrClosed
	}
	var id state.Identity
	if m.identity != nil {
		v, err := unseal(true, "the identity", m.identity)
		if err != nil {
			return state.Identity{}, nil, err
		}
		if id, err = decodeIdentity(v); err != nil {
			return state.Identity{}, nil, err
		}
	}
	var recs []dataset.Record
	for pos, slot := range m.slots {
		for _, k := range slices.Sorted(maps.Keys(slot)) {
			r, err := decodeSlotRecord(pos, k, slot[k])
			if err != nil {
				return state.Identity{}, nil, err
			}
			recs = append(recs, r)
		}
	}
	return id, recs, nil
}

// Lookup is PeerDB.Lookup.
func (m *MemPeer) Lookup(longName string) (dataset.Record, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return dataset.Record{}, false, ErrClosed
	}
	pos := dataset.Pos(longName)
	v, ok := m.slots[pos][longName]
	if !ok {
		return dataset.Record{}, false, nil
	}
	r, err := decodeSlotRecord(pos, longName, v)
	if err != nil {
		return dataset.Record{}, false, err
	}
	return r, true, nil
}

// Discard is PeerDB.Discard: there is no file to remove.
func (m *MemPeer) Discard() error { return m.Close() }

// Close makes later calls fail with ErrClosed.
func (m *MemPeer) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
