package main

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// DefaultComputePort is the controller's compute API port.
const DefaultComputePort = 8774

// config holds the global options after the environment is applied.
type config struct {
	Controller  string // host name, or a full URL with scheme
	ComputePort int
	TenantID    string
	TenantName  string
	Username    string
	Password    string
	Identity    string // Keystone base URL
	CAFile      string
	Token       string // used as is when set
	Verbosity   int    // -v: 2 and more log every API call on stderr
}

// envVars maps each global flag to its environment variable.
var envVars = []struct{ flag, env string }{
	{"controller", "CIAO_CONTROLLER"},
	{"computeport", "CIAO_COMPUTEPORT"},
	{"tenant-id", "CIAO_TENANT_ID"},
	{"tenant-name", "CIAO_TENANT_NAME"},
	{"username", "CIAO_USERNAME"},
	{"password", "CIAO_PASSWORD"},
	{"identity", "CIAO_IDENTITY"},
	{"ca-file", "CIAO_CA_CERT_FILE"},
	{"token", "CIAO_TOKEN"},
}

// globalFlags defines the global options on fs, writing into c.
func globalFlags(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.Controller, "controller", "", "controller host name or address (or a URL such as https://host:8774) [CIAO_CONTROLLER]")
	fs.IntVar(&c.ComputePort, "computeport", DefaultComputePort, "controller compute API port [CIAO_COMPUTEPORT]")
	fs.StringVar(&c.TenantID, "tenant-id", "", "tenant (project) id [CIAO_TENANT_ID]")
	fs.StringVar(&c.TenantName, "tenant-name", "", "tenant (project) name to scope the identity token to [CIAO_TENANT_NAME]")
	fs.StringVar(&c.Username, "username", "", "identity user name [CIAO_USERNAME]")
	fs.StringVar(&c.Password, "password", "", "identity password [CIAO_PASSWORD]")
	fs.StringVar(&c.Identity, "identity", "", "identity (Keystone v3) base URL, e.g. https://host:35357 [CIAO_IDENTITY]")
	fs.StringVar(&c.CAFile, "ca-file", "", "extra CA certificate (PEM) trusted for the controller and the identity service [CIAO_CA_CERT_FILE]")
	fs.StringVar(&c.Token, "token", "", "API token sent as X-Auth-Token, instead of a username/password login [CIAO_TOKEN]")
	fs.IntVar(&c.Verbosity, "v", 0, "log level: 2 or more logs every API request, its status and response on standard error")
	// The 2016 CLI had glog's flags; scripts passing them keep working.
	var ignored string
	for _, name := range []string{"log_dir", "log_backtrace_at", "stderrthreshold", "vmodule"} {
		fs.StringVar(&ignored, name, "", "accepted for compatibility with the 2016 ciao-cli; ignored")
	}
	var ignoredBool bool
	for _, name := range []string{"logtostderr", "alsologtostderr"} {
		fs.BoolVar(&ignoredBool, name, false, "accepted for compatibility with the 2016 ciao-cli; ignored (diagnostics always go to standard error)")
	}
}

// parseGlobal parses the global options in args and fills every option
// the command line left unset from getenv: a flag given on the command
// line always wins. It returns the remaining arguments (command first).
func parseGlobal(args []string, getenv func(string) string, stderr io.Writer) (config, []string, error) {
	var c config
	fs := flag.NewFlagSet("ciao-cli", flag.ContinueOnError)
	fs.SetOutput(stderr)
	globalFlags(fs, &c)
	fs.Usage = func() { globalUsage(stderr, fs) }
	if err := fs.Parse(args); err != nil {
		return c, nil, usageErr(err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, ev := range envVars {
		v := strings.TrimSpace(getenv(ev.env))
		if set[ev.flag] || v == "" {
			continue
		}
		if err := fs.Set(ev.flag, v); err != nil {
			if ev.flag == "computeport" {
				return c, nil, fmt.Errorf("%s=%q is not a port number; set it to the controller's compute port (default %d) or unset it", ev.env, v, DefaultComputePort)
			}
			return c, nil, fmt.Errorf("%s=%q: %v", ev.env, v, err)
		}
	}
	if c.ComputePort <= 0 || c.ComputePort > 65535 {
		return c, nil, fmt.Errorf("compute port %d out of range; use -computeport or CIAO_COMPUTEPORT with a value in 1-65535", c.ComputePort)
	}
	if fs.NArg() == 0 {
		globalUsage(stderr, fs)
		return c, nil, errUsage
	}
	return c, fs.Args(), nil
}

// baseURL is the compute API root, https://<controller>:<port>/v2.1,
// or <controller>/v2.1 when the controller is given as a URL.
func (c config) baseURL() string {
	if strings.Contains(c.Controller, "://") {
		return strings.TrimRight(c.Controller, "/") + "/v2.1"
	}
	return "https://" + c.Controller + ":" + strconv.Itoa(c.ComputePort) + "/v2.1"
}

// checkCredentials reports, in one line, every required option still
// missing.
func (c config) checkCredentials() error {
	var missing []string
	if c.Controller == "" {
		missing = append(missing, "controller (-controller or CIAO_CONTROLLER)")
	}
	if c.Token == "" {
		var ks []string
		if c.Identity == "" {
			ks = append(ks, "identity URL")
		}
		if c.Username == "" {
			ks = append(ks, "username")
		}
		if c.Password == "" {
			ks = append(ks, "password")
		}
		if len(ks) > 0 {
			missing = append(missing, "credentials: set CIAO_TOKEN (-token), or CIAO_IDENTITY, CIAO_USERNAME and CIAO_PASSWORD (missing "+strings.Join(ks, ", ")+")")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(missing, "; missing "))
	}
	return nil
}
