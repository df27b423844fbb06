package process

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// procStat is what the launcher reads from /proc/<pid>/stat.
type procStat struct {
	State      byte   // field 3: R, S, D, Z, T...
	CPUTicks   uint64 // fields 14+15: utime+stime
	StartTicks uint64 // field 22: start time since boot
	RSSPages   int64  // field 24
}

// errNoProcess: no process with that pid.
var errNoProcess = errors.New("process: no such process")

// readProcStat reads and parses /proc/<pid>/stat under procRoot.
func readProcStat(procRoot string, pid int) (procStat, error) {
	b, err := os.ReadFile(procRoot + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, errSearch) {
			return procStat{}, errNoProcess
		}
		return procStat{}, err
	}
	return parseProcStat(b)
}

// parseProcStat parses one /proc/<pid>/stat line. The command name (field 2)
// may hold spaces and parentheses, so fields are counted from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("process: malformed stat %q", b)
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3
	field := func(n int) (uint64, error) {
		if n-3 >= len(f) {
			return 0, fmt.Errorf("process: stat has no field %d", n)
		}
		return strconv.ParseUint(string(f[n-3]), 10, 64)
	}
	if len(f) < 1 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("process: malformed stat state in %q", b)
	}
	var s procStat
	s.State = f[0][0]
	ut, err := field(14)
	if err != nil {
		return procStat{}, err
	}
	st, err := field(15)
	if err != nil {
		return procStat{}, err
	}
	s.CPUTicks = ut + st
	if s.StartTicks, err = field(22); err != nil {
		return procStat{}, err
	}
	rss, err := field(24)
	if err != nil {
		// RSS can be negative in theory; treat an unparsable one as unknown.
		rss = 0
	}
	s.RSSPages = int64(rss)
	return s, nil
}
