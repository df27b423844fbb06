package api

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/gorilla/mux"
)

// probeMethods are the methods tried to build the Allow header.
var probeMethods = []string{http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodPatch, http.MethodPost, http.MethodPut}

// methodNotAllowed answers a known path asked with a method none of its
// routes has: 405, an Allow header listing the methods that path takes,
// and the OpenStack error object (§6.1 leaves 404 or 405 open; 405 tells
// the client what is wrong).
func methodNotAllowed(r *mux.Router) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", strings.Join(AllowedMethods(r, req), ", "))
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s", req.Method, req.URL.Path))
	})
}

// AllowedMethods lists, in alphabetical order, the methods some route of
// r takes for req's path: the Allow header of a 405. A route without a
// method matcher takes all, but every route of the API (and of the
// identity service, which uses it too) has one.
func AllowedMethods(r *mux.Router, req *http.Request) []string {
	var out []string
	for _, m := range probeMethods {
		probe := req.Clone(req.Context())
		probe.Method = m
		var match mux.RouteMatch
		if r.Match(probe, &match) && match.MatchErr == nil {
			out = append(out, m)
		}
	}
	return out
}
