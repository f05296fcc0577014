//go:build !unix

package store

import (
	"os"
	"time"
)

// lockFile does nothing here: bbolt locks the file itself once it has it,
// so the pages are checked before the lock is held.
func lockFile(*os.File, bool, time.Duration) error { return nil }

// written is how much of the file is on disk blocks: its size here.
func written(fi os.FileInfo) int64 { return fi.Size() }
