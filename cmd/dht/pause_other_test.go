//go:build !unix

package main

import (
	"os"
	"testing"
)

// pauseProcess needs SIGSTOP, which this system does not have.
func pauseProcess(t *testing.T, _ *os.Process) {
	t.Helper()
	t.Skip("no SIGSTOP on this system: the test pauses a process")
}

func resumeProcess(t *testing.T, _ *os.Process) { t.Helper() }
