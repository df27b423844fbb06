package api

import (
	"net/http"
	"strings"
)

// Version discovery. OpenStack clients (keystoneauth, openstacksdk) GET
// the root of each catalog endpoint before using it, to learn the API
// version and the microversion range; without an answer they guess and
// send no microversion. These documents need no token, as in Nova and
// Glance.
//
//   - GET /v2.1 and /v2.1/: the compute version, microversions 2.1 to
//     2.1 (the compute endpoint in the catalog is /v2.1/<project>).
//   - GET /: with the image API on, the image API root of §6.5 (the
//     catalog's image endpoint is the unversioned base URL); without,
//     the compute versions list.

// computeMicroversion is the one microversion served: the 2.1 base.
const computeMicroversion = "2.1"

func origin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func computeVersion(r *http.Request) map[string]any {
	return map[string]any{
		"id": "v2.1", "status": "CURRENT", "version": computeMicroversion, "min_version": computeMicroversion,
		"updated": "2013-07-23T11:33:21Z",
		"links":   []map[string]string{{"rel": "self", "href": origin(r) + "/v2.1/"}},
		"media-types": []map[string]string{{"base": "application/json",
			"type": "application/vnd.openstack.compute+json;version=2.1"}},
	}
}

func (s *server) computeVersionDoc(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"version": computeVersion(r)})
}

func (s *server) rootVersions(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Images == nil {
		writeJSON(w, http.StatusOK, map[string]any{"versions": []any{computeVersion(r)}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": []any{map[string]any{
		"id": "v2.3", "status": "CURRENT",
		"links": []map[string]string{{"rel": "self", "href": origin(r) + "/v2/"}},
	}}})
}

// microversioned reports whether the client asked for a compute
// microversion (OpenStack clients do once discovery told them the
// range). ciao-cli never does; it gets the 2016 shapes, whose quirks
// (the image UUID as a flavor's "disk") it relies on.
func microversioned(r *http.Request) bool {
	if r.Header.Get("X-OpenStack-Nova-API-Version") != "" {
		return true
	}
	for _, v := range r.Header.Values("OpenStack-API-Version") {
		if strings.HasPrefix(strings.TrimSpace(v), "compute ") {
			return true
		}
	}
	return false
}

// flavorExtraSpecs is GET /v2.1/{tenant}/flavors/{flavor}/os-extra_specs,
// which `openstack flavor list` reads for every flavor: workloads have no
// extra specs, so it is {"extra_specs":{}} for a flavor showFlavor would
// show, 404 otherwise.
func (s *server) flavorExtraSpecs(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.flavor(w, r); !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]map[string]string{"extra_specs": {}})
}
