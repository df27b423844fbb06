package launcher

import (
	"bufio"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// nodeStats are the raw node figures of READY and STATS; −1 is unknown.
type nodeStats struct {
	MemTotalMB, MemAvailableMB   int
	DiskTotalMB, DiskAvailableMB int
	Load, CPUsOnline             int
}

var cpuLine = regexp.MustCompile(`^cpu[0-9]+`)

// readNodeStats collects the node figures as the 2016 launcher did (§9.1).
func readNodeStats(procRoot, stateDir string) nodeStats {
	n := nodeStats{-1, -1, -1, -1, -1, -1}
	if f, err := os.Open(procRoot + "/meminfo"); err == nil {
		kb := map[string]int{}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) >= 2 {
				if v, err := strconv.Atoi(fs[1]); err == nil {
					kb[strings.TrimSuffix(fs[0], ":")] = v
				}
			}
		}
		f.Close()
		if v, ok := kb["MemTotal"]; ok {
			n.MemTotalMB = v / 1024
		}
		free, ok1 := kb["MemFree"]
		act, ok2 := kb["Active(file)"]
		inact, ok3 := kb["Inactive(file)"]
		if ok1 && ok2 && ok3 {
			n.MemAvailableMB = (free + act + inact) / 1024
		}
	}
	var sfs syscall.Statfs_t
	if err := syscall.Statfs(stateDir, &sfs); err == nil {
		n.DiskTotalMB = int(uint64(sfs.Bsize) * sfs.Blocks / 1000000)
		n.DiskAvailableMB = int(uint64(sfs.Bsize) * sfs.Bavail / 1000000)
	}
	if b, err := os.ReadFile(procRoot + "/loadavg"); err == nil {
		if fs := strings.Fields(string(b)); len(fs) > 0 {
			if v, err := strconv.ParseFloat(fs[0], 64); err == nil {
				n.Load = int(v)
			}
		}
	}
	if f, err := os.Open(procRoot + "/stat"); err == nil {
		sc := bufio.NewScanner(f)
		count, first := 0, true
		for sc.Scan() {
			if first {
				first = false
				continue
			}
			if !cpuLine.MatchString(sc.Text()) {
				break
			}
			count++
		}
		f.Close()
		n.CPUsOnline = count
	}
	return n
}
