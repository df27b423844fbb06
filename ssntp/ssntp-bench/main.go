// Command ssntp-bench measures the SSNTP library and prints one line per
// figure: frames per second one way on one connection next to raw TLS
// writes of the same bytes, mutual-TLS connections accepted per second,
// and memory per idle connection on each side.
//
//	go run ./ssntp/ssntp-bench                  # every figure
//	go run ./ssntp/ssntp-bench -only accept     # one of: throughput, accept, idle
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"
)

type config struct {
	only        string
	frames      int
	acceptFor   time.Duration
	dialers     int
	idleClients int
	keyType     string
	serveIdle   bool
	cpuProfile  string
}

func main() {
	var cfg config
	flag.StringVar(&cfg.only, "only", "", "run one figure: throughput, accept or idle (default all)")
	flag.IntVar(&cfg.frames, "frames", 200000, "frames per throughput run")
	flag.DurationVar(&cfg.acceptFor, "accept-time", 5*time.Second, "how long to measure connection set-up")
	flag.IntVar(&cfg.dialers, "dialers", 8, "concurrent dialling goroutines for the accept figure")
	flag.IntVar(&cfg.idleClients, "idle-clients", 5000, "idle connections for the memory figure")
	flag.StringVar(&cfg.keyType, "key-type", "ecdsa", "certificate keys: ecdsa (P-256), rsa or p521")
	flag.BoolVar(&cfg.serveIdle, "serve-idle", false, "internal: run the idle-memory server child")
	flag.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err == nil {
			_ = pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(cfg); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "ssntp-bench:", err)
		os.Exit(1)
	}
}
