// Command launcher-bench measures the Docker backend against the docker CLI
// on the same engine, in the same run: the time from START to a running
// container (median of -runs, interleaved) and -n containers started back
// to back. It prints one line per figure. It needs a running engine and the
// image (scripts/start-dockerd.sh, scripts/test-image.sh), and removes
// every container it creates.
//
// With -rss process, docker or sim it instead measures the memory and the
// CPU (per instance per second, over -cpu-window) of the real launcher
// binary running -n instances of that backend, started by an in-process
// scheduler (see runRSS); run it as root from the repository
// (it builds ./ciao-launcher unless -launcher names a binary).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/ciao-launcher/internal/driver/docker"
	"github.com/ciao-project/ciao/uuid"
)

func main() {
	img := flag.String("image", "ciao-test/busybox:latest", "image to start (must be loaded)")
	runs := flag.Int("runs", 7, "single-start samples per side")
	n := flag.Int("n", 100, "containers started back to back per side; instances with -rss")
	rss := flag.String("rss", "", "measure the launcher's RSS and CPU with -n instances of this backend (process, docker or sim) instead")
	cpuWindow := flag.Duration("cpu-window", 10*time.Second, "with -rss: measure the launcher's CPU over this window (0 = no CPU figure)")
	cpuProfile := flag.String("cpuprofile", "", "with -rss: the launcher writes its CPU profile here (go tool pprof)")
	bin := flag.String("launcher", "", "ciao-launcher binary for -rss (default: build it)")
	flag.Parse()
	var err error
	if *rss != "" {
		err = runRSS(context.Background(), *rss, *bin, *img, *n, *cpuWindow, *cpuProfile)
	} else {
		err = run(context.Background(), *img, *runs, *n)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "launcher-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, img string, runs, n int) error {
	d, err := docker.New(docker.Config{StopGrace: time.Second})
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Ping(ctx); err != nil {
		return err
	}
	// The driver labels containers with their instances root; the CLI
	// containers get the same label so one Reset removes both sides.
	root, err := os.MkdirTemp("", "launcher-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	defer func() { _ = d.Reset(context.WithoutCancel(ctx), root) }()

	ciao := func() (time.Duration, error) {
		id := uuid.Generate().String()
		spec := driver.Spec{InstanceUUID: id, Dir: filepath.Join(root, id), VCPUs: 1, MemMB: 32, Image: img}
		t0 := time.Now()
		h, err := d.Start(ctx, spec)
		if err != nil {
			return 0, err
		}
		if ok, err := d.Running(ctx, h); !ok || err != nil {
			return 0, fmt.Errorf("container %s not running after Start: %v", h.ID, err)
		}
		return time.Since(t0), nil
	}
	cli := func() (time.Duration, error) {
		t0 := time.Now()
		out, err := exec.CommandContext(ctx, "docker", "run", "-d", "--network", "none", "--cpus", "1", "--memory", "32m",
			"--label", docker.LabelRoot+"="+root, img).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("docker run: %v: %s", err, out)
		}
		return time.Since(t0), nil
	}

	var cs, ds []time.Duration
	for i := 0; i < runs; i++ {
		c, err := ciao()
		if err != nil {
			return err
		}
		r, err := cli()
		if err != nil {
			return err
		}
		cs, ds = append(cs, c), append(ds, r)
	}
	mc, md := median(cs), median(ds)
	fmt.Printf("start->running (median of %d): ciao %v, docker run -d %v, ratio %.2f\n", runs, mc.Round(time.Millisecond), md.Round(time.Millisecond), float64(mc)/float64(md))
	if err := d.Reset(ctx, root); err != nil {
		return err
	}

	loop := func(f func() (time.Duration, error)) (time.Duration, error) {
		t0 := time.Now()
		for i := 0; i < n; i++ {
			if _, err := f(); err != nil {
				return 0, err
			}
		}
		return time.Since(t0), nil
	}
	tc, err := loop(ciao)
	if err != nil {
		return err
	}
	if err := d.Reset(ctx, root); err != nil {
		return err
	}
	td, err := loop(cli)
	if err != nil {
		return err
	}
	fmt.Printf("%d containers back to back: ciao %v, docker run -d loop %v, ratio %.2f\n", n, tc.Round(time.Millisecond), td.Round(time.Millisecond), float64(tc)/float64(td))
	return nil
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
