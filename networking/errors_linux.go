package networking

import "syscall"

var errNotSupported = syscall.EOPNOTSUPP
