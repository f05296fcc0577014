//go:build !linux

package bench

import "syscall"

// childAttr: no parent-death signal outside Linux; a bench stopped by a
// signal still ends its children (Options.Ctx).
func childAttr() *syscall.SysProcAttr { return nil }
