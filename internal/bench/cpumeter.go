package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// cpuMeter reads the CPU time of processes' threads from their schedstat
// files, kept open: a reading is one pread a thread. The bench reads it
// right before a command it times, and opening the files there (as usage
// does, with the threads' status and the processes' stat besides) took
// 4–6 ms for 25 processes, long enough for this machine's CPUs to go idle
// and the command to start cold. Linux only: elsewhere it opens nothing
// and reads 0.
type cpuMeter struct {
	pids  []int
	tasks map[string]bool // the task directories opened
	files []*os.File
	buf   [128]byte
}

func newCPUMeter(pids []int) *cpuMeter {
	m := &cpuMeter{pids: pids, tasks: map[string]bool{}}
	m.refresh()
	return m
}

// refresh opens the schedstat of every thread started since the last
// refresh; readings before it leave those threads out (see cpuDelta).
func (m *cpuMeter) refresh() {
	for _, pid := range m.pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
		for _, t := range tasks {
			if m.tasks[t] {
				continue
			}
			if f, err := os.Open(filepath.Join(t, "schedstat")); err == nil {
				m.tasks[t] = true
				m.files = append(m.files, f)
			}
		}
	}
}

// read returns each thread's CPU time in ns, in the order the files were
// opened; -1 for a thread that could not be read (gone).
func (m *cpuMeter) read() []float64 {
	v := make([]float64, len(m.files))
	for i, f := range m.files {
		v[i] = -1
		n, _ := f.ReadAt(m.buf[:], 0)
		if end := bytes.IndexByte(m.buf[:n], ' '); end > 0 {
			if ns, err := strconv.ParseFloat(string(m.buf[:end]), 64); err == nil {
				v[i] = ns
			}
		}
	}
	return v
}

func (m *cpuMeter) close() {
	for _, f := range m.files {
		f.Close()
	}
	m.files, m.tasks = nil, map[string]bool{}
}

// cpuDelta is the CPU time between two readings, in ns: a thread opened
// after the first counts from its start, and one gone by the second is
// left out.
func cpuDelta(before, after []float64) (ns float64) {
	for i, a := range after {
		switch {
		case a < 0:
		case i >= len(before):
			ns += a
		case before[i] >= 0:
			ns += a - before[i]
		}
	}
	return ns
}
