package images

// PATCH /v2/images/{id}: `openstack image set`. The body is a JSON patch
// (RFC 6902) with Glance's media type
// application/openstack-images-v2.1-json-patch (any other is 415):
//
//	[{"op":"replace","path":"/name","value":"new"},
//	 {"op":"add","path":"/os_distro","value":"clear"},
//	 {"op":"remove","path":"/os_distro"}]
//
// Operations are add, replace and remove (test, move and copy are 400);
// a path is one member of the image object (a JSON pointer: "~1" is "/",
// "~0" is "~"). Writable: name (a string; null clears it), visibility
// (private, or public for an admin), disk_format and container_format
// while the image has no data (else 403, as in Glance), and additional
// properties: string values, keys of at most 255 bytes, at most
// maxProperties of them. Replacing or removing a property the image does
// not have is 409. The other core attributes (id, status, size,
// checksum, owner, …) are read-only: 403. Attributes Glance has and this
// service does not keep (protected, min_disk, min_ram, tags, …) are 400.
// The patch is checked and applied whole, in one datastore transaction;
// the answer is the updated image.

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/golang/glog"
)

// PatchMediaType is the Content-Type of an image PATCH.
const PatchMediaType = "application/openstack-images-v2.1-json-patch"

// maxProperties bounds an image's additional properties (Glance's
// default image_property_quota).
const maxProperties = 128

// ErrUnsupportedMedia: a PATCH body in another media type (415).
var ErrUnsupportedMedia = errors.New("images: unsupported media type")

// readOnly are the image attributes a patch may not change (403).
var readOnly = map[string]bool{"id": true, "status": true, "size": true, "virtual_size": true, "checksum": true,
	"os_hash_algo": true, "os_hash_value": true, "owner": true, "created_at": true, "updated_at": true,
	"self": true, "file": true, "schema": true, "direct_url": true, "locations": true}

// unsupported are Glance attributes this service does not keep (400).
var unsupported = map[string]bool{"protected": true, "min_disk": true, "min_ram": true, "tags": true,
	"os_hidden": true, "os_glance_import_method": true}

type patchOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value"` // nil when absent, "null" for null
}

// member decodes a one-segment JSON pointer.
func member(path string) (string, error) {
	if !strings.HasPrefix(path, "/") || len(path) == 1 || strings.Contains(path[1:], "/") {
		return "", fmt.Errorf("path %q is not /<attribute>: %w", path, datastore.ErrInvalid)
	}
	return strings.NewReplacer("~1", "/", "~0", "~").Replace(path[1:]), nil
}

func (s *Service) patch(w http.ResponseWriter, r *http.Request, c Caller) {
	img, err := s.get(r, c, true)
	if err != nil {
		fail(w, r, err)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != PatchMediaType {
		w.Header().Set("Accept-Patch", PatchMediaType)
		fail(w, r, fmt.Errorf("update image: Content-Type %q is not %s: %w", r.Header.Get("Content-Type"), PatchMediaType, ErrUnsupportedMedia))
		return
	}
	var ops []patchOp
	if err := s.decodeJSON(w, r, &ops, "the body is not a JSON patch (an array of operations)"); err != nil {
		fail(w, r, fmt.Errorf("update image: %w", err))
		return
	}
	// Check what does not depend on the stored image before the
	// transaction.
	names := make([]string, len(ops))
	for i, op := range ops {
		switch op.Op {
		case "add", "replace":
			if len(op.Value) == 0 {
				fail(w, r, fmt.Errorf("update image: operation %d (%s %s) has no value: %w", i, op.Op, op.Path, datastore.ErrInvalid))
				return
			}
		case "remove":
		default:
			fail(w, r, fmt.Errorf("update image: operation %d: op %q is not add, replace or remove: %w", i, op.Op, datastore.ErrInvalid))
			return
		}
		name, err := member(op.Path)
		if err != nil {
			fail(w, r, fmt.Errorf("update image: operation %d: %w", i, err))
			return
		}
		names[i] = name
		switch {
		case readOnly[name]:
			fail(w, r, fmt.Errorf("update image: attribute %q is read-only: %w", name, ErrForbidden))
			return
		case unsupported[name]:
			fail(w, r, fmt.Errorf("update image: attribute %q is not supported here: %w", name, datastore.ErrInvalid))
			return
		}
	}
	updated, err := s.cfg.Store.UpdateImage(r.Context(), img.ID, func(i *datastore.Image) error {
		props := make(map[string]string, len(i.Properties))
		for k, v := range i.Properties {
			props[k] = v
		}
		for n, op := range ops {
			if err := applyOp(i, props, names[n], op, c); err != nil {
				return fmt.Errorf("update image %s: operation %d (%s %s): %w", i.ID, n, op.Op, op.Path, err)
			}
		}
		if len(props) > maxProperties {
			return fmt.Errorf("update image %s: %d properties, at most %d: %w", i.ID, len(props), maxProperties, ErrTooLarge)
		}
		i.Properties = props
		if len(props) == 0 {
			i.Properties = nil
		}
		i.UpdatedAt = s.cfg.Now().UnixNano()
		return nil
	})
	if err != nil {
		fail(w, r, err)
		return
	}
	glog.V(1).Infof("images: updated %s (%d operations)", img.ID, len(ops))
	writeJSON(w, http.StatusOK, toJSON(updated))
}

// applyOp applies one checked operation to i and its properties.
func applyOp(i *datastore.Image, props map[string]string, name string, op patchOp, c Caller) error {
	var str *string // the value as a string; nil for null
	if len(op.Value) > 0 && string(op.Value) != "null" {
		var v string
		if err := json.Unmarshal(op.Value, &v); err != nil {
			return fmt.Errorf("value %s is not a string: %w", op.Value, datastore.ErrInvalid)
		}
		str = &v
	}
	core := func(field *string, allowed ...string) error {
		if op.Op == "remove" {
			return fmt.Errorf("%s cannot be removed: %w", name, ErrForbidden)
		}
		if str == nil {
			return fmt.Errorf("%s cannot be null: %w", name, datastore.ErrInvalid)
		}
		if len(allowed) > 0 && !slices.Contains(allowed, *str) {
			return fmt.Errorf("%s %q is not one of %s: %w", name, *str, strings.Join(allowed, ", "), datastore.ErrInvalid)
		}
		*field = *str
		return nil
	}
	switch name {
	case "name":
		if op.Op != "remove" && str == nil {
			i.Name = ""
			return nil
		}
		return core(&i.Name)
	case "visibility":
		if err := core(&i.Visibility, "private", "public"); err != nil {
			return err
		}
		if i.Visibility == "public" && !c.Admin {
			return fmt.Errorf("only admins publish images: %w", ErrForbidden)
		}
		return nil
	case "disk_format", "container_format":
		if i.Status != datastore.ImageQueued {
			return fmt.Errorf("%s of a %s image cannot change: %w", name, i.Status, ErrForbidden)
		}
		if name == "disk_format" {
			return core(&i.DiskFormat, "qcow2", "raw", "iso")
		}
		return core(&i.ContainerFormat, "bare")
	}
	if len(name) > 255 {
		return fmt.Errorf("property name of %d bytes, at most 255: %w", len(name), datastore.ErrInvalid)
	}
	_, has := props[name]
	switch {
	case op.Op != "add" && !has:
		return fmt.Errorf("the image has no property %q: %w", name, ErrConflict)
	case op.Op == "remove":
		delete(props, name)
	case str == nil:
		return fmt.Errorf("property %q cannot be null: %w", name, datastore.ErrInvalid)
	default:
		props[name] = *str
	}
	return nil
}
