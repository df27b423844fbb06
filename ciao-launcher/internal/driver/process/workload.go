package process

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"gopkg.in/yaml.v2"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
)

// Marker is the line that makes a START's cloud-init user data a bare-metal
// process workload. It is a YAML comment, so the document stays valid
// cloud-config:
//
//	---
//	#cloud-config
//	#ciao-process
//	runcmd:
//	  - [ /usr/bin/my-app, --port, "8080" ]
//	...
//
// The command is the first runcmd entry: a list is the argv (no shell), a
// string is run with /bin/sh -c. Later entries are ignored with a warning.
const Marker = "#ciao-process"

// IsWorkload reports whether the user data asks for a process instance.
func IsWorkload(userData []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(userData))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == Marker {
			return true
		}
	}
	return false
}

// Command extracts the argv of a process workload from its user data. The
// error wraps driver.ErrBadSpec.
func Command(userData []byte) ([]string, error) {
	var doc struct {
		RunCmd []interface{} `yaml:"runcmd"`
	}
	if err := yaml.Unmarshal(userData, &doc); err != nil {
		return nil, fmt.Errorf("%w: user data: %v", driver.ErrBadSpec, err)
	}
	if len(doc.RunCmd) == 0 {
		return nil, fmt.Errorf("%w: user data has no runcmd", driver.ErrBadSpec)
	}
	var argv []string
	switch c := doc.RunCmd[0].(type) {
	case string:
		if strings.TrimSpace(c) == "" {
			return nil, fmt.Errorf("%w: empty runcmd", driver.ErrBadSpec)
		}
		argv = []string{"/bin/sh", "-c", c}
	case []interface{}:
		for _, a := range c {
			if a == nil {
				return nil, fmt.Errorf("%w: null runcmd argument", driver.ErrBadSpec)
			}
			argv = append(argv, fmt.Sprint(a))
		}
	default:
		return nil, fmt.Errorf("%w: runcmd entry is a %T, want a list or a string", driver.ErrBadSpec, c)
	}
	if len(argv) == 0 || argv[0] == "" {
		return nil, fmt.Errorf("%w: empty runcmd", driver.ErrBadSpec)
	}
	return argv, nil
}
