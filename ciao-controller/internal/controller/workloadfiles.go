package controller

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/golang/glog"
)

// Workload definition files (controller.md §7.4, §8): in the tables
// directory, workload_template.csv (id, description, filename, fw_type,
// vm_type, image_id, image_name, internal), workload_resources.csv
// (workload_id, resource_id, default_value, estimated_value, mandatory)
// and, optionally, resources.csv (id, name; the §4.5 ids otherwise); in
// the workloads directory, the cloud-init file each workload names. '#'
// starts a comment line, spaces after commas are ignored, quotes follow
// the usual CSV rules.

// ErrWorkloadFile: a workload definition file is missing or malformed.
// The message names the file and line.
var ErrWorkloadFile = errors.New("controller: bad workload definition")

// defaultResourceIDs are the §4.5 resource ids.
var defaultResourceIDs = map[int]string{1: datastore.ResInstances, 2: datastore.ResVCPUs, 3: datastore.ResMemMB,
	4: datastore.ResDiskMB, 5: datastore.ResNetworkNode}

// csvRows reads a CSV file into rows of want fields, each with its line.
func csvRows(path string, want int) ([][]string, []int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrWorkloadFile, err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comment = '#'
	r.TrimLeadingSpace = true
	r.FieldsPerRecord = -1
	var rows [][]string
	var lines []int
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %w", ErrWorkloadFile, path, err)
		}
		line, _ := r.FieldPos(0)
		if len(rec) != want {
			return nil, nil, fmt.Errorf("%w: %s:%d: %d fields, want %d", ErrWorkloadFile, path, line, len(rec), want)
		}
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		rows = append(rows, rec)
		lines = append(lines, line)
	}
	return rows, lines, nil
}

// LoadWorkloads reads the workload definitions of tablesDir and
// workloadsDir (see above). Every error wraps ErrWorkloadFile and names
// the file and line at fault.
func LoadWorkloads(tablesDir, workloadsDir string) ([]datastore.Workload, error) {
	resources := map[int]string{}
	for id, name := range defaultResourceIDs {
		resources[id] = name
	}
	rpath := filepath.Join(tablesDir, "resources.csv")
	if _, err := os.Stat(rpath); err == nil {
		rows, lines, err := csvRows(rpath, 2)
		if err != nil {
			return nil, err
		}
		resources = map[int]string{}
		for i, r := range rows {
			id, err := strconv.Atoi(r[0])
			if err != nil || r[1] == "" {
				return nil, fmt.Errorf("%w: %s:%d: want a numeric id and a name, got %q", ErrWorkloadFile, rpath, lines[i], r)
			}
			resources[id] = r[1]
		}
	}
	tpath := filepath.Join(tablesDir, "workload_template.csv")
	rows, lines, err := csvRows(tpath, 8)
	if err != nil {
		return nil, err
	}
	var out []datastore.Workload
	index := map[string]int{}
	for i, r := range rows {
		at := fmt.Sprintf("%s:%d", tpath, lines[i])
		w := datastore.Workload{ID: r[0], Description: r[1], Filename: r[2], FWType: r[3], VMType: r[4], ImageID: r[5], ImageName: r[6]}
		switch {
		case w.ID == "":
			return nil, fmt.Errorf("%w: %s: empty id", ErrWorkloadFile, at)
		case index[w.ID] != 0 || (len(out) > 0 && out[0].ID == w.ID):
			return nil, fmt.Errorf("%w: %s: workload %s defined twice", ErrWorkloadFile, at, w.ID)
		case w.Description == "":
			return nil, fmt.Errorf("%w: %s: empty description", ErrWorkloadFile, at)
		case w.VMType != "qemu" && w.VMType != "docker":
			return nil, fmt.Errorf("%w: %s: vm_type %q, want qemu or docker", ErrWorkloadFile, at, w.VMType)
		case w.FWType != "" && w.FWType != "efi" && w.FWType != "legacy":
			return nil, fmt.Errorf("%w: %s: fw_type %q, want efi, legacy or empty", ErrWorkloadFile, at, w.FWType)
		case w.VMType == "docker" && w.ImageName == "":
			return nil, fmt.Errorf("%w: %s: a docker workload needs an image_name", ErrWorkloadFile, at)
		case r[7] != "0" && r[7] != "1":
			return nil, fmt.Errorf("%w: %s: internal %q, want 0 or 1", ErrWorkloadFile, at, r[7])
		case w.Filename == "" || strings.ContainsRune(w.Filename, '/') || w.Filename == "..":
			return nil, fmt.Errorf("%w: %s: filename %q must name a file of the workloads directory", ErrWorkloadFile, at, w.Filename)
		}
		w.Internal = r[7] == "1"
		ypath := filepath.Join(workloadsDir, w.Filename)
		b, err := os.ReadFile(ypath)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s: cloud-init file %s: not found", ErrWorkloadFile, at, ypath)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: cloud-init file: %w", ErrWorkloadFile, at, err)
		}
		w.Config = string(b)
		index[w.ID] = len(out) + 1
		out = append(out, w)
	}
	rpath = filepath.Join(tablesDir, "workload_resources.csv")
	rows, lines, err = csvRows(rpath, 5)
	if err != nil {
		return nil, err
	}
	for i, r := range rows {
		at := fmt.Sprintf("%s:%d", rpath, lines[i])
		k := index[r[0]]
		if k == 0 {
			return nil, fmt.Errorf("%w: %s: workload %q is not in %s", ErrWorkloadFile, at, r[0], tpath)
		}
		var n [4]int
		for j := 1; j < 5; j++ {
			if n[j-1], err = strconv.Atoi(r[j]); err != nil {
				return nil, fmt.Errorf("%w: %s: field %d %q is not a number", ErrWorkloadFile, at, j+1, r[j])
			}
		}
		name, ok := resources[n[0]]
		if !ok {
			return nil, fmt.Errorf("%w: %s: unknown resource id %d", ErrWorkloadFile, at, n[0])
		}
		if n[1] < 0 {
			return nil, fmt.Errorf("%w: %s: negative default value %d", ErrWorkloadFile, at, n[1])
		}
		w := &out[k-1]
		for _, d := range w.Defaults {
			if d.Type == name {
				return nil, fmt.Errorf("%w: %s: resource %s of %s given twice", ErrWorkloadFile, at, name, w.ID)
			}
		}
		w.Defaults = append(w.Defaults, datastore.RequestedResource{Type: name, Value: n[1], Mandatory: n[3] != 0})
	}
	for _, w := range out {
		if !w.IsCNCI() {
			mem := 0
			for _, d := range w.Defaults {
				if d.Type == datastore.ResMemMB {
					mem = d.Value
				}
			}
			if mem <= 0 {
				return nil, fmt.Errorf("%w: %s: workload %s has no positive mem_mb in %s (the scheduler drops such STARTs)",
					ErrWorkloadFile, tpath, w.ID, rpath)
			}
		}
	}
	return out, nil
}

// SeedWorkloadFiles stores the workloads of the definition files that are
// not stored yet (like the 2016 INSERT OR IGNORE seeding, a changed
// definition of a stored id is kept as stored; it is logged).
func SeedWorkloadFiles(ctx context.Context, s datastore.Store, tablesDir, workloadsDir string) error {
	ws, err := LoadWorkloads(tablesDir, workloadsDir)
	if err != nil {
		return err
	}
	for _, w := range ws {
		err := s.CreateWorkload(ctx, w)
		if errors.Is(err, datastore.ErrExists) {
			if old, gerr := s.Workload(ctx, w.ID); gerr == nil && (old.Config != w.Config || old.Description != w.Description ||
				old.ImageID != w.ImageID || fmt.Sprint(old.Defaults) != fmt.Sprint(w.Defaults)) {
				glog.Warningf("workload %s differs from its stored definition; the stored one is kept", w.ID)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("seed workload %s: %w", w.ID, err)
		}
	}
	glog.Infof("%d workloads from %s and %s", len(ws), tablesDir, workloadsDir)
	return nil
}
