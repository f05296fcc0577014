//go:build unix

package store

import (
	"errors"
	"os"
	"syscall"
	"time"

	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"
)

// lockFile takes the lock bbolt takes (flock, exclusive or shared), the same
// way: retried every 50ms until timeout (0: forever), then ErrTimeout. bbolt
// then locks the same descriptor again, which succeeds at once.
func lockFile(f *os.File, exclusive bool, timeout time.Duration) error {
	how := unix.LOCK_SH | unix.LOCK_NB
	if exclusive {
		how = unix.LOCK_EX | unix.LOCK_NB
	}
	// A timeout of zero tries once (bbolt's zero waits for ever, which
	// no caller here wants: every wait says how long it waits).
	deadline := time.Now().Add(timeout)
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return berrors.ErrTimeout
		}
		time.Sleep(min(left, 50*time.Millisecond))
	}
}

// written is how much of the file is on disk blocks, holes left out (its
// size where the system does not say).
func written(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return fi.Size()
}
