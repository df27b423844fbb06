// Package images is ciao-controller's image service: the OpenStack image
// v2 subset (create, upload, list, show, update, download, delete) with
// the data on local disk and the metadata in the datastore. Update is
// PATCH with a JSON patch (patch.go): name, visibility, formats while
// queued, and additional properties.
//
// Layout: the data of image <id> is the file <Dir>/<id>, the name a
// launcher's image cache uses too (launcher spec, backing images), so a
// launcher fills its cache with GET /v2/images/{id}/file. An upload
// streams into a temporary file <Dir>/.upload-<id>-* while the md5
// checksum and the sha256 hash are computed, is synced and then renamed
// to <Dir>/<id>; only after the rename is the record marked active. So a
// crash or a broken upload never leaves an active image without its full
// data: the record is put back to queued and the temporary file removed
// (at once, or by New after a crash).
//
// Status: queued → saving (upload streaming) → active. A failed upload
// goes back to queued; uploading to a saving or active image is 409.
//
// Visibility: a caller sees public images and its own tenant's images;
// admins see all. Another tenant's private image is 403. Only admins
// create public images. Only the owner or an admin uploads, updates or
// deletes; only an admin makes an image public.
//
// Errors are the OpenStack error object:
//
//	{"error":{"code":404,"name":"Not Found","message":"..."}}
package images

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/uuid"
	"github.com/golang/glog"
	"github.com/gorilla/mux"
)

// Defaults.
const (
	DefaultDir     = "/var/lib/ciao/images"
	DefaultMaxSize = 64 << 30 // 64 GiB
	DefaultMaxJSON = 64 << 10
	tmpPrefix      = ".upload-"
)

// Sentinels.
var (
	ErrForbidden = errors.New("images: forbidden")
	ErrConflict  = errors.New("images: conflict")
	ErrTooLarge  = errors.New("images: image too large")
)

// Caller is who makes a request, as the API's Authenticator proved it.
type Caller struct {
	TenantID string
	Admin    bool
}

// Config configures the service. Build it with NewConfig.
type Config struct {
	Dir     string               // image data directory, created 0755 if missing
	Store   datastore.ImageStore // metadata
	MaxSize int64                // largest image accepted (413 beyond)
	MaxJSON int64                // largest JSON request body
	Now     func() time.Time     // clock (tests)
}

// NewConfig returns a Config with the defaults.
func NewConfig(dir string, store datastore.ImageStore) Config {
	return Config{Dir: dir, Store: store, MaxSize: DefaultMaxSize, MaxJSON: DefaultMaxJSON, Now: time.Now}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("images config: empty directory")
	case c.Store == nil:
		return errors.New("images config: no store")
	case c.MaxSize <= 0 || c.MaxJSON <= 0:
		return errors.New("images config: max sizes must be > 0")
	case c.Now == nil:
		return errors.New("images config: no clock")
	}
	return nil
}

// Service serves the image API. It holds no mutable state of its own:
// every transition is a transaction on the store, so it is safe for
// concurrent use.
type Service struct {
	cfg Config
}

// New creates the directory if needed and recovers from a crash: images
// left saving go back to queued and stray temporary files are removed.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("images: create %s: %w", cfg.Dir, err)
	}
	tmps, err := filepath.Glob(filepath.Join(cfg.Dir, tmpPrefix+"*"))
	if err != nil {
		return nil, fmt.Errorf("images: list temporary files: %w", err)
	}
	for _, p := range tmps {
		if err := os.Remove(p); err != nil {
			return nil, fmt.Errorf("images: remove stale upload: %w", err)
		}
		glog.Infof("images: removed stale upload %s", p)
	}
	s := &Service{cfg: cfg}
	all, err := cfg.Store.Images(ctx)
	if err != nil {
		return nil, fmt.Errorf("images: recover: %w", err)
	}
	for _, img := range all {
		if img.Status != datastore.ImageSaving {
			continue
		}
		if _, err := s.setQueued(ctx, img.ID); err != nil {
			return nil, fmt.Errorf("images: recover %s: %w", img.ID, err)
		}
		glog.Infof("images: upload of %s was interrupted; back to queued", img.ID)
	}
	return s, nil
}

// Handler is an image API handler; the wrapper that registers it has
// already authenticated the caller.
type Handler func(w http.ResponseWriter, r *http.Request, c Caller)

// Register adds the routes to r, each wrapped by wrap (authentication).
func (s *Service) Register(r *mux.Router, wrap func(Handler) http.Handler) {
	r.Handle("/v2/images", wrap(s.create)).Methods(http.MethodPost)
	r.Handle("/v2/images", wrap(s.list)).Methods(http.MethodGet)
	r.Handle("/v2/images/{id}", wrap(s.show)).Methods(http.MethodGet)
	r.Handle("/v2/images/{id}", wrap(s.delete)).Methods(http.MethodDelete)
	r.Handle("/v2/images/{id}", wrap(s.patch)).Methods(http.MethodPatch) // patch.go
	r.Handle("/v2/images/{id}/file", wrap(s.upload)).Methods(http.MethodPut)
	r.Handle("/v2/images/{id}/file", wrap(s.download)).Methods(http.MethodGet)
}

// Path is where image id's data lives.
func (s *Service) Path(id string) string { return filepath.Join(s.cfg.Dir, id) }

// imageJSON is the OpenStack image v2 Image.
type imageJSON struct {
	ID              string   `json:"id"`
	Name            string   `json:"name"`
	Status          string   `json:"status"`
	DiskFormat      *string  `json:"disk_format"`
	ContainerFormat *string  `json:"container_format"`
	Size            *int64   `json:"size"`
	VirtualSize     *int64   `json:"virtual_size"`
	Checksum        *string  `json:"checksum"`
	HashAlgo        *string  `json:"os_hash_algo"`
	HashValue       *string  `json:"os_hash_value"`
	Visibility      string   `json:"visibility"`
	Owner           string   `json:"owner"`
	Protected       bool     `json:"protected"`
	MinDisk         int      `json:"min_disk"`
	MinRAM          int      `json:"min_ram"`
	Tags            []string `json:"tags"`
	CreatedAt       string   `json:"created_at"`
	UpdatedAt       string   `json:"updated_at"`
	Self            string   `json:"self"`
	File            string   `json:"file"`
	Schema          string   `json:"schema"`
	// Props are the additional properties, top-level keys of the image
	// object as in Glance (MarshalJSON).
	Props map[string]string `json:"-"`
}

// coreKeys are imageJSON's own keys, which no property replaces.
var coreKeys = func() map[string]bool {
	m := map[string]bool{}
	t := reflect.TypeOf(imageJSON{})
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			m[name] = true
		}
	}
	return m
}()

// MarshalJSON writes the image with its additional properties as
// top-level keys, sorted, after the core ones (patch.go keeps them from
// shadowing a core key; one that would is left out): one encoding of the
// core object, the properties appended.
func (j imageJSON) MarshalJSON() ([]byte, error) {
	type plain imageJSON
	b, err := json.Marshal(plain(j))
	if err != nil || len(j.Props) == 0 {
		return b, err
	}
	keys := make([]string, 0, len(j.Props))
	for k := range j.Props {
		if !coreKeys[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	b = b[:len(b)-1] // reopen the object
	for _, k := range keys {
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		vb, err := json.Marshal(j.Props[k])
		if err != nil {
			return nil, err
		}
		b = append(append(append(append(b, ','), kb...), ':'), vb...)
	}
	return append(b, '}'), nil
}

func orNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func stamp(ns int64) string {
	return time.Unix(0, ns).UTC().Format(time.RFC3339)
}

func toJSON(i datastore.Image) imageJSON {
	j := imageJSON{ID: i.ID, Name: i.Name, Status: i.Status, DiskFormat: orNull(i.DiskFormat),
		ContainerFormat: orNull(i.ContainerFormat), Checksum: orNull(i.Checksum),
		HashAlgo: orNull(i.HashAlgo), HashValue: orNull(i.HashValue), Visibility: i.Visibility,
		Owner: i.Owner, Tags: []string{}, CreatedAt: stamp(i.CreatedAt), UpdatedAt: stamp(i.UpdatedAt),
		Self: "/v2/images/" + i.ID, File: "/v2/images/" + i.ID + "/file", Schema: "/v2/schemas/image", Props: i.Properties}
	if i.Size >= 0 {
		size := i.Size
		j.Size = &size
	}
	return j
}

// createRequest is the POST /v2/images body; other fields are ignored.
type createRequest struct {
	ID              string `json:"id"`
	Name            string `json:"name"`
	DiskFormat      string `json:"disk_format"`
	ContainerFormat string `json:"container_format"`
	Visibility      string `json:"visibility"`
}

// decodeJSON decodes r's body, at most MaxJSON bytes, into v: an
// ErrTooLarge error when it is longer, an ErrInvalid one saying bad
// when it does not decode.
func (s *Service) decodeJSON(w http.ResponseWriter, r *http.Request, v any, bad string) error {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.cfg.MaxJSON)).Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return ErrTooLarge
		}
		return fmt.Errorf("%s: %v: %w", bad, err, datastore.ErrInvalid)
	}
	return nil
}

func (s *Service) create(w http.ResponseWriter, r *http.Request, c Caller) {
	var req createRequest
	if err := s.decodeJSON(w, r, &req, "malformed JSON"); err != nil {
		fail(w, r, fmt.Errorf("create image: %w", err))
		return
	}
	if req.ID == "" {
		req.ID = uuid.Generate().String()
	} else if u, err := uuid.Parse(req.ID); err != nil {
		fail(w, r, fmt.Errorf("create image: bad id %q: %w", req.ID, datastore.ErrInvalid))
		return
	} else {
		req.ID = u.String()
	}
	switch req.DiskFormat {
	case "", "qcow2", "raw", "iso":
	default:
		fail(w, r, fmt.Errorf("create image: disk_format %q not one of qcow2, raw, iso: %w", req.DiskFormat, datastore.ErrInvalid))
		return
	}
	switch req.ContainerFormat {
	case "", "bare":
	default:
		fail(w, r, fmt.Errorf("create image: container_format %q is not bare: %w", req.ContainerFormat, datastore.ErrInvalid))
		return
	}
	switch req.Visibility {
	case "":
		req.Visibility = "private"
	case "private":
	case "public":
		if !c.Admin {
			fail(w, r, fmt.Errorf("create image: only admins publish images: %w", ErrForbidden))
			return
		}
	default:
		fail(w, r, fmt.Errorf("create image: visibility %q not public or private: %w", req.Visibility, datastore.ErrInvalid))
		return
	}
	now := s.cfg.Now().UnixNano()
	img := datastore.Image{ID: req.ID, Name: req.Name, Status: datastore.ImageQueued, DiskFormat: req.DiskFormat,
		ContainerFormat: req.ContainerFormat, Size: -1, Visibility: req.Visibility, Owner: c.TenantID,
		CreatedAt: now, UpdatedAt: now}
	if err := s.cfg.Store.CreateImage(r.Context(), img); err != nil {
		fail(w, r, err)
		return
	}
	glog.V(1).Infof("images: created %s (%q) for tenant %s", img.ID, img.Name, img.Owner)
	w.Header().Set("Location", "/v2/images/"+img.ID)
	writeJSON(w, http.StatusCreated, toJSON(img))
}

func visible(i datastore.Image, c Caller) bool {
	return c.Admin || i.Visibility == "public" || i.Owner == c.TenantID
}

func (s *Service) list(w http.ResponseWriter, r *http.Request, c Caller) {
	all, err := s.cfg.Store.Images(r.Context())
	if err != nil {
		fail(w, r, err)
		return
	}
	out := make([]imageJSON, 0, len(all))
	for _, i := range all {
		if visible(i, c) {
			out = append(out, toJSON(i))
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Images []imageJSON `json:"images"`
		Schema string      `json:"schema"`
		First  string      `json:"first"`
	}{out, "/v2/schemas/images", "/v2/images"})
}

// get loads the image named in the route and checks the caller may see
// it; write also requires ownership (or admin).
func (s *Service) get(r *http.Request, c Caller, write bool) (datastore.Image, error) {
	id := mux.Vars(r)["id"]
	img, err := s.cfg.Store.Image(r.Context(), id)
	if err != nil {
		return img, err
	}
	if !visible(img, c) || (write && !c.Admin && img.Owner != c.TenantID) {
		return img, fmt.Errorf("image %s belongs to another tenant: %w", id, ErrForbidden)
	}
	return img, nil
}

func (s *Service) show(w http.ResponseWriter, r *http.Request, c Caller) {
	img, err := s.get(r, c, false)
	if err != nil {
		fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toJSON(img))
}

func (s *Service) delete(w http.ResponseWriter, r *http.Request, c Caller) {
	img, err := s.get(r, c, true)
	if err != nil {
		fail(w, r, err)
		return
	}
	if _, err := s.cfg.Store.DeleteImage(r.Context(), img.ID); err != nil {
		fail(w, r, err)
		return
	}
	// An upload still streaming notices the record is gone when it
	// finishes and removes its own file.
	if err := os.Remove(s.Path(img.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		glog.Warningf("images: removing data of deleted image %s: %v", img.ID, err)
	}
	glog.V(1).Infof("images: deleted %s", img.ID)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) setQueued(ctx context.Context, id string) (datastore.Image, error) {
	return s.cfg.Store.UpdateImage(ctx, id, func(i *datastore.Image) error {
		i.Status, i.Size, i.Checksum, i.HashAlgo, i.HashValue = datastore.ImageQueued, -1, "", "", ""
		i.UpdatedAt = s.cfg.Now().UnixNano()
		return nil
	})
}

func (s *Service) upload(w http.ResponseWriter, r *http.Request, c Caller) {
	img, err := s.get(r, c, true)
	if err != nil {
		fail(w, r, err)
		return
	}
	if r.ContentLength > s.cfg.MaxSize {
		fail(w, r, fmt.Errorf("upload %s: %d bytes over the %d limit: %w", img.ID, r.ContentLength, s.cfg.MaxSize, ErrTooLarge))
		return
	}
	_, err = s.cfg.Store.UpdateImage(r.Context(), img.ID, func(i *datastore.Image) error {
		if i.Status != datastore.ImageQueued && i.Status != datastore.ImageKilled {
			return fmt.Errorf("upload %s: image is %s: %w", i.ID, i.Status, ErrConflict)
		}
		i.Status, i.UpdatedAt = datastore.ImageSaving, s.cfg.Now().UnixNano()
		return nil
	})
	if err != nil {
		fail(w, r, err)
		return
	}
	size, sum, sha, err := s.receive(img.ID, r.Body)
	if err != nil {
		// The request context may be gone; the reset must still happen.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
		defer cancel()
		if _, qerr := s.setQueued(ctx, img.ID); qerr != nil && !errors.Is(qerr, datastore.ErrNotFound) {
			glog.Errorf("images: resetting %s after a failed upload: %v", img.ID, qerr)
		}
		fail(w, r, err)
		return
	}
	_, err = s.cfg.Store.UpdateImage(context.WithoutCancel(r.Context()), img.ID, func(i *datastore.Image) error {
		i.Status, i.Size, i.Checksum, i.HashAlgo, i.HashValue = datastore.ImageActive, size, sum, "sha256", sha
		i.UpdatedAt = s.cfg.Now().UnixNano()
		return nil
	})
	if err != nil {
		// Deleted while streaming (or the store failed): drop the data.
		os.Remove(s.Path(img.ID))
		fail(w, r, err)
		return
	}
	glog.V(1).Infof("images: %s active, %d bytes, md5 %s", img.ID, size, sum)
	w.WriteHeader(http.StatusNoContent)
}

// receive streams body into a temporary file, hashing as it goes, and
// renames it to the image's path once complete and synced. On error
// nothing is left behind.
func (s *Service) receive(id string, body io.Reader) (size int64, md5sum, sha string, err error) {
	f, err := os.CreateTemp(s.cfg.Dir, tmpPrefix+id+"-*")
	if err != nil {
		return 0, "", "", fmt.Errorf("upload %s: create temporary file: %w", id, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	hm, hs := md5.New(), sha256.New()
	n, err := io.Copy(io.MultiWriter(f, hm, hs), io.LimitReader(body, s.cfg.MaxSize+1))
	if err != nil {
		return 0, "", "", fmt.Errorf("upload %s: reading the body after %d bytes: %v: %w", id, n, err, datastore.ErrInvalid)
	}
	if n > s.cfg.MaxSize {
		return 0, "", "", fmt.Errorf("upload %s: over the %d byte limit: %w", id, s.cfg.MaxSize, ErrTooLarge)
	}
	if err = f.Sync(); err != nil {
		return 0, "", "", fmt.Errorf("upload %s: sync: %w", id, err)
	}
	if err = f.Close(); err != nil {
		return 0, "", "", fmt.Errorf("upload %s: close: %w", id, err)
	}
	if err = os.Rename(tmp, s.Path(id)); err != nil {
		return 0, "", "", fmt.Errorf("upload %s: rename: %w", id, err)
	}
	syncDir(s.cfg.Dir)
	return n, hexOf(hm), hexOf(hs), nil
}

func hexOf(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// syncDir makes a rename durable; failure only weakens durability.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	if err := d.Sync(); err != nil {
		glog.V(1).Infof("images: sync %s: %v", dir, err)
	}
	d.Close()
}

func (s *Service) download(w http.ResponseWriter, r *http.Request, c Caller) {
	img, err := s.get(r, c, false)
	if err != nil {
		fail(w, r, err)
		return
	}
	if img.Status != datastore.ImageActive {
		// OpenStack: an image without data downloads as 204.
		w.WriteHeader(http.StatusNoContent)
		return
	}
	f, err := os.Open(s.Path(img.ID))
	if err != nil {
		fail(w, r, fmt.Errorf("download %s: %w", img.ID, err))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		fail(w, r, fmt.Errorf("download %s: %w", img.ID, err))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if img.Checksum != "" {
		w.Header().Set("Content-MD5", img.Checksum) // hex, as Glance sends it
	}
	// ServeContent streams the file, sets Content-Length and handles Range.
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// errorBody is the OpenStack error object.
type errorBody struct {
	Error struct {
		Code    int    `json:"code"`
		Name    string `json:"name"`
		Message string `json:"message"`
	} `json:"error"`
}

func fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, datastore.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrForbidden):
		code = http.StatusForbidden
	case errors.Is(err, ErrConflict), errors.Is(err, datastore.ErrExists):
		code = http.StatusConflict
	case errors.Is(err, ErrTooLarge):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrUnsupportedMedia):
		code = http.StatusUnsupportedMediaType
	case errors.Is(err, datastore.ErrInvalid):
		code = http.StatusBadRequest
	}
	if code == http.StatusInternalServerError {
		glog.Errorf("%s %s: %v", r.Method, r.URL.Path, err)
	} else {
		glog.V(1).Infof("%s %s: %d: %v", r.Method, r.URL.Path, code, err)
	}
	var b errorBody
	b.Error.Code, b.Error.Name, b.Error.Message = code, http.StatusText(code), strings.TrimSpace(err.Error())
	writeJSON(w, code, b)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		glog.V(1).Infof("images: writing response: %v", err)
	}
}
