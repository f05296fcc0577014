package store

import "syscall"

const sysFstatat = syscall.SYS_NEWFSTATAT
