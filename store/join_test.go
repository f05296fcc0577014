package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"dht/app/state"
)

// joiningState is sampleState while dave joins alice's ring of three.
func joiningState() state.ServerState {
	st := sampleState()
	st.DHT.Phase, st.DHT.Leaver, st.DHT.Joiner = state.PhaseJoining, "", "dave"
	return st
}

// A DHT being joined is saved and loaded again with its joiner, by both
// stores.
func TestServerJoinerRoundTrip(t *testing.T) {
	for _, impl := range serverImpls() {
		t.Run(impl.name, func(t *testing.T) {
			s := impl.open(t)
			want := joiningState()
			if err := s.Save(want, nil); err != nil {
				t.Fatal(err)
			}
			got, _ := mustLoadServer(t, s)
			if !reflect.DeepEqual(got.DHT, want.DHT) {
				t.Fatalf("loaded %+v, saved %+v", got.DHT, want.DHT)
			}
		})
	}
}

// The joiner is written only while there is one, after the fields a file
// held before joins existed: such a file reads as it did, and a state
// without a joiner is written as it was.
func TestDHTJoinerEncodingCompatible(t *testing.T) {
	old := sampleState().DHT // a leave: no joiner
	b, err := encodeDHT(old)
	if err != nil {
		t.Fatal(err)
	}
	// What the codec wrote before joins: phase, leader, members, leaver, since.
	e := enc{}
	e.u8(uint8(old.Phase))
	e.str("", old.Leader)
	e.u16(uint16(len(old.Members)))
	for _, m := range old.Members {
		e.str("", m)
	}
	e.str("", old.Leaver)
	e.u64(uint64(old.Since))
	if !bytes.Equal(b, e.b) {
		t.Fatalf("a DHT without a joiner encodes to\n%x\nnot as before\n%x", b, e.b)
	}
	got, err := decodeDHT(e.b)
	if err != nil || !reflect.DeepEqual(got, old) {
		t.Fatalf("an old value decodes to %+v, %v; want %+v", got, err, old)
	}

	joining := joiningState().DHT
	b, err = encodeDHT(joining)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decodeDHT(b); err != nil || !reflect.DeepEqual(got, joining) {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, joining)
	}
	// An empty joiner is never written: one read back is damage.
	e.str("", "")
	if _, err := decodeDHT(e.b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("an empty joiner decodes with %v, want ErrCorrupt", err)
	}
	if _, err := encodeDHT(state.DHT{Phase: state.PhaseHealing + 1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an unknown phase encodes with %v, want ErrInvalid", err)
	}
}

// dht inspect shows the joiner, in JSON and in text.
func TestInspectServerJoining(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.db")
	writeServer(t, path, joiningState(), nil)
	r, err := inspect(t, path)
	if err != nil {
		t.Fatal(err)
	}
	rep := r.(*ServerReport)
	js, err := json.Marshal(rep.DHT)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"phase":"joining"`; !strings.Contains(string(js), want) || !strings.Contains(string(js), `"joiner":"dave"`) {
		t.Errorf("JSON %s lacks the phase or the joiner", js)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"dht: joining", "joiner:  dave"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("text lacks %q:\n%s", s, text.String())
		}
	}
}
