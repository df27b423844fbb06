// Command ciao-cert creates the certificates a ciao cluster runs on: the
// self-signed trust anchor, which is also the scheduler's certificate, and
// the anchor-signed certificates of controllers, launchers and CNCI agents,
// each proving its SSNTP roles. Its flags and file names are those of the
// 2016 tool, so existing setup scripts keep working.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	cfg, err := parseArgs(os.Args[1:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ciao-cert: %v (see -help)\n", err)
		os.Exit(2)
	}
	if err := run(cfg, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "ciao-cert: %v\n", err)
		os.Exit(1)
	}
}

const usageHead = `Usage:
  ciao-cert -anchor -role scheduler -host HOST[,HOST...] [options]
      Create the self-signed trust anchor, which in ciao is also the
      scheduler's certificate. Writes CAcert-HOST.pem (certificate only,
      the CA file every peer trusts) and cert-<Roles>HOST.pem (certificate
      followed by its private key), e.g. cert-Scheduler-localhost.pem.

  ciao-cert -anchor-cert FILE -role ROLE[,ROLE...] -host HOST[,HOST...] [options]
      Create a certificate signed by the anchor in FILE (the anchor's
      cert-<Roles>HOST.pem, which holds its key). Writes cert-<Roles>HOST.pem,
      e.g. cert-CNAgent-NetworkingAgent-localhost.pem.

  ciao-cert -dump FILE
      Describe the certificate in FILE and exit.

HOST is the first -host entry. Files holding a key are written with mode
0600, the CA file with 0644; existing files are replaced.

Options:
`

// parseArgs turns command-line arguments into a config. -help prints the
// usage to helpOut and returns flag.ErrHelp.
func parseArgs(args []string, helpOut io.Writer) (config, error) {
	cfg := newConfig()
	fs := flag.NewFlagSet("ciao-cert", flag.ContinueOnError)
	// Errors are returned as one line and reported by the caller; the
	// usage is printed only when asked for.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}

	fs.StringVar(&cfg.Hosts, "host", cfg.Hosts, "comma-separated `names` the peer is reached by; IP literals become IP SANs, the others DNS SANs; the first names the output files (required)")
	fs.StringVar(&cfg.IPs, "ip", cfg.IPs, "comma-separated IP `addresses` added as IP SANs")
	fs.BoolVar(&cfg.Anchor, "anchor", cfg.Anchor, "create the self-signed trust anchor (CA:TRUE)")
	fs.BoolVar(&cfg.Anchor, "server", cfg.Anchor, "same as -anchor (2016 name)")
	fs.StringVar(&cfg.AnchorCert, "anchor-cert", cfg.AnchorCert, "anchor certificate+key `file` that signs the new certificate")
	fs.StringVar(&cfg.AnchorCert, "server-cert", cfg.AnchorCert, "same as -anchor-cert `file` (2016 name)")
	fs.StringVar(&cfg.Roles, "role", cfg.Roles, "comma-separated SSNTP `roles`: agent, scheduler, controller, netagent, server, cnciagent, unknown (required)")
	fs.StringVar(&cfg.Email, "email", cfg.Email, "email `address` SAN")
	fs.StringVar(&cfg.Organization, "organization", cfg.Organization, "subject `organization` (O=), the subject's only attribute")
	fs.StringVar(&cfg.Directory, "directory", cfg.Directory, "`dir`ectory the files are written to; created if missing")
	fs.BoolVar(&cfg.Verify, "verify", cfg.Verify, "verify the new certificate against the anchor and print OK")
	fs.StringVar(&cfg.Dump, "dump", cfg.Dump, "describe the certificate in `file` and exit")
	fs.StringVar(&cfg.KeyType, "key-type", cfg.KeyType, "key `type`: ecdsa (P-256), rsa, or p521 (ECDSA P-521)")
	fs.BoolVar(&cfg.Elliptic, "elliptic-key", cfg.Elliptic, "use an ECDSA P-521 key, as the 2016 tool did (same as -key-type p521)")
	fs.IntVar(&cfg.RSABits, "rsa-bits", cfg.RSABits, "RSA key size in `bits`, with -key-type rsa (at least 2048)")
	fs.StringVar(&cfg.Validity, "validity", cfg.Validity, "how long the certificate is valid: `days`, or a Go duration such as 720h")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(helpOut, usageHead)
			fs.SetOutput(helpOut)
			fs.PrintDefaults()
		}
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return cfg, nil
}
