// Command ciao-release builds a versioned release (package release):
//
//	ciao-release -version 1.2.3 [-repo .] [-out dist] [-goos linux] [-goarch amd64]
//
// It prints the files it wrote. `make release VERSION=1.2.3` runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/ciao-project/ciao/_release/release"
)

func parseFlags(args []string, stderr io.Writer) (release.Config, error) {
	c := release.NewConfig()
	fs := flag.NewFlagSet("ciao-release", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Version, "version", "", "release version, x.y.z (its tag is vx.y.z)")
	fs.StringVar(&c.RepoDir, "repo", c.RepoDir, "Ciao source tree (a git repository)")
	fs.StringVar(&c.OutDir, "out", c.OutDir, "output directory")
	fs.StringVar(&c.GOOS, "goos", c.GOOS, "target operating system")
	fs.StringVar(&c.GOARCH, "goarch", c.GOARCH, "target architecture")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return c, c.Validate()
}

func main() {
	c, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ciao-release:", err)
		os.Exit(2)
	}
	c.Logf = log.New(os.Stderr, "", log.Ltime).Printf
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := release.Build(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ciao-release:", err)
		os.Exit(1)
	}
	fmt.Printf("%s\n%s\n%s\n", r.Tarball, r.Notes, r.Sums)
}
