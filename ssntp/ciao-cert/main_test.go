package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ciao-project/ciao/ssntp"
	"github.com/ciao-project/ciao/ssntp/certs"
)

// ciaoCert runs the command as main does, minus the exit, and returns what
// it printed.
func ciaoCert(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cfg, err := parseArgs(args, &out)
	if err != nil {
		return out.String(), err
	}
	err = run(cfg, &out)
	return out.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := ciaoCert(t, args...)
	if err != nil {
		t.Fatalf("ciao-cert %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// checkFile asserts a file's mode and PEM block types.
func checkFile(t *testing.T, path string, perm os.FileMode, blocks ...string) []byte {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != perm {
		t.Errorf("%s: mode %v, want %v", filepath.Base(path), fi.Mode().Perm(), perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rest := b; ; {
		var typ string
		if i := bytes.Index(rest, []byte("-----BEGIN ")); i >= 0 {
			rest = rest[i+len("-----BEGIN "):]
			typ = string(rest[:bytes.Index(rest, []byte("-----"))])
		} else {
			break
		}
		got = append(got, typ)
	}
	if strings.Join(got, ",") != strings.Join(blocks, ",") {
		t.Errorf("%s: blocks %q, want %q", filepath.Base(path), got, blocks)
	}
	return b
}

// TestCISetup reproduces the CI certificate setup (tooling.md §5.8) in a
// temporary directory, with both the 2016 and the current flag names.
func TestCISetup(t *testing.T) {
	for _, names := range []struct{ anchor, anchorCert string }{
		{"-anchor", "-anchor-cert"},
		{"-server", "-server-cert"},
	} {
		t.Run(names.anchor, func(t *testing.T) {
			dir := t.TempDir()
			out := mustRun(t, "-host", "localhost", names.anchor, "-role", "scheduler", "-directory", dir, "-verify")
			if !strings.Contains(out, "OK") {
				t.Errorf("-verify printed no OK:\n%s", out)
			}
			ca := checkFile(t, filepath.Join(dir, "CAcert-localhost.pem"), 0o644, "CERTIFICATE")
			anchor := filepath.Join(dir, "cert-Scheduler-localhost.pem")
			checkFile(t, anchor, 0o600, "CERTIFICATE", "EC PRIVATE KEY")

			for _, tc := range []struct {
				role string
				file string
				want ssntp.Role
			}{
				{"agent", "cert-CNAgent-localhost.pem", ssntp.AGENT},
				{"agent,netagent", "cert-CNAgent-NetworkingAgent-localhost.pem", ssntp.AGENT | ssntp.NETAGENT},
				{"netagent,agent", "cert-CNAgent-NetworkingAgent-localhost.pem", ssntp.AGENT | ssntp.NETAGENT},
				{"controller", "cert-Controller-localhost.pem", ssntp.Controller},
				{"cnciagent", "cert-CNCIAgent-localhost.pem", ssntp.CNCIAGENT},
				{"netagent", "cert-NetworkingAgent-localhost.pem", ssntp.NETAGENT},
				{"server", "cert-Server-localhost.pem", ssntp.SERVER},
				{"unknown", "cert-localhost.pem", 0},
			} {
				out := mustRun(t, "-host", "localhost", names.anchorCert, anchor, "-role", tc.role, "-directory", dir, "-verify")
				if !strings.Contains(out, tc.file) || !strings.Contains(out, "OK") {
					t.Errorf("-role %s printed:\n%s", tc.role, out)
				}
				leaf := checkFile(t, filepath.Join(dir, tc.file), 0o600, "CERTIFICATE", "EC PRIVATE KEY")
				if got, err := certs.Verify(ca, leaf); err != nil || got != tc.want {
					t.Errorf("-role %s: Verify = %#x, %v; want %#x", tc.role, got, err, tc.want)
				}
			}
		})
	}
}

func TestOptions(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "-anchor", "-host", "sched.example,10.0.0.1", "-ip", "198.51.100.1", "-role", "scheduler",
		"-organization", "Intel", "-email", "ops@example.com", "-key-type", "rsa", "-rsa-bits", "2048",
		"-validity", "30", "-directory", dir)
	anchor := filepath.Join(dir, "cert-Scheduler-sched.example.pem")
	b := checkFile(t, anchor, 0o600, "CERTIFICATE", "RSA PRIVATE KEY")
	in, err := certs.Describe(b)
	if err != nil {
		t.Fatal(err)
	}
	if in.Key != "RSA" || in.Subject != "O=Intel" || !in.IsCA || in.Emails[0] != "ops@example.com" ||
		len(in.IPs) != 2 || strings.Join(in.DNSNames, ",") != "sched.example" ||
		in.NotAfter.Sub(in.NotBefore).Hours() < 30*24 || in.NotAfter.Sub(in.NotBefore).Hours() > 31*24 {
		t.Errorf("anchor: %+v", in)
	}

	for _, tc := range []struct {
		args    []string
		keyType string
	}{
		{[]string{"-elliptic-key"}, "ECDSA P-521"},
		{[]string{"-key-type", "p521"}, "ECDSA P-521"},
		{[]string{"-key-type", "ecdsa", "-validity", "720h"}, "ECDSA P-256"},
		{nil, "ECDSA P-256"},
	} {
		sub := t.TempDir()
		args := append([]string{"-anchor-cert", anchor, "-host", "node1", "-role", "agent", "-directory", sub}, tc.args...)
		mustRun(t, args...)
		in, err := certs.Describe(checkFile(t, filepath.Join(sub, "cert-CNAgent-node1.pem"), 0o600, "CERTIFICATE", "EC PRIVATE KEY"))
		if err != nil {
			t.Fatal(err)
		}
		if in.Key != tc.keyType || in.IsCA || in.Issuer != "O=Intel" || in.SignatureAlgorithm.String() != "SHA256-RSA" {
			t.Errorf("%v: %+v", tc.args, in)
		}
	}
}

func TestDirectoryCreatedAndFilesReplaced(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	args := []string{"-anchor", "-host", "localhost", "-role", "scheduler", "-directory", dir}
	mustRun(t, args...)
	first, _ := os.ReadFile(filepath.Join(dir, "cert-Scheduler-localhost.pem"))
	// A loosely permitted leftover must not keep its mode.
	if err := os.Chmod(filepath.Join(dir, "cert-Scheduler-localhost.pem"), 0o666); err != nil {
		t.Fatal(err)
	}
	mustRun(t, args...)
	second := checkFile(t, filepath.Join(dir, "cert-Scheduler-localhost.pem"), 0o600, "CERTIFICATE", "EC PRIVATE KEY")
	if bytes.Equal(first, second) {
		t.Error("second run did not replace the certificate")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("directory holds %d entries, want 2 (no temporary files left)", len(entries))
	}
}

func TestDump(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "-anchor", "-host", "localhost", "-role", "scheduler", "-directory", dir)
	anchor := filepath.Join(dir, "cert-Scheduler-localhost.pem")
	mustRun(t, "-anchor-cert", anchor, "-host", "localhost", "-role", "agent,netagent", "-directory", dir)

	for _, tc := range []struct {
		file string
		want []string
	}{
		{"cert-CNAgent-NetworkingAgent-localhost.pem", []string{"CNAgent-NetworkingAgent (0x14)", "CA:           false", "Private key:  true", "localhost"}},
		{"CAcert-localhost.pem", []string{"Scheduler (0x08)", "CA:           true", "Private key:  false"}},
	} {
		out := mustRun(t, "-dump", filepath.Join(dir, tc.file))
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("-dump %s lacks %q:\n%s", tc.file, w, out)
			}
		}
	}
	if _, err := ciaoCert(t, "-dump", filepath.Join(dir, "missing.pem")); err == nil {
		t.Error("-dump of a missing file succeeded")
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "-anchor", "-host", "localhost", "-role", "scheduler", "-directory", dir)
	anchor := filepath.Join(dir, "cert-Scheduler-localhost.pem")
	caOnly := filepath.Join(dir, "CAcert-localhost.pem")
	mustRun(t, "-anchor-cert", anchor, "-host", "localhost", "-role", "agent", "-directory", dir)
	leaf := filepath.Join(dir, "cert-CNAgent-localhost.pem")
	out := t.TempDir()

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no role", []string{"-anchor", "-host", "localhost"}, "missing -role"},
		{"empty role", []string{"-anchor", "-host", "localhost", "-role", " "}, "missing -role"},
		{"unknown role", []string{"-anchor", "-host", "localhost", "-role", "agent,launcher"}, `unknown role "launcher"`},
		{"role case", []string{"-anchor", "-host", "localhost", "-role", "Agent"}, `unknown role "Agent"`},
		{"missing host", []string{"-anchor", "-role", "scheduler"}, "missing -host"},
		{"blank host", []string{"-anchor", "-role", "scheduler", "-host", ","}, "missing -host"},
		{"host with slash", []string{"-anchor", "-role", "scheduler", "-host", "../x"}, "cannot name a file"},
		{"no mode", []string{"-host", "localhost", "-role", "agent"}, "need -anchor"},
		{"both modes", []string{"-anchor", "-anchor-cert", anchor, "-host", "localhost", "-role", "agent"}, "exclude each other"},
		{"unreadable anchor", []string{"-anchor-cert", filepath.Join(dir, "nope.pem"), "-host", "localhost", "-role", "agent"}, "no such file"},
		{"anchor without key", []string{"-anchor-cert", caOnly, "-host", "localhost", "-role", "agent"}, "has no private key"},
		{"leaf as anchor", []string{"-anchor-cert", leaf, "-host", "localhost", "-role", "agent"}, "not a CA"},
		{"bad ip", []string{"-anchor", "-host", "localhost", "-role", "scheduler", "-ip", "10.0.0.300"}, "not an IP address"},
		{"bad key type", []string{"-anchor", "-host", "localhost", "-role", "scheduler", "-key-type", "dsa"}, "unknown key type"},
		{"elliptic rsa", []string{"-anchor", "-host", "localhost", "-role", "scheduler", "-elliptic-key", "-key-type", "rsa"}, "contradicts"},
		{"short rsa", []string{"-anchor", "-host", "localhost", "-role", "scheduler", "-key-type", "rsa", "-rsa-bits", "1024"}, "below 2048"},
		{"bad validity", []string{"-anchor", "-host", "localhost", "-role", "scheduler", "-validity", "a year"}, "number of days"},
		{"zero validity", []string{"-anchor", "-host", "localhost", "-role", "scheduler", "-validity", "0"}, "not a positive"},
		{"unknown flag", []string{"-anchor", "-hosts", "localhost"}, "-hosts"},
		{"stray argument", []string{"-anchor", "-host", "localhost", "-role", "scheduler", "extra"}, `unexpected argument "extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, "-directory", out)
			_, err := ciaoCert(t, args...)
			if err == nil {
				t.Fatal("succeeded")
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q, want one line containing %q", msg, tc.want)
			}
		})
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("failed runs wrote %d files", len(entries))
	}
}

func TestHelp(t *testing.T) {
	out, err := ciaoCert(t, "-help")
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-help returned %v", err)
	}
	for _, w := range []string{"CAcert-HOST.pem", "cert-<Roles>HOST.pem", "-anchor-cert", "-server-cert", "same as -anchor",
		"-elliptic-key", "-key-type", "-validity", "-dump", "-verify", "cnciagent", "0600"} {
		if !strings.Contains(out, w) {
			t.Errorf("-help lacks %q", w)
		}
	}
}
