package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime/metrics"
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

// TestWarmHeap: after warmHeap a fresh process's heap holds most of
// warmBytes free in memory for its next allocations; without it, a fresh
// process's heap holds far less.
func TestWarmHeap(t *testing.T) {
	free := func(mode string) uint64 {
		return uint64(childFigure(t, "TestFreeHeapChild", freeHeapChild, mode, "free "))
	}
	warm, cold := free("warm"), free("cold")
	if warm < warmBytes/2 || warm < cold+warmBytes/4 {
		t.Fatalf("free heap in memory: %d bytes warmed, %d not; want at least %d warmed, and %d more than not", warm, cold, warmBytes/2, warmBytes/4)
	}
	t.Logf("free heap in memory: %d bytes warmed, %d not", warm, cold)
}

// childFigure runs the test named run of this test binary in a child
// process, with env set to mode, and returns the number the child prints
// after prefix.
func childFigure(t *testing.T, run, env, mode, prefix string) int64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+run+"$", "-test.v")
	cmd.Env = append(os.Environ(), env+"="+mode)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child (%s): %v\n%s", mode, err, out)
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
	t.Fatalf("child (%s) printed no figure:\n%s", mode, out)
	return 0
}
