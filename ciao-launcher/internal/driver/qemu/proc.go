package qemu

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// errNoProcess: no process with that pid.
var errNoProcess = errors.New("qemu: no such process")

// procStat holds the /proc/<pid>/stat fields the driver uses.
type procStat struct {
	State      byte   // field 3
	CPUTicks   uint64 // fields 14+15, utime+stime
	StartTicks uint64 // field 22, start time since boot
}

func readProcStat(procRoot string, pid int) (procStat, error) {
	b, err := os.ReadFile(procRoot + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return procStat{}, errNoProcess
		}
		return procStat{}, err
	}
	return parseProcStat(b)
}

// parseProcStat counts fields from the last ')': the command name may hold
// spaces and parentheses (qemu's is set by -name).
func parseProcStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("qemu: malformed stat %q", b)
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("qemu: malformed stat %q", b)
	}
	num := func(n int) uint64 {
		v, _ := strconv.ParseUint(string(f[n-3]), 10, 64)
		return v
	}
	return procStat{State: f[0][0], CPUTicks: num(14) + num(15), StartTicks: num(22)}, nil
}

// readRSSMB is VmRSS from /proc/<pid>/status in MB: what the VM costs the
// host, guest RAM it touched included.
func readRSSMB(procRoot string, pid int) (int, error) {
	f, err := os.Open(procRoot + "/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return parseKB(v)
		}
	}
	return -1, errors.New("qemu: no VmRSS")
}

func parseKB(v string) (int, error) {
	fs := strings.Fields(v)
	if len(fs) == 0 {
		return -1, errors.New("qemu: empty VmRSS")
	}
	kb, err := strconv.Atoi(fs[0])
	if err != nil {
		return -1, fmt.Errorf("qemu: VmRSS %q: %v", v, err)
	}
	return kb / 1024, nil
}
