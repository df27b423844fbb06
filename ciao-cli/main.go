// Command ciao-cli is the command-line client of a Ciao cluster. It talks
// to ciao-controller's compute API over HTTPS only and imports nothing
// from the daemons:
//
//	ciao-cli [global options] <command> <sub-command> [flags]
//
// The grammar, global options, CIAO_* environment variables, output
// formats and -f templates follow the 2016 ciao-cli (cli.md), with its
// quirks fixed: the command line is parsed before any login (C1), login
// failures are fatal (C2), deletes accept 202 and 204 (C3), and errors
// are one line on stderr without a stack dump (C9).
//
// Commands: instance, workload, tenant, event, node, trace, image,
// volume and completion (bash, zsh). Every listing takes -f (a Go
// template over the Go records of package client, as in 2016) or -json
// (the controller's JSON keys). The glog flags of 2016 are accepted; -v 2
// logs every API call on stderr (C8). volume keeps the 2016 grammar but
// fails: the controller has no volume API yet. image talks to the
// controller's /v2/images on the compute port.
//
// Exit status: 0 on success, 2 when usage was shown, 1 on any other
// failure.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(report(err, os.Stderr))
}

// run executes one ciao-cli command line with the process environment.
func run(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runEnv(ctx, args, os.Getenv, stdout, stderr)
}

// errUsage means usage text was printed; exit status 2.
var errUsage = errors.New("usage")

// usageErr turns a flag parse failure into errUsage (flag has already
// printed the message and the usage).
func usageErr(error) error { return errUsage }

// usageMsg is a usage failure with a message to print before exiting.
type usageMsg struct{ msg string }

func (u *usageMsg) Error() string   { return u.msg }
func (u *usageMsg) Is(t error) bool { return t == errUsage }

// report prints err as a single line and returns the exit status.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var um *usageMsg
	if errors.As(err, &um) {
		fmt.Fprintln(stderr, "ciao-cli:", oneLine(um.msg))
		return 2
	}
	if errors.Is(err, errUsage) {
		return 2
	}
	fmt.Fprintln(stderr, "ciao-cli:", oneLine(err.Error()))
	return 1
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
