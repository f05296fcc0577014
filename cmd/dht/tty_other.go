//go:build !linux

package main

import (
	"io"
	"os"
)

// isTerminal reports whether r is a character device, which is a terminal
// in interactive use.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// pollable returns r as it is: only Linux reads stdin through the poller.
func pollable(r io.Reader) (io.Reader, func()) { return r, func() {} }

// pollableOut returns w as it is: only Linux writes stdout through the
// poller.
func pollableOut(w io.Writer) (io.Writer, func()) { return w, func() {} }
