package main

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// outKind is what a flag's output FILE holds once written, by the bytes
// it starts with: a file that exists and starts otherwise is not one this
// flag wrote, and is not written over.
type outKind struct {
	what    string   // "an SVG image"
	starts  [][]byte // what such a file starts with
	example string   // a name to suggest
	dash    bool     // "-" is stdout (else a file named "-")
}

var (
	outSVG     = outKind{"an SVG image", [][]byte{[]byte("<svg"), []byte("<?xml")}, "image.svg", true}
	outMermaid = outKind{"a Mermaid diagram", [][]byte{[]byte("sequenceDiagram"), []byte("---")}, "run.mmd", true}
	outTrace   = outKind{"a JSON trace", [][]byte{[]byte("{")}, "trace.jsonl", false}
	outProfile = outKind{"a CPU profile", [][]byte{{0x1f, 0x8b}}, "cpu.pprof", false}
)

// bboltMagic is where a bbolt file (a dht server's or peer's) says what
// it is: the magic number of its first meta page, after the page header.
var bboltMagic = []byte{0xed, 0xda, 0x0c, 0xed}

// checkOutput refuses, before anything is read or written, a flag's
// output path that would overwrite what the user did not mean to: one of
// the files the command reads, or a file that exists, is not empty and
// holds something other than kind (a database, a trace, a text) — a
// forgotten FILE after --svg takes the next word, the server's file, as
// its name. "-" where it means stdout, a missing file, an empty one and
// anything but a regular file (a FIFO, /dev/null) pass. A command that
// makes a file it reads (a server's new --db) checks again once it has:
// a path named otherwise (a symbolic link) may be the same file.
func checkOutput(flag, path string, kind outKind, reads ...string) error {
	if path == "" || path == "-" && kind.dash {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil // the write says what it says
	}
	for _, r := range reads {
		if r != "" && samePath(path, r) {
			return sameAsRead(flag, path, kind)
		}
	}
	if err == nil && fi.IsDir() {
		return usagef("--%s %s is a folder: give --%s a FILE (e.g. %s)", flag, path, flag, kind.example)
	}
	if err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
		return nil // not there yet, not a file (a pipe, a device), or empty
	}
	f, err := os.Open(path)
	if err != nil {
		return nil // the write says what it says
	}
	defer f.Close()
	head := make([]byte, 20)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	for _, s := range kind.starts {
		if bytes.HasPrefix(head, s) {
			return nil
		}
	}
	held := "something else"
	if len(head) >= 20 && bytes.Equal(head[16:20], bboltMagic) {
		held = "a bbolt database (a dht server's or peer's file?)"
	}
	if strings.HasPrefix(filepath.Clean(path), "/dev/") || strings.HasPrefix(filepath.Clean(path), "/proc/") {
		// /dev/stdout sent to a file (>> log): opening it again would
		// truncate that file.
		return usagef("--%s %s is a file that holds %s, not %s, which opening it would empty: send that output to a pipe or a new file, or give --%s a FILE of its own (e.g. %s)",
			flag, path, held, kind.what, flag, kind.example)
	}
	return usagef("--%s %s: the file exists and holds %s, not %s; remove it first if it is to go, or give --%s another FILE (e.g. %s)",
		flag, path, held, kind.what, flag, kind.example)
}

func sameAsRead(flag, path string, kind outKind) error {
	return usagef("--%s %s is also a file this command reads or writes: give --%s a FILE of its own (e.g. %s)", flag, path, flag, kind.example)
}

// checkOutputs is checkOutput for each of several flags' paths, and
// refuses two that name one file.
func checkOutputs(outs []output, reads ...string) error {
	for i, o := range outs {
		if err := checkOutput(o.flag, o.path, o.kind, reads...); err != nil {
			return err
		}
		for _, p := range outs[:i] {
			if o.path != "" && (o.path != "-" || !o.kind.dash) && p.path != "" && samePath(p.path, o.path) {
				return usagef("--%s and --%s name one file, %s: give each its own", p.flag, o.flag, o.path)
			}
		}
	}
	return nil
}

type output struct {
	flag, path string
	kind       outKind
}

// samePath reports whether a and b name one file: the same file if both
// are there, else the same absolute path.
func samePath(a, b string) bool {
	if ai, err := os.Stat(a); err == nil {
		if bi, err := os.Stat(b); err == nil {
			return os.SameFile(ai, bi)
		}
	}
	aa, _ := filepath.Abs(a)
	ba, _ := filepath.Abs(b)
	return aa == ba
}

// newFile reports whether path names no file yet (so one made for it is
// the command's own, to remove if the command is refused after all).
func newFile(path string) bool {
	if path == "" {
		return false
	}
	_, err := os.Lstat(path)
	return errors.Is(err, fs.ErrNotExist)
}
