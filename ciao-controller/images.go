package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/ciao-controller/internal/images"
)

// registerImageFlags adds the image service flags. An empty -image-dir
// turns the image API off (and is what tests built from newConfig get).
func registerImageFlags(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.ImageDir, "image-dir", images.DefaultDir, "image data directory of the /v2/images API (empty: no image API)")
}

// newImages starts the image service on store, or returns nil when
// cfg.ImageDir is empty.
func newImages(ctx context.Context, cfg config, store *datastore.SQLite) (*images.Service, error) {
	if cfg.ImageDir == "" {
		return nil, nil
	}
	svc, err := images.New(ctx, images.NewConfig(cfg.ImageDir, store))
	if err != nil {
		return nil, fmt.Errorf("image service: %w", err)
	}
	return svc, nil
}
