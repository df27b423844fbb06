package datastore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// Image statuses (OpenStack image v2).
const (
	ImageQueued = "queued" // record only, no data
	ImageSaving = "saving" // an upload is streaming
	ImageActive = "active" // data on disk, size and checksums set
	ImageKilled = "killed" // the data could not be kept
)

// Image is the metadata of one image; its data is a file named by ID in
// the image directory (ciao-controller/internal/images).
type Image struct {
	ID              string
	Name            string
	Status          string
	DiskFormat      string // "", qcow2, raw or iso
	ContainerFormat string // "" or bare
	Size            int64  // -1 until uploaded
	Checksum        string // md5 hex, "" until uploaded
	HashAlgo        string // e.g. sha256
	HashValue       string
	Visibility      string // public or private
	Owner           string // tenant id
	CreatedAt       int64  // Unix nanoseconds
	UpdatedAt       int64
	// Properties are the image's additional properties (OpenStack's
	// custom key/value metadata); nil when it has none.
	Properties map[string]string
}

// ImageStore keeps image metadata. *SQLite implements it. It is separate
// from Store so image storage can be added without touching every engine.
type ImageStore interface {
	CreateImage(ctx context.Context, img Image) error // ErrExists
	Image(ctx context.Context, id string) (Image, error)
	Images(ctx context.Context) ([]Image, error) // sorted by id
	// UpdateImage reads the image, lets fn change it and writes it back in
	// one transaction; an error from fn aborts and is returned as is.
	UpdateImage(ctx context.Context, id string, fn func(*Image) error) (Image, error)
	DeleteImage(ctx context.Context, id string) (Image, error)
}

var _ ImageStore = (*SQLite)(nil)

const imageCols = `id, name, status, disk_format, container_format, size, checksum, hash_algo, hash_value, visibility, owner, created_at, updated_at, properties`

func scanImage(sc interface{ Scan(...any) error }) (Image, error) {
	var i Image
	var props string
	err := sc.Scan(&i.ID, &i.Name, &i.Status, &i.DiskFormat, &i.ContainerFormat, &i.Size, &i.Checksum,
		&i.HashAlgo, &i.HashValue, &i.Visibility, &i.Owner, &i.CreatedAt, &i.UpdatedAt, &props)
	if err == nil && props != "" && props != "{}" {
		if err = json.Unmarshal([]byte(props), &i.Properties); err != nil {
			err = fmt.Errorf("image %s properties: %w", i.ID, err)
		}
	}
	return i, err
}

// propertiesJSON is the properties column's text.
func propertiesJSON(p map[string]string) string {
	if len(p) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(p) // a map[string]string always marshals
	return string(b)
}

// CreateImage implements ImageStore.
func (s *SQLite) CreateImage(ctx context.Context, i Image) error {
	if i.ID == "" || i.Status == "" {
		return fmt.Errorf("create image: id and status are required: %w", ErrInvalid)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO images (`+imageCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		i.ID, i.Name, i.Status, i.DiskFormat, i.ContainerFormat, i.Size, i.Checksum, i.HashAlgo, i.HashValue,
		i.Visibility, i.Owner, i.CreatedAt, i.UpdatedAt, propertiesJSON(i.Properties))
	if isConstraint(err) {
		return fmt.Errorf("create image %s: %w", i.ID, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create image %s: %w", i.ID, err)
	}
	return nil
}

// Image implements ImageStore.
func (s *SQLite) Image(ctx context.Context, id string) (Image, error) {
	i, err := scanImage(s.r.QueryRowContext(ctx, `SELECT `+imageCols+` FROM images WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Image{}, fmt.Errorf("image %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", id, err)
	}
	return i, nil
}

// Images implements ImageStore.
func (s *SQLite) Images(ctx context.Context) ([]Image, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+imageCols+` FROM images ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	defer rows.Close()
	var out []Image
	for rows.Next() {
		i, err := scanImage(rows)
		if err != nil {
			return nil, fmt.Errorf("list images: %w", err)
		}
		out = append(out, i)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	return out, nil
}

// UpdateImage implements ImageStore. ID and CreatedAt cannot change.
func (s *SQLite) UpdateImage(ctx context.Context, id string, fn func(*Image) error) (Image, error) {
	var out Image
	err := s.tx(ctx, func(tx *sql.Tx) error {
		i, err := scanImage(tx.QueryRowContext(ctx, `SELECT `+imageCols+` FROM images WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("update image %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("update image %s: %w", id, err)
		}
		if err := fn(&i); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE images SET name = ?, status = ?, disk_format = ?, container_format = ?,
			size = ?, checksum = ?, hash_algo = ?, hash_value = ?, visibility = ?, owner = ?, updated_at = ?, properties = ? WHERE id = ?`,
			i.Name, i.Status, i.DiskFormat, i.ContainerFormat, i.Size, i.Checksum, i.HashAlgo, i.HashValue,
			i.Visibility, i.Owner, i.UpdatedAt, propertiesJSON(i.Properties), id)
		if err != nil {
			return fmt.Errorf("update image %s: %w", id, err)
		}
		out = i
		return nil
	})
	return out, err
}

// DeleteImage implements ImageStore and returns the deleted record.
func (s *SQLite) DeleteImage(ctx context.Context, id string) (Image, error) {
	var out Image
	err := s.tx(ctx, func(tx *sql.Tx) error {
		i, err := scanImage(tx.QueryRowContext(ctx, `SELECT `+imageCols+` FROM images WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("delete image %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("delete image %s: %w", id, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM images WHERE id = ?`, id); err != nil {
			return fmt.Errorf("delete image %s: %w", id, err)
		}
		out = i
		return nil
	})
	return out, err
}
