//go:build !linux

package bench

import "os"

// fdatasync flushes f's data (fsync where there is no fdatasync).
func fdatasync(f *os.File) error { return f.Sync() }
