package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"syscall"
	"testing"
)

// classFaultsChild is set in the environment of the child
// TestWarmClasses starts: "warm" (warmHeap) or "touched" (the heap touched
// and collected, nothing else).
const classFaultsChild = "DHT_TEST_CLASS_FAULTS"

// minorFaults is the process's minor page faults so far.
func minorFaults(t *testing.T) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return int64(ru.Minflt) // int32 on 32-bit systems
}

// TestClassFaultsChild is TestWarmClasses's child: on one P, as a server
// or a peer runs, it prints the page faults taken by a first use of the
// small size classes: about 8 KiB of objects of each of 40 sizes, with
// pointers and without, kept.
func TestClassFaultsChild(t *testing.T) {
	mode := os.Getenv(classFaultsChild)
	if mode == "" {
		t.Skip("run by TestWarmClasses")
	}
	runtime.GOMAXPROCS(1)
	switch mode {
	case "warm":
		warmHeap()
	case "touched":
		touch(warmBytes)
		runtime.GC()
	}
	var (
		plain [][]byte
		ptrs  [][]*byte
	)
	before := minorFaults(t)
	for size := 16; size <= 32<<10; size += 16 + size/5 {
		for range max(1, 8<<10/size) {
			plain = append(plain, make([]byte, size))
			ptrs = append(ptrs, make([]*byte, size/8))
		}
	}
	after := minorFaults(t)
	runtime.KeepAlive(plain)
	runtime.KeepAlive(ptrs)
	fmt.Printf("faults %d\n", after-before)
}

// TestWarmClasses: after warmHeap, a fresh process's first use of the size
// classes takes a fraction of the page faults it takes with the heap only
// touched (the runtime's records of each class's spans are made on first
// use, outside the heap).
func TestWarmClasses(t *testing.T) {
	if raceDetector {
		// Its shadow memory faults with the heap, hundreds of times in
		// each child, as many warmed as not, and swamps the count.
		// scripts/test.sh runs this test without it.
		t.Skip("under the race detector the page faults of its shadow memory swamp the count (scripts/test.sh runs this test without it)")
	}
	faults := func(mode string) int64 {
		return childFigure(t, "TestClassFaultsChild", "faults ", classFaultsChild+"="+mode)
	}
	// The fewest of five warmed children, against the median of three
	// touched: a warmed child sometimes takes several times its usual
	// faults (a CI run after the race run: 69 against 116 touched, with
	// 9-20 usual), as the runtime's background work returns or takes pages
	// at its own pace; what warmHeap can save shows in the fewest.
	children := func(mode string, n int) []int64 {
		f := make([]int64, n)
		for i := range f {
			f[i] = faults(mode)
		}
		slices.Sort(f)
		return f
	}
	warm, touched := children("warm", 5)[0], children("touched", 3)[1]
	if touched < 20 || warm*2 > touched {
		t.Fatalf("page faults of a first use of the size classes: %d warmed, %d with the heap only touched; want at least 20 touched, and at most half of that warmed", warm, touched)
	}
	t.Logf("page faults of a first use of the size classes: %d warmed, %d with the heap only touched", warm, touched)
}
