package devcluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// CLI runs ciao-cli against the cluster as one user.
type CLI struct {
	Bin string   // ciao-cli binary
	Env []string // CIAO_* variables (ReadEnvFile)
	// Timeout bounds one command (0: 60 s).
	Timeout time.Duration
}

// NewCLI is ciao-cli as user ("admin" or "demo") of the cluster in cfg.
func (c Config) NewCLI(user string) (CLI, error) {
	env, err := ReadEnvFile(c.EnvFile(user))
	if err != nil {
		return CLI{}, err
	}
	return CLI{Bin: c.Bin("ciao-cli"), Env: env}, nil
}

// Run runs one command; err includes stderr when it fails.
func (c CLI) Run(ctx context.Context, args ...string) (string, error) {
	t := c.Timeout
	if t == 0 {
		t = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Bin, args...)
	cmd.Env = append(os.Environ(), c.Env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("ciao-cli %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}
