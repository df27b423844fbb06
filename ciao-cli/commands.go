package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ciao-project/ciao/ciao-cli/internal/client"
)

// app is what a sub-command runs with.
type app struct {
	cfg    config
	api    *client.Client
	tokens client.TokenSource
	stdout io.Writer
	stderr io.Writer
	poll   time.Duration // -wait polling interval
}

// tenant returns the tenant id to act for: the identity token's project,
// or -tenant-id / CIAO_TENANT_ID with a static token.
func (a *app) tenant(ctx context.Context) (string, error) {
	t, err := a.tokens.Token(ctx)
	if err != nil {
		return "", err
	}
	if t.ProjectID != "" {
		return t.ProjectID, nil
	}
	if a.cfg.TenantID == "" {
		return "", errors.New("missing tenant id: set -tenant-id or CIAO_TENANT_ID to your project id")
	}
	return a.cfg.TenantID, nil
}

// subcommand is one "<command> <sub-command>".
type subcommand struct {
	name, desc string
	// data describes the value -f templates run on ("" when no -f).
	data string
	// local sub-commands talk to no controller: they run without
	// credentials and with a.api and a.tokens nil.
	local bool
	// setup defines the flags on fs and returns the action.
	setup func(fs *flag.FlagSet) func(ctx context.Context, a *app) error
}

type command struct {
	name string
	subs []subcommand
	// note, if set, is printed in the command's usage.
	note string
}

// commands is the command table; each file adds its own.
func commands() []command {
	cs := []command{instanceCommand(), workloadCommand(), eventCommand(), tenantCommand(), completionCommand(),
		nodeCommand(), traceCommand(), imageCommand(), volumeCommand(), quotasCommand()}
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	return cs
}

const title = "ciao-cli: Command-line interface for the Cloud Integrated Advanced Orchestrator (CIAO)"

func globalUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "%s\n\nUsage:\n\n\tciao-cli [options] command sub-command [flags]\n\nThe options are:\n\n", title)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprintf(w, "\nThe commands are:\n\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "\t%s\n", c.name)
	}
	fmt.Fprintf(w, "\nUse \"ciao-cli command -help\" for more information about that command.\n")
	fmt.Fprintf(w, "\n%s\n", completionInstall)
}

func commandUsage(w io.Writer, c command) {
	fmt.Fprintf(w, "%s\n\nUsage:\n\n\tciao-cli [options] %s sub-command [flags]\n\nThe sub-commands are:\n\n", title, c.name)
	names := make([]string, len(c.subs))
	for i, s := range c.subs {
		names[i] = s.name
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "\t%s\n", n)
	}
	fmt.Fprintf(w, "\nUse \"ciao-cli %s sub-command -help\" for more information about that sub-command.\n", c.name)
	if c.note != "" {
		fmt.Fprintf(w, "\n%s\n", c.note)
	}
}

func subUsage(w io.Writer, c command, s subcommand, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: ciao-cli [options] %s %s [flags]\n\n%s\n\nThe %s flags are:\n\n", c.name, s.name, s.desc, s.name)
	fs.SetOutput(w)
	fs.PrintDefaults()
	if s.data != "" {
		fmt.Fprintf(w, "\nThe template passed to the -f option operates on a\n\n%s\n", s.data)
	}
}

// runEnv is run with an explicit environment: parse everything (no
// network), then check credentials, then run the sub-command.
func runEnv(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, rest, err := parseGlobal(args, getenv, stderr)
	if err != nil {
		return err
	}
	var cmd *command
	for _, c := range commands() {
		if c.name == rest[0] {
			cmd = &c
			break
		}
	}
	if cmd == nil {
		names := make([]string, 0, 4)
		for _, c := range commands() {
			names = append(names, c.name)
		}
		return &usageMsg{fmt.Sprintf("unknown command %q; the commands are %s (see 'ciao-cli -help')", rest[0], strings.Join(names, ", "))}
	}
	if len(rest) < 2 {
		commandUsage(stderr, *cmd)
		return errUsage
	}
	var sub *subcommand
	for _, s := range cmd.subs {
		if s.name == rest[1] {
			sub = &s
			break
		}
	}
	if sub == nil {
		commandUsage(stderr, *cmd)
		if rest[1] == "-help" || rest[1] == "--help" || rest[1] == "-h" {
			return errUsage
		}
		return &usageMsg{fmt.Sprintf("unknown %s sub-command %q; the sub-commands are listed above", cmd.name, rest[1])}
	}
	fs := flag.NewFlagSet(cmd.name+" "+sub.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	action := sub.setup(fs)
	fs.Usage = func() { subUsage(stderr, *cmd, *sub, fs) }
	if err := fs.Parse(rest[2:]); err != nil {
		return usageErr(err)
	}
	var a *app
	if sub.local {
		a = &app{cfg: cfg, stdout: stdout, stderr: stderr}
	} else {
		if err := cfg.checkCredentials(); err != nil {
			return err
		}
		if a, err = newApp(cfg, stdout, stderr); err != nil {
			return err
		}
	}
	if err := action(ctx, a); err != nil {
		var um *usageMsg
		if errors.As(err, &um) {
			subUsage(stderr, *cmd, *sub, fs)
			return err
		}
		return explain(err, cmd.name+" "+sub.name)
	}
	return nil
}

func newApp(cfg config, stdout, stderr io.Writer) (*app, error) {
	hc, err := client.NewHTTPClient(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("%v; check -ca-file or CIAO_CA_CERT_FILE", err)
	}
	var ts client.TokenSource = client.StaticToken{ID: cfg.Token}
	if cfg.Token == "" {
		cache := ""
		if d, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(d, "ciao-cli")
		}
		ts = &client.Keystone{URL: cfg.Identity, User: cfg.Username, Password: cfg.Password,
			ProjectName: cfg.TenantName, ProjectID: cfg.TenantID, CacheDir: cache, HTTP: hc}
	}
	ccfg := client.Config{BaseURL: cfg.baseURL(), Tokens: ts, HTTP: hc}
	if cfg.Verbosity >= 2 {
		ccfg.Debug = stderr
	}
	api, err := client.New(ccfg)
	if err != nil {
		return nil, err
	}
	return &app{cfg: cfg, api: api, tokens: ts, stdout: stdout, stderr: stderr, poll: time.Second}, nil
}

// explain prefixes err with the command and adds what to do about it.
func explain(err error, what string) error {
	var ae *client.APIError
	var amb *client.AmbiguousProjectError
	hint := ""
	switch {
	case errors.As(err, &amb):
		hint = "choose one with -tenant-name (CIAO_TENANT_NAME) or -tenant-id (CIAO_TENANT_ID)"
	case errors.Is(err, client.ErrUnreachable):
		hint = "check -controller/CIAO_CONTROLLER, -computeport/CIAO_COMPUTEPORT (or -identity) and that the service is running"
	case errors.Is(err, client.ErrAuth):
		hint = "check -username/-password/-identity (CIAO_USERNAME, CIAO_PASSWORD, CIAO_IDENTITY)"
	case errors.As(err, &ae):
		switch ae.Status {
		case http.StatusUnauthorized:
			hint = "the controller refused the token: check CIAO_TOKEN or your credentials, and that the command is allowed for your tenant (some need admin)"
		case http.StatusForbidden:
			hint = "not allowed for this tenant or over quota; see 'ciao-cli tenant list -quotas'"
		case http.StatusNotFound:
			hint = notFoundHint(what)
		case http.StatusMethodNotAllowed:
			hint = "this controller does not support the request; upgrade the controller"
		}
	}
	msg := what + ": " + err.Error()
	if hint != "" {
		msg += " (" + hint + ")"
	}
	return errors.New(strings.TrimSpace(msg))
}

// output holds the -f and -json flags shared by listing sub-commands.
type output struct {
	format string
	json   bool
}

func (o *output) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.format, "f", "", "Go template used to format the output")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON")
}

// custom renders v with -f or -json and reports whether it did; the
// caller prints the human format otherwise.
func (o *output) custom(w io.Writer, v any) (bool, error) {
	switch {
	case o.format != "" && o.json:
		return true, &usageMsg{"-f and -json cannot be used together"}
	case o.format != "":
		return true, render(w, o.format, v)
	case o.json:
		return true, writeJSON(w, v)
	}
	return false, nil
}

// table writes rows with the 2016 layout (cli.md §6.4): tabwriter with
// padding 1, flushed after every row, so the header lines up with the
// first row only.
func table(w io.Writer, header []string, rows [][]string) error {
	if len(rows) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 1, 1, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// notFoundHint says where valid ids of what ("<command> <sub-command>")
// are listed.
func notFoundHint(what string) string {
	switch strings.Fields(what)[0] {
	case "image":
		return "check the id; 'ciao-cli image list' shows valid ones"
	case "node":
		return "check the id; 'ciao-cli node list -compute' and 'ciao-cli node list -cnci' show valid ones"
	}
	return "check the id; 'ciao-cli instance list' and 'ciao-cli workload list' show valid ones"
}
