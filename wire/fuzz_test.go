package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

var sentinels = []error{
	ErrShort, ErrTooLong, ErrTrailing, ErrMagic, ErrVersion, ErrUnknownType, ErrFlags, ErrInvalid,
}

// FuzzDecode checks decode → encode → decode: whatever Decode accepts,
// Append encodes back to the same bytes (the encoding is canonical) and
// Decode reads the same message again. Errors are *Error with a sentinel.
func FuzzDecode(f *testing.F) {
	for _, g := range goldens {
		f.Add(unhex(f, g.hex))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		h, m, err := Decode(b)
		if !bytes.Equal(b, in) {
			t.Fatal("Decode changed its input")
		}
		if err != nil {
			var we *Error
			if !errors.As(err, &we) {
				t.Fatalf("error %T %v is not *Error", err, err)
			}
			found := false
			for _, s := range sentinels {
				found = found || errors.Is(err, s)
			}
			if !found {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			if m != nil {
				t.Fatalf("message %#v with error %v", m, err)
			}
			return
		}
		if m.Type() != h.Type {
			t.Fatalf("header type %v, message type %v", h.Type, m.Type())
		}
		if h.Flags&FlagAuth != 0 {
			// Signed: the body re-encodes to the bytes before the trailer,
			// and the trailer is what Decode reports.
			if n := EncodedLen(m) + AuthLen; n != len(b) {
				t.Fatalf("EncodedLen + AuthLen = %d for a %d-byte signed datagram", n, len(b))
			}
			out, err := Append(nil, h.ID, h.Flags&^FlagAuth, m)
			if err != nil {
				t.Fatalf("Append of a decoded %#v: %v", m, err)
			}
			want := bytes.Clone(b[:len(b)-AuthLen])
			want[8] &^= byte(FlagAuth)
			if !bytes.Equal(out, want) {
				t.Fatalf("re-encoding differs:\n in %x\nout %x", want, out)
			}
			end := len(b) - TagLen
			if h.Signed != string(b[:end]) || h.Seq != binary.BigEndian.Uint64(b[end-SeqLen:end]) || !bytes.Equal(h.Tag[:], b[end:]) {
				t.Fatalf("trailer decoded as seq %d tag %x signed %d bytes", h.Seq, h.Tag, len(h.Signed))
			}
			return
		}
		if n := EncodedLen(m); n != len(b) {
			t.Fatalf("EncodedLen = %d for a %d-byte datagram", n, len(b))
		}
		out, err := Append(nil, h.ID, h.Flags, m)
		if err != nil {
			t.Fatalf("Append of a decoded %#v: %v", m, err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, out)
		}
		h2, m2, err := Decode(out)
		if err != nil {
			t.Fatalf("Decode of the re-encoding: %v", err)
		}
		if h2 != h || !reflect.DeepEqual(m2, m) {
			t.Fatalf("decode → encode → decode:\n got %+v %#v\nwant %+v %#v", h2, m2, h, m)
		}
	})
}

// The seed files under testdata/fuzz carry the current version: a seed of
// an older one exercises only the version check, never a decoder (they
// were left at version 2 through six versions).
func TestFuzzSeedsCarryTheCurrentVersion(t *testing.T) {
	files, err := filepath.Glob("testdata/fuzz/FuzzDecode/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no seed files: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		if len(lines) < 2 || lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: not a seed file", f)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(s) < 3 {
			t.Errorf("%s: %d bytes, shorter than a header's start", filepath.Base(f), len(s))
		} else if s[2] != Version {
			t.Errorf("%s: version %d, want %d (the seed exercises only the version check)", filepath.Base(f), s[2], Version)
		}
	}
}
