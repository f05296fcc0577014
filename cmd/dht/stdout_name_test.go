package main

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"dht/store"
)

// An output named by another name of stdout (/dev/stdout) is written
// through stdout, not opened again (openOut): sent to a file that holds
// something else (>> log.txt) it empties nothing, and is appended as
// --svg - is, not refused as if opening it would empty the file.
func TestStdoutByNameAppendsToAFileOfAnotherKind(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/dev/stdout")
	}
	bin := dhtBinary(t)
	t.Chdir(t.TempDir())
	trace := `{"time":"2026-12-07T09:31:16.557Z","process":"zed","dir":"send","local":"127.0.0.1:46991","remote":"127.0.0.1:46992","type":"register","id":39678957,"msg":{"addr":"127.0.0.1:46991","name":"zed"}}` + "\n"
	if err := os.WriteFile("zed.jsonl", []byte(trace), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := store.OpenServer("s.db")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"diagram", "--svg", "/dev/stdout", "zed.jsonl"},
		{"diagram", "--mermaid", "/dev/stdout", "zed.jsonl"},
		{"ring", "--svg", "/dev/stdout", "s.db"},
	} {
		const old = "an old log line\n"
		if err := os.WriteFile("log.txt", []byte(old), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile("log.txt", os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		var errOut strings.Builder
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = f, &errOut
		err = cmd.Run()
		f.Close()
		b, _ := os.ReadFile("log.txt")
		if err != nil || !strings.HasPrefix(string(b), old) || len(b) == len(old) {
			t.Errorf("%v >> log.txt: %v, stderr %q; log.txt %.60q", args, err, errOut.String(), b)
		}
	}
	// Still refused when stdout is a file the command reads.
	before, _ := os.ReadFile("s.db")
	f, err := os.OpenFile("s.db", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "ring", "--svg", "/dev/stdout", "s.db")
	cmd.Stdout = f
	err = cmd.Run()
	f.Close()
	if after, _ := os.ReadFile("s.db"); err == nil || len(after) != len(before) {
		t.Errorf("ring --svg /dev/stdout s.db >> s.db: %v; s.db %d bytes, was %d", err, len(after), len(before))
	}
}
