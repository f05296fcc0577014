package store

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"dht/app/state"
)

// mapped is how many bytes of the file at path this process maps
// (/proc/self/maps).
func mapped(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	var n int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[len(fields)-1] != path {
			continue
		}
		lo, hi, _ := strings.Cut(fields[0], "-")
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("maps line %q", sc.Text())
		}
		n += int64(b - a)
	}
	return n
}

// TestFreshFileMappedWhole: a new file is mapped whole (the zeros it is
// written out with) from its open, so the commits of a setup never remap
// it.
func TestFreshFileMappedWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peer.db")
	p, err := OpenPeer(path)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if got := mapped(t, path); got != preallocSize {
		t.Fatalf("a fresh file: %d bytes mapped, want %d", got, preallocSize)
	}
	id := sampleIdentity()
	mustApply(t, p, state.Batch{Identity: &id, Clear: true, Put: synthetic(241, 1)})
	if got := mapped(t, path); got != preallocSize {
		t.Fatalf("after a commit of 241 records: %d bytes mapped, want %d", got, preallocSize)
	}
}
