package api

import (
	"net/http"

	"github.com/ciao-project/ciao/ciao-controller/internal/images"
	"github.com/golang/glog"
)

// imageAuth authenticates an image route (§3.3 without a {tenant}: any
// valid project-scoped token; the image service applies ownership and visibility). The
// body is not bounded here: the image service bounds JSON and uploads
// itself.
func (s *server) imageAuth(h images.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get("X-Auth-Token")
		if tok == "" {
			unauthorized(w)
			return
		}
		id, err := s.cfg.Auth.Authenticate(r.Context(), tok)
		if err != nil {
			glog.V(1).Infof("%s %s: token refused: %v", r.Method, r.URL.Path, err)
			unauthorized(w)
			return
		}
		if id.TenantID == "" { // unscoped: as owner "" it would share images with every unscoped caller
			glog.V(1).Infof("%s %s: unscoped token refused", r.Method, r.URL.Path)
			unauthorized(w)
			return
		}
		h(w, r, images.Caller{TenantID: id.TenantID, Admin: id.IsAdmin()})
	})
}
