package scheduler

import (
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/uuid"
)

// hbController and hbNode are what a heartbeat line shows.
type hbController struct {
	id     string
	master bool
}

type hbNode struct {
	id                 string
	status             ssntp.Status
	mru                bool
	memAvail, memTotal int
	load               int
}

// heartbeat prints one status line per period until stop closes. It writes
// to a console (the -heartbeat flag is for a person watching), not to the
// logs.
func (s *Scheduler) heartbeat(stop <-chan struct{}) {
	out := log.New(s.cfg.HeartbeatOut, "", log.LstdFlags)
	t := time.NewTicker(s.cfg.HeartbeatEvery)
	defer t.Stop()
	for iter := 0; ; iter++ {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctls, nodes := s.heartbeatState()
		out.Print(heartbeatLine(iter, ctls, nodes))
	}
}

// heartbeatState copies what the line shows: at most two controllers
// (master first) and four compute nodes.
func (s *Scheduler) heartbeatState() ([]hbController, []hbNode) {
	s.members.Lock()
	var ctls []hbController
	for i, c := range s.controllers {
		if i == 2 {
			break
		}
		ctls = append(ctls, hbController{id: c.id.String(), master: c.master})
	}
	s.members.Unlock()
	s.mu.Lock()
	var nodes []hbNode
	for i := range s.cn.nodes {
		if len(nodes) == 4 {
			break
		}
		if s.cn.ids[i] == uuid.Nil {
			continue
		}
		n := &s.cn.nodes[i]
		nodes = append(nodes, hbNode{
			id: s.cn.ids[i].String(), status: s.cn.status[i], mru: i == s.cn.last,
			memAvail: n.MemAvailMB, memTotal: n.MemTotalMB, load: n.Load,
		})
	}
	s.mu.Unlock()
	return ctls, nodes
}

func short(id string) string {
	if len(id) < 8 {
		return id // the 2016 code sliced blindly and panicked here
	}
	return id[:8]
}

// heartbeatLine formats one heartbeat exactly as the 2016 scheduler did
// (scheduler.md §9), header included every 22nd line (the original meant
// to and never did).
func heartbeatLine(iter int, ctls []hbController, nodes []hbNode) string {
	if len(ctls) == 0 && len(nodes) == 0 {
		return "** idle / disconnected **\n"
	}
	var b strings.Builder
	if iter%22 == 21 {
		b.WriteString("Controllers\t\t\t\t\tCompute Nodes\n")
	}
	switch {
	case len(ctls) == 0:
		b.WriteString(" -no Controller- \t\t\t\t\t")
	default:
		for i, c := range ctls {
			if i > 0 && c.master {
				return "ERROR multiple controller masters"
			}
		}
		for i, c := range ctls {
			if i > 0 {
				b.WriteString(", ")
			}
			role := "BACKUP"
			if c.master {
				role = "MASTER"
			}
			fmt.Fprintf(&b, "controller-%s:%s", short(c.id), role)
		}
		if len(ctls) == 1 {
			b.WriteString("\t\t\t\t")
		} else {
			b.WriteString("\t\t")
		}
	}
	if len(nodes) == 0 {
		b.WriteString(" -no Compute Nodes-")
	}
	for i, n := range nodes {
		if i > 0 {
			b.WriteString(", ")
		}
		mark := ""
		if n.mru {
			mark = "*"
		}
		fmt.Fprintf(&b, "node-%s:%s%s:%d/%d,%d", short(n.id), n.status, mark, n.memAvail, n.memTotal, n.load)
	}
	return b.String()
}
