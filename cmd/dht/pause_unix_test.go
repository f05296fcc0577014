//go:build unix

package main

import (
	"os"
	"syscall"
	"testing"
)

// pauseProcess stops p (SIGSTOP) until resumeProcess: a process that is
// there and does nothing.
func pauseProcess(t *testing.T, p *os.Process) {
	t.Helper()
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

func resumeProcess(t *testing.T, p *os.Process) {
	t.Helper()
	if err := p.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}
