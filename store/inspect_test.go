package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"dht/app/state"
	"dht/dataset"
)

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// inspect runs Inspect and checks that the file is byte for byte the same
// afterwards, whatever Inspect returned.
func inspect(t *testing.T, path string) (any, error) {
	t.Helper()
	before := fileSum(t, path)
	r, err := Inspect(path, 100*time.Millisecond)
	if after := fileSum(t, path); after != before {
		t.Fatalf("Inspect changed %s", path)
	}
	return r, err
}

func writeServer(t *testing.T, path string, st state.ServerState, reply *state.CachedReply) {
	t.Helper()
	db, err := OpenServer(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Save(st, reply); err != nil {
		t.Fatal(err)
	}
}

func writePeer(t *testing.T, path string, b state.Batch) {
	t.Helper()
	db, err := OpenPeer(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustApply(t, db, b)
}

func TestInspectServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.db")
	writeServer(t, path, sampleState(), &state.CachedReply{Addr: ap("127.0.0.1:5001"), ID: 1, Datagram: []byte("x")})
	r, err := inspect(t, path)
	if err != nil {
		t.Fatal(err)
	}
	rep, ok := r.(*ServerReport)
	if !ok {
		t.Fatalf("got %T, want *ServerReport", r)
	}
	want := &ServerReport{
		Kind:    "server",
		Version: fileVersion(kindServer),
		Users: []UserJSON{
			{Name: "alice", IP: "127.0.0.1", Port: 5001, State: "Leader"},
			{Name: "bob", IP: "10.0.0.2", Port: 5002, State: "InDHT"},
			{Name: "carol", IP: "127.0.0.1", Port: 5003, State: "InDHT"},
			{Name: "dave", IP: "10.0.0.4", Port: 5004, State: "Free"},
		},
		DHT: DHTJSON{Phase: "leaving", Leader: "alice", Members: []string{"alice", "bob", "carol"},
			Leaver: "bob", WaitingSince: "2023-11-14T22:13:20.123456789Z"},
		sealed: true,
	}
	if !reflect.DeepEqual(rep, want) {
		t.Fatalf("got  %+v\nwant %+v", rep, want)
	}
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	const wantJSON = `{"kind":"server","version":2,"users":[{"name":"alice","ip":"127.0.0.1","port":5001,"state":"Leader"},` +
		`{"name":"bob","ip":"10.0.0.2","port":5002,"state":"InDHT"},{"name":"carol","ip":"127.0.0.1","port":5003,"state":"InDHT"},` +
		`{"name":"dave","ip":"10.0.0.4","port":5004,"state":"Free"}],` +
		`"dht":{"phase":"leaving","leader":"alice","members":["alice","bob","carol"],"leaver":"bob","waiting_since":"2023-11-14T22:13:20.123456789Z"}}`
	if string(js) != wantJSON {
		t.Fatalf("JSON:\ngot  %s\nwant %s", js, wantJSON)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"alice", "127.0.0.1:5001", "Leader", "10.0.0.2:5002", "dht: leaving", "members: alice bob carol", "leaver:  bob", "LAST SEEN"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("text lacks %q:\n%s", s, text.String())
		}
	}
}

func TestInspectEmptyServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.db")
	writeServer(t, path, state.ServerState{}, nil)
	r, err := inspect(t, path)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(r)
	if want := `{"kind":"server","version":2,"users":[],"dht":{"phase":"none"}}`; string(js) != want {
		t.Fatalf("got %s, want %s", js, want)
	}
}

func TestInspectPeer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peer.db")
	id := sampleIdentity()
	writePeer(t, path, state.Batch{Identity: &id, Put: []dataset.Record{zaf, aurba, civ, aruba}})
	r, err := inspect(t, path)
	if err != nil {
		t.Fatal(err)
	}
	rep, ok := r.(*PeerReport)
	if !ok {
		t.Fatalf("got %T, want *PeerReport", r)
	}
	// As `dht inspect --json` does: no HTML escaping of "&".
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rep); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()

	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%v in %s", err, raw)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
	if want := []string{"id", "ip", "kind", "left", "name", "port", "records", "right", "ring_size", "server", "slots", "version"}; !slices.Equal(keys, want) {
		t.Errorf("keys %v, want %v", keys, want)
	}
	if m["kind"] != "peer" || m["version"] != float64(fileVersion(kindPeer)) || m["name"] != "alice" || m["id"] != 0.0 || m["ring_size"] != 1.0 || m["records"] != 4.0 {
		t.Errorf("identity fields: %s", raw)
	}
	wantLeft := map[string]any{"name": "carol", "ip": "127.0.0.1", "port": 5003.0}
	if !reflect.DeepEqual(m["left"], wantLeft) {
		t.Errorf("left: %v", m["left"])
	}
	slots := m["slots"].([]any)
	var positions []float64
	for _, s := range slots {
		positions = append(positions, s.(map[string]any)["pos"].(float64))
	}
	wantPos := []float64{float64(civ.Pos()), 138, float64(zaf.Pos())}
	slices.Sort(wantPos)
	if !slices.Equal(positions, wantPos) {
		t.Fatalf("slot positions %v, want %v", positions, wantPos)
	}
	for _, s := range slots {
		s := s.(map[string]any)
		if s["pos"] != 138.0 {
			continue
		}
		recs := s["records"].([]any)
		if len(recs) != 2 {
			t.Fatalf("slot 138 holds %d records, want 2", len(recs))
		}
		first := recs[0].(map[string]any)
		if first["Long Name"] != "Aruba" || first["Country Code"] != "ABW" || len(first) != 9 {
			t.Errorf("slot 138 first record: %v", first)
		}
		if recs[1].(map[string]any)["Long Name"] != "Aurba" {
			t.Errorf("slot 138 second record: %v", recs[1])
		}
	}

	// Record keys in header order, checked on the raw bytes.
	var want bytes.Buffer
	want.WriteString(`{`)
	for i, h := range dataset.Headers {
		if i > 0 {
			want.WriteString(",")
		}
		// Aruba's fields and the headers need no escaping.
		fmt.Fprintf(&want, `"%s":"%s"`, h, aruba.Fields()[i])
	}
	want.WriteString(`}`)
	if !bytes.Contains(raw, want.Bytes()) {
		t.Errorf("Aruba not written with keys in file order; want %s in\n%s", want.Bytes(), raw)
	}
	if !bytes.Contains(raw, []byte(`"Latin America & Caribbean"`)) {
		t.Errorf("& escaped in %s", raw)
	}

	// JSON cannot carry the 0xAB byte: it becomes U+FFFD there, and only there.
	if !utf8.Valid(raw) {
		t.Errorf("JSON is not valid UTF-8")
	}
	var civJSON map[string]any
	for _, s := range slots {
		if s := s.(map[string]any); s["pos"] == float64(civ.Pos()) {
			civJSON = s["records"].([]any)[0].(map[string]any)
		}
	}
	if civJSON["Short Name"] != "Co\uFFFDte d'Ivoire" || civJSON["Long Name"] != "Republic of C\u032bte d'Ivoire" {
		t.Errorf("CIV in JSON: %q", civJSON)
	}

	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"peer alice at 127.0.0.1:5001, server 127.0.0.1:4000\n",
		"id 0 in a ring of 1\n",
		"left:  carol 127.0.0.1:5003\n",
		"right: bob 10.0.0.2:5002\n",
		"4 records in 3 slots\n",
		"slot 138:\n  Aruba | ABW\n  Aurba | XAU\n",
		"  " + civ.LongName + " | CIV\n",
	} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("text lacks %q:\n%s", s, text.String())
		}
	}
}

func TestRecordJSONInvalidUTF8(t *testing.T) {
	js, err := json.Marshal(RecordJSON(civ.Fields()))
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(js) {
		t.Fatalf("JSON is not valid UTF-8: %q", js)
	}
	var back map[string]string
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if back["Short Name"] != "Co\uFFFDte d'Ivoire" || back["Table Name"] != "Co\uFFFDte d'Ivoire" {
		t.Fatalf("got %q", back)
	}
	if !strings.HasPrefix(string(js), `{"Country Code":"CIV","Short Name":`) {
		t.Fatalf("key order: %s", js)
	}
}

func TestInspectPeerOutsideDHT(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peer.db")
	writePeer(t, path, state.Batch{Identity: &state.Identity{Name: "dave", Addr: ap("127.0.0.1:5004"), Server: ap("127.0.0.1:4000")}})
	r, err := inspect(t, path)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(r)
	if want := `{"kind":"peer","version":3,"name":"dave","ip":"127.0.0.1","port":5004,"server":{"ip":"127.0.0.1","port":4000},"slots":[],"records":0}`; string(js) != want {
		t.Fatalf("got  %s\nwant %s", js, want)
	}
	var text bytes.Buffer
	if err := r.(*PeerReport).WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "not in a DHT") {
		t.Fatalf("text: %s", text.String())
	}
}

// A peer file of a user who deregistered (or never registered) says so,
// rather than "peer - at -".
func TestInspectPeerUnregistered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peer.db")
	writePeer(t, path, state.Batch{Identity: &state.Identity{}})
	r, err := inspect(t, path)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := r.(*PeerReport).WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(text.String(), "\n"); first != "peer file of no registered user (deregistered, or never registered)" {
		t.Fatalf("text: %s", text.String())
	}
	if !strings.Contains(text.String(), "not in a DHT\n0 records in 0 slots\n") {
		t.Fatalf("text: %s", text.String())
	}
}

func TestInspectErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	if _, err := Inspect(missing, 100*time.Millisecond); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v, want fs.ErrNotExist", err)
	} else if want := missing + ": no such file or directory"; err.Error() != want {
		// Said as other files refused are, the path first; not "store:
		// inspect: stat ...".
		t.Errorf("missing file: %q, want %q", err, want)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Inspect created %s", missing)
	}

	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		name, path string
	}{
		{"empty", write("empty.db", nil)},
		{"short text", write("short.txt", []byte("hello\n"))},
		{"long text", write("long.txt", bytes.Repeat([]byte("not a database at all\n"), 2000))},
		{"zeros", write("zeros.db", make([]byte, 64<<10))},
		{"other bbolt", foreignBolt(t, dir)},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := inspect(t, c.path)
			if !errors.Is(err, ErrNotDHT) || !strings.Contains(err.Error(), "not a dht database") {
				t.Fatalf("got %v, want ErrNotDHT", err)
			}
		})
	}
	if _, err := Inspect(dir, 100*time.Millisecond); !errors.Is(err, ErrNotDHT) {
		t.Errorf("directory: got %v, want ErrNotDHT", err)
	}
}

// TestInspectCorrupt damages a stored value: Inspect reports ErrCorrupt,
// never panics.
func TestInspectCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peer.db")
	writePeer(t, path, state.Batch{Put: []dataset.Record{aruba}})
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The value holds "Aruban florin" once; make its length prefix lie.
	i := bytes.Index(data, []byte("Aruban florin"))
	if i < 2 {
		t.Fatal("value not found in file")
	}
	data[i-1] = 0xff
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := inspect(t, path); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
}

// One record in one slot is said so, not "1 records in 1 slots" (a new
// user's review), as dht ring says it.
func TestInspectCountsOneInTheSingular(t *testing.T) {
	for n, want := range map[int]string{0: "0 records in 0 slots\n", 1: "1 record in 1 slot\n", 2: "2 records in 2 slots\n"} {
		r := &PeerReport{Name: "alice", IP: "127.0.0.1", Port: 5001, Records: n}
		for i := range n {
			r.Slots = append(r.Slots, SlotJSON{Pos: i})
		}
		var text bytes.Buffer
		if err := r.WriteText(&text); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text.String(), want) {
			t.Errorf("%d records: %q, want %q", n, text.String(), want)
		}
	}
}
