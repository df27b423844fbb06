package networking

import (
	"fmt"
	"strings"
)

// ResetNetwork deletes every link this package made in the namespace of
// cfg (any link with one of its aliases or one of its name prefixes), for
// ciao-launcher -hard-reset (§5.6). Unlike 2016 it leaves links with
// foreign aliases alone. It returns the links it could not delete.
func ResetNetwork(cfg Config) ([]string, error) {
	s, err := openSpace(cfg.Netns)
	if err != nil {
		return nil, err
	}
	defer s.close()
	links, err := s.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	var failed []string
	for _, l := range links {
		a := l.Attrs()
		mine := ours(a.Name)
		for _, p := range []string{aliasBridge, aliasTunnel, aliasVnic, aliasCnciVnic} {
			if strings.HasPrefix(a.Alias, p) {
				mine = true
			}
		}
		if !mine {
			continue
		}
		if err := s.h.LinkDel(l); err != nil {
			failed = append(failed, a.Name)
		}
	}
	if len(failed) > 0 {
		return failed, fmt.Errorf("networking: reset: could not delete %v", failed)
	}
	return nil, nil
}
