package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// freeHeapChild is set in the environment of the child TestWarmHeap
// starts: "warm" or "cold".
const freeHeapChild = "DHT_TEST_FREE_HEAP"

// TestFreeHeapChild is TestWarmHeap's child: it prints how much of its heap
// is free and in memory, after warmHeap or not.
func TestFreeHeapChild(t *testing.T) {
	mode := os.Getenv(freeHeapChild)
	if mode == "" {
		t.Skip("run by TestWarmHeap")
	}
	if mode == "warm" {
		warmHeap()
	}
	s := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(s)
	fmt.Printf("free %d\n", s[0].Value.Uint64())
}

// TestWarmHeap: after warmHeap a fresh process's heap holds much of
// warmBytes free in memory for its next allocations; without it, a fresh
// process's heap holds next to none. The children run with GOGC=off: the
// runtime's background scavenger returns free pages to the system at its
// own pace, faster on a loaded machine (a child on one of 8 at once kept
// from 80 KiB to 8 MiB), and GOGC=off turns off the target it works to, so
// the figure is what warmHeap leaves (2.4 MiB or more in 40 such
// children), not how far the scavenger has got. It checks what warmHeap
// leaves, not how long it lasts: in a process that runs at GOGC=100 the
// scavenger may return much of it to the system first, on a busy machine
// (TestWarmClasses counts the page faults that warmHeap saves, as the
// processes run). The median of three each.
func TestWarmHeap(t *testing.T) {
	free := func(mode string) int64 {
		f := []int64{0, 0, 0}
		for i := range f {
			f[i] = childFigure(t, "TestFreeHeapChild", "free ", freeHeapChild+"="+mode, "GOGC=off")
		}
		slices.Sort(f)
		return f[1]
	}
	warm, cold := free("warm"), free("cold")
	if warm < warmBytes/4 || warm < cold+warmBytes/4 {
		t.Fatalf("free heap in memory: %d bytes warmed, %d not; want at least %d warmed, and %d more than not", warm, cold, warmBytes/4, warmBytes/4)
	}
	t.Logf("free heap in memory: %d bytes warmed, %d not", warm, cold)
}

// childFigure runs the test named run of this test binary in a child
// process, with env (NAME=value) added to its environment, and returns the
// number the child prints after prefix.
func childFigure(t *testing.T, run, prefix string, env ...string) int64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+run+"$", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child (%s): %v\n%s", env, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("child (%s) printed no figure:\n%s", env, out)
	return 0
}
