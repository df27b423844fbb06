package webui

import (
	"embed"
	"io/fs"
	"net/http"
)

// assets is the browser UI: index.html, app.js and its modules, style.css
// and the vendored chart library (assets/vendor, uPlot, MIT licence).
//
//go:embed assets
var assets embed.FS

// Assets returns the UI file system (rooted at the assets directory).
func Assets() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	return sub
}

// assetHandler serves the UI. Only "/" and real files exist: the UI
// routes with the URL fragment (#/instances/...), which never reaches the
// server. Files are revalidated on each load (no-cache), so an upgraded
// daemon never serves a stale mix of modules.
func assetHandler(fsys fs.FS) http.Handler {
	fsrv := http.FileServer(http.FS(fsys))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, http.StatusMethodNotAllowed, "Only GET and HEAD are served here.")
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		fsrv.ServeHTTP(w, r)
	})
}
