package networking

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"
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
			// Deleting one end of a veth removes its peer too: a link
			// that is already gone is not a failure.
			if _, lerr := s.h.LinkByIndex(a.Index); errors.As(lerr, new(netlink.LinkNotFoundError)) {
				continue
			}
			failed = append(failed, a.Name)
		}
	}
	if len(failed) > 0 {
		return failed, fmt.Errorf("networking: reset: could not delete %v", failed)
	}
	return nil, nil
}
