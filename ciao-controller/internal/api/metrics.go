package api

import (
	"net/http"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/metrics"
	"github.com/gorilla/mux"
)

// recorder remembers the status code and the matched route template.
type recorder struct {
	http.ResponseWriter
	code  int
	route string
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// routeName is the mux middleware that tells the recorder which route
// matched.
func routeName(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rec, ok := w.(*recorder); ok {
			if cr := mux.CurrentRoute(r); cr != nil {
				if t, err := cr.GetPathTemplate(); err == nil {
					rec.route = t
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// instrument counts every request by route template ("unmatched" when no
// route matched the path), method and status code, and times it.
func instrument(m *metrics.Metrics, h http.Handler) http.Handler {
	if m == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w, route: "unmatched"}
		h.ServeHTTP(rec, r)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		m.Request(rec.route, r.Method, rec.code, time.Since(start))
	})
}
