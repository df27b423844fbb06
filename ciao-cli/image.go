package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ciao-project/ciao/ciao-cli/internal/client"
)

const imageData = `client.Image ([]client.Image for list):

	ID, Name, Status, Owner, Visibility, CreatedDate, LastUpdate, File, Schema string
	ContainerFormat, DiskFormat, Checksum *string; SizeBytes *int64 (nil: unknown)
	MinDiskGigabytes, MinRAMMegabytes int; Protected bool; Tags []string

Helpers: tojson, filter, filterContains, filterHasPrefix, filterHasSuffix,
filterFolded, filterRegexp, select, head, tail, rows, sort (see instance list -help).
`

func imageCommand() command {
	return command{name: "image", subs: []subcommand{
		{name: "add", desc: "Creates a new image", data: imageData, setup: imageAdd},
		{name: "list", desc: "List images", data: imageData, setup: imageList},
		{name: "show", desc: "Show an image", data: imageData, setup: imageShow},
		{name: "upload", desc: "Uploads a file as an image's data", setup: imageUpload},
		{name: "download", desc: "Fetch an image's data", setup: imageDownload},
		{name: "delete", desc: "Deletes an image", setup: imageDelete},
		{name: "modify", desc: "Modify an image (needs a controller with PATCH /v2/images/<id>)", data: imageData, setup: imageModify},
	}}
}

// enumFlag is a string flag restricted to a set of values.
type enumFlag struct {
	v       string
	allowed []string
	what    string
}

func (e *enumFlag) String() string {
	if e == nil {
		return ""
	}
	return e.v
}

func (e *enumFlag) Set(s string) error {
	for _, a := range e.allowed {
		if s == a {
			e.v = s
			return nil
		}
	}
	return fmt.Errorf("supported image %s formats are: %s", e.what, strings.Join(e.allowed, ", "))
}

// tagList splits -tags; an empty value is no tag (C7).
func tagList(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// writeImage prints the image block of cli.md §6.11.
func writeImage(w io.Writer, i client.Image) {
	size := "unknown"
	if i.SizeBytes != nil {
		size = fmt.Sprint(*i.SizeBytes)
	}
	tags := i.Tags
	if tags == nil {
		tags = []string{}
	}
	fmt.Fprintf(w, "\tName             [%s]\n\tSize             [%s bytes]\n\tUUID             [%s]\n\tStatus           [%s]\n"+
		"\tOwner            [%s]\n\tDisk format      [%s]\n\tContainer format [%s]\n\tMinimal disk     [%d GB]\n"+
		"\tMinimal memory   [%d MB]\n\tChecksum         [%s]\n\tVisibility       [%s]\n\tProtected        [%t]\n"+
		"\tCreatedDate      [%s]\n\tLastUpdate       [%s]\n\tTags             [%v]\n\tFile             [%s]\n\tSchema           [%s]\n",
		i.Name, size, i.ID, i.Status, i.Owner, str(i.DiskFormat), str(i.ContainerFormat), i.MinDiskGigabytes,
		i.MinRAMMegabytes, str(i.Checksum), i.Visibility, i.Protected, i.CreatedDate, i.LastUpdate, tags, i.File, i.Schema)
}

// upload sends file as image id's data.
func upload(ctx context.Context, a *app, id, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("could not open %s: %w", file, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("could not open %s: %w", file, err)
	}
	if err := a.api.UploadImage(ctx, id, f, st.Size()); err != nil {
		return fmt.Errorf("could not upload %s: %w", file, err)
	}
	return nil
}

func imageAdd(fs *flag.FlagSet) func(context.Context, *app) error {
	var req client.ImageRequest
	fs.StringVar(&req.Name, "name", "", "Image name (required)")
	fs.StringVar(&req.ID, "id", "", "Image UUID (default: the controller picks one)")
	cf := &enumFlag{v: "bare", allowed: []string{"ami", "ari", "aki", "bare", "ovf", "ova", "docker"}, what: "container"}
	df := &enumFlag{v: "qcow2", allowed: []string{"ami", "ari", "aki", "vhd", "vmdk", "raw", "qcow2", "vdi", "iso"}, what: "disk"}
	fs.Var(cf, "container-format", "Image container format: one of "+strings.Join(cf.allowed, ", ")+" (the controller stores bare only)")
	fs.Var(df, "disk-format", "Image disk format: one of "+strings.Join(df.allowed, ", ")+" (the controller stores qcow2, raw and iso)")
	fs.IntVar(&req.MinDisk, "min-disk-size", 0, "Minimal disk size in GB needed to boot the image")
	fs.IntVar(&req.MinRAM, "min-ram-size", 0, "Minimal memory in MB needed to boot the image")
	vis := fs.String("visibility", "private", "Image visibility: public (admins only) or private")
	fs.BoolVar(&req.Protected, "protected", false, "Prevent the image from being deleted")
	tags := fs.String("tags", "", "Comma-separated image tags")
	file := fs.String("file", "", "Upload this file as the image data")
	var o output
	o.flags(fs)
	return func(ctx context.Context, a *app) error {
		if req.Name == "" {
			return &usageMsg{"missing required -name parameter"}
		}
		if *vis != "public" && *vis != "private" {
			return &usageMsg{"image visibility should be public or private"}
		}
		req.Visibility, req.ContainerFormat, req.DiskFormat, req.Tags = *vis, cf.v, df.v, tagList(*tags)
		if *file != "" {
			if _, err := os.Stat(*file); err != nil {
				return fmt.Errorf("could not open %s: %w", *file, err)
			}
		}
		img, err := a.api.CreateImage(ctx, req)
		if err != nil {
			return fmt.Errorf("could not create image: %w", err)
		}
		if *file != "" {
			if err := upload(ctx, a, img.ID, *file); err != nil {
				return fmt.Errorf("%w (image %s was created without data; retry with 'ciao-cli image upload -image %s -file %s')", err, img.ID, img.ID, *file)
			}
			if img, err = a.api.ShowImage(ctx, img.ID); err != nil {
				return fmt.Errorf("could not retrieve new created image: %w", err)
			}
		}
		if done, err := o.custom(a.stdout, img); done {
			return err
		}
		fmt.Fprintln(a.stdout, "Created image:")
		writeImage(a.stdout, img)
		return nil
	}
}

func imageList(fs *flag.FlagSet) func(context.Context, *app) error {
	var o output
	o.flags(fs)
	return func(ctx context.Context, a *app) error {
		is, err := a.api.ListImages(ctx)
		if err != nil {
			return err
		}
		if is == nil {
			is = []client.Image{}
		}
		if done, err := o.custom(a.stdout, is); done {
			return err
		}
		for i, img := range is {
			fmt.Fprintf(a.stdout, "Image #%d\n", i+1)
			writeImage(a.stdout, img)
			fmt.Fprintln(a.stdout)
		}
		return nil
	}
}

func imageShow(fs *flag.FlagSet) func(context.Context, *app) error {
	return showOne(fs, "image", "Image UUID", func(ctx context.Context, a *app, id string) (client.Image, error) {
		return a.api.ShowImage(ctx, id)
	}, writeImage)
}

// showOne is a show subcommand: the required flag name (its help usage)
// names the object, get fetches it and write prints it, unless the
// output flags ask for another form.
func showOne[T any](fs *flag.FlagSet, name, usage string, get func(context.Context, *app, string) (T, error), write func(io.Writer, T)) func(context.Context, *app) error {
	id := fs.String(name, "", usage)
	var o output
	o.flags(fs)
	return func(ctx context.Context, a *app) error {
		if *id == "" {
			return &usageMsg{"missing required -" + name + " parameter"}
		}
		v, err := get(ctx, a, *id)
		if err != nil {
			return err
		}
		if done, err := o.custom(a.stdout, v); done {
			return err
		}
		write(a.stdout, v)
		return nil
	}
}

func imageUpload(fs *flag.FlagSet) func(context.Context, *app) error {
	id := fs.String("image", "", "Image UUID")
	file := fs.String("file", "", "File to upload")
	return func(ctx context.Context, a *app) error {
		if *id == "" || *file == "" {
			return &usageMsg{"missing required -image or -file parameter"}
		}
		return upload(ctx, a, *id, *file)
	}
}

// imageDownload writes the image's data to -file (0644, replaced only
// when the download is complete) or to stdout.
func imageDownload(fs *flag.FlagSet) func(context.Context, *app) error {
	id := fs.String("image", "", "Image UUID")
	file := fs.String("file", "", "Write the data to this file (default: standard output)")
	return func(ctx context.Context, a *app) error {
		if *id == "" {
			return &usageMsg{"missing required -image parameter"}
		}
		if *file == "" {
			_, err := a.api.DownloadImage(ctx, *id, a.stdout)
			return err
		}
		tmp, err := os.CreateTemp(filepath.Dir(*file), "."+filepath.Base(*file)+".part-")
		if err != nil {
			return fmt.Errorf("could not create %s: %w", *file, err)
		}
		defer os.Remove(tmp.Name())
		_, err = a.api.DownloadImage(ctx, *id, tmp)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(tmp.Name(), 0o644)
		}
		if err == nil {
			err = os.Rename(tmp.Name(), *file)
		}
		return err
	}
}

func imageDelete(fs *flag.FlagSet) func(context.Context, *app) error {
	id := fs.String("image", "", "Image UUID")
	return func(ctx context.Context, a *app) error {
		if *id == "" {
			return &usageMsg{"missing required -image parameter"}
		}
		if err := a.api.DeleteImage(ctx, *id); err != nil {
			return fmt.Errorf("could not delete image: %w", err)
		}
		fmt.Fprintf(a.stdout, "Deleted image %s\n", *id)
		return nil
	}
}

// errNoPatch explains a controller without PATCH /v2/images/<id>.
var errNoPatch = errors.New("this controller's image API cannot modify images (no PATCH /v2/images/<id>); delete the image and add it again")

func imageModify(fs *flag.FlagSet) func(context.Context, *app) error {
	id := fs.String("image", "", "Image UUID")
	name := fs.String("name", "", "New image name")
	vis := fs.String("visibility", "", "New visibility: public or private")
	tags := fs.String("tags", "", "New comma-separated image tags")
	var o output
	o.flags(fs)
	return func(ctx context.Context, a *app) error {
		if *id == "" {
			return &usageMsg{"missing required -image parameter"}
		}
		var ops []map[string]any
		if *name != "" {
			ops = append(ops, map[string]any{"op": "replace", "path": "/name", "value": *name})
		}
		switch *vis {
		case "":
		case "public", "private":
			ops = append(ops, map[string]any{"op": "replace", "path": "/visibility", "value": *vis})
		default:
			return &usageMsg{"image visibility should be public or private"}
		}
		if *tags != "" {
			ops = append(ops, map[string]any{"op": "replace", "path": "/tags", "value": tagList(*tags)})
		}
		if len(ops) == 0 {
			return &usageMsg{"nothing to modify: give -name, -visibility or -tags"}
		}
		img, err := a.api.ModifyImage(ctx, *id, ops)
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Status == 405 {
			return errNoPatch
		}
		if err != nil {
			return err
		}
		if done, err := o.custom(a.stdout, img); done {
			return err
		}
		fmt.Fprintln(a.stdout, "Updated image:")
		writeImage(a.stdout, img)
		return nil
	}
}
