package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"dht/diagram"
	"dht/store"
	"dht/wire"
)

// The JSON trace carries the runners' keys as an event's fields, sees the
// LevelDebug actions the text trace leaves out, and reads back with
// diagram.Read.
func TestJSONTraceFanout(t *testing.T) {
	var text, js bytes.Buffer
	h := fanout{
		slog.NewTextHandler(&text, &slog.HandlerOptions{Level: slog.LevelInfo}),
		newJSONTrace(&js, slog.LevelDebug),
	}
	log := slog.New(h)
	// The peer's first line comes before it knows its name.
	log.Debug("input", "line", "register alice 127.0.0.1 5001", "queued", false)
	node := log.With(slog.String("node", "alice"), slog.String("local", "127.0.0.1:5001"))
	msg := wire.Register{Name: "alice", Addr: netip.MustParseAddrPort("127.0.0.1:5001")}
	node.LogAttrs(context.Background(), slog.LevelInfo, "send", slog.String("addr", "127.0.0.1:4000"),
		slog.String("type", "register"), slog.Uint64("id", 4000000000), slog.Bool("retransmit", true), slog.Any("msg", msg))
	node.LogAttrs(context.Background(), slog.LevelDebug, "persist", slog.Int("records", 3), slog.Bool("clear", true))
	node.Warn("dropped: not from the left neighbour", "addr", "127.0.0.1:5009", "type", "store", "id", uint64(5))

	if strings.Contains(text.String(), "persist") || strings.Contains(text.String(), "input") {
		t.Fatalf("the text trace shows the debug actions:\n%s", text.String())
	}
	if !strings.Contains(text.String(), "msg=send") || !strings.Contains(text.String(), "dropped") {
		t.Fatalf("the text trace lost lines:\n%s", text.String())
	}
	evs, err := diagram.Read(&js)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 4 {
		t.Fatalf("%d events, want 4:\n%s", len(evs), js.String())
	}
	in, send, persist, drop := evs[0], evs[1], evs[2], evs[3]
	if in.Process != "alice" || in.Dir != diagram.DirEvent || in.Event != "input" || in.Level != "DEBUG" || in.Attrs["line"] != "register alice 127.0.0.1 5001" {
		t.Errorf("input: %+v", in)
	}
	if send.Process != "alice" || send.Dir != diagram.DirSend || send.Local != "127.0.0.1:5001" || send.Remote != "127.0.0.1:4000" ||
		send.Type != "register" || send.ID != 4000000000 || send.Flags != "retransmit" || send.Level != "" ||
		send.Msg["name"] != "alice" || send.Msg["addr"] != "127.0.0.1:5001" || send.Attrs != nil {
		t.Errorf("send: %+v", send)
	}
	if persist.Event != "persist" || persist.Attrs["records"] != 3.0 || persist.Attrs["clear"] != true {
		t.Errorf("persist: %+v", persist)
	}
	if drop.Event != "dropped: not from the left neighbour" || drop.Level != "WARN" || drop.Type != "store" || drop.ID != 5 || drop.Remote != "127.0.0.1:5009" {
		t.Errorf("drop: %+v", drop)
	}
}

// Groups from WithGroup prefix the keys; they never take a field's place.
func TestJSONTraceGroups(t *testing.T) {
	var js bytes.Buffer
	slog.New(newJSONTrace(&js, slog.LevelInfo)).WithGroup("g").With("type", "x").Info("listening", "id", 1)
	evs, err := diagram.Read(&js)
	if err != nil || len(evs) != 1 {
		t.Fatalf("%v %+v", err, evs)
	}
	if e := evs[0]; e.Type != "" || e.ID != 0 || e.Attrs["g.type"] != "x" || e.Attrs["g.id"] != 1.0 {
		t.Fatalf("%+v", e)
	}
}

func TestTraceJSONUnwritable(t *testing.T) {
	var out, errOut bytes.Buffer
	port := fmt.Sprint(freePorts(t, 1)[0])
	code := run([]string{"dht", "server", "--addr", "127.0.0.1", "--db", t.TempDir() + "/s.db", "--trace-json", t.TempDir() + "/no/such/dir/t.jsonl", port}, strings.NewReader(""), &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "--trace-json") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
}

func TestDiagramCommandErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"dht", "diagram"}, 2, "one or more trace files"},
		{[]string{"dht", "diagram", "--from", "a:b", "x"}, 2, "PROCESS:DIR:WHAT"},
		{[]string{"dht", "diagram", dir + "/missing.jsonl"}, 1, "missing.jsonl"},
	} {
		var out, errOut bytes.Buffer
		if code := run(tc.args, strings.NewReader(""), &out, &errOut); code != tc.code || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and %q", tc.args, code, errOut.String(), tc.code, tc.want)
		}
	}
}

// Every output of dht diagram is opened before any is written: one that
// cannot be fails the command with nothing written, and a FILE it made
// goes (a new user's review: the Mermaid file was written over, or
// printed, before the --svg path failed).
func TestDiagramWritesNothingWhenAnOutputFails(t *testing.T) {
	bin := dhtBinary(t) // built from the package's folder
	t.Chdir(t.TempDir())
	trace := `{"time":"2026-12-07T09:31:16.557Z","process":"zed","dir":"send","local":"127.0.0.1:46991","remote":"127.0.0.1:46992","type":"register","id":39678957,"msg":{"addr":"127.0.0.1:46991","name":"zed"}}` + "\n"
	if err := os.WriteFile("zed.jsonl", []byte(trace), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("kept.mmd", []byte("sequenceDiagram\n    Note over a: kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"diagram", "--mermaid", "kept.mmd", "--svg", "nowhere/x.svg", "zed.jsonl"},
		{"diagram", "--mermaid", "new.mmd", "--svg", "nowhere/x.svg", "zed.jsonl"},
		{"diagram", "--svg", "nowhere/x.svg", "zed.jsonl"},
	} {
		code, out, errOut := runDHT(t, "", args...)
		if want := "dht: open nowhere/x.svg: no such file or directory\n"; code != 1 || out != "" || errOut != want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 1, nothing, %q", args, code, out, errOut, want)
		}
	}
	if b, _ := os.ReadFile("kept.mmd"); string(b) != "sequenceDiagram\n    Note over a: kept\n" {
		t.Errorf("kept.mmd now holds %q", b)
	}
	if _, err := os.Lstat("new.mmd"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the failed diagram left new.mmd (%v)", err)
	}
	// A device is written, not truncated (a code review: /dev/null and
	// /dev/stdout to a pipe failed with EINVAL).
	if code, out, errOut := runDHT(t, "", "diagram", "--mermaid", os.DevNull, "zed.jsonl"); code != 0 || out != "" {
		t.Errorf("--mermaid %s: exit %d, stdout %q, stderr %q", os.DevNull, code, out, errOut)
	}
	// The SVG to /dev/stdout is stdout: the Mermaid text does not go there
	// too (a code review: both came out, one after the other).
	if runtime.GOOS == "linux" {
		b, err := exec.Command(bin, "diagram", "--svg", "/dev/stdout", "zed.jsonl").Output() // a pipe
		if err != nil || !strings.HasPrefix(string(b), "<svg") || strings.Contains(string(b), "sequenceDiagram") {
			t.Errorf("--svg /dev/stdout: %v; stdout %.80q…", err, b)
		}
		// --mermaid - with the SVG to /dev/stdout is both to stdout, refused
		// as --mermaid - --svg - is (into a file, the SVG's open emptied
		// the Mermaid text written before it).
		if err := exec.Command(bin, "diagram", "--mermaid", "-", "--svg", "/dev/stdout", "zed.jsonl").Run(); err == nil {
			t.Errorf("--mermaid - --svg /dev/stdout: exit 0, want 2")
		}
		// '>> FILE' appends: /dev/stdout is written through, not opened
		// again and emptied.
		for range 2 {
			f, err := os.OpenFile("all.svg", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "diagram", "--svg", "/dev/stdout", "zed.jsonl")
			cmd.Stdout = f
			err = cmd.Run()
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		if b, _ := os.ReadFile("all.svg"); strings.Count(string(b), "<svg") != 2 {
			t.Errorf("two --svg /dev/stdout >> all.svg: %d images, want 2", strings.Count(string(b), "<svg"))
		}
		// dht ring likewise: the image alone, without the text.
		db, err := store.OpenServer("s.db")
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		b, err = exec.Command(bin, "ring", "--svg", "/dev/stdout", "s.db").Output()
		if err != nil || !strings.HasPrefix(string(b), "<svg") || strings.Contains(string(b), "no ring") {
			t.Errorf("ring --svg /dev/stdout: %v; stdout %.80q…", err, b)
		}
	}
	// And with nothing failing, both are written, the old text replaced.
	if code, _, errOut := runDHT(t, "", "diagram", "--mermaid", "kept.mmd", "--svg", "x.svg", "zed.jsonl"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if b, _ := os.ReadFile("kept.mmd"); !strings.Contains(string(b), "zed->>") || strings.Contains(string(b), "kept") {
		t.Errorf("kept.mmd holds %q", b)
	}
}
