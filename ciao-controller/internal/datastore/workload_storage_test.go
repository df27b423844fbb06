package datastore

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
)

// apiWorkload is a private workload as the workloads API makes it.
func apiWorkload() Workload {
	return Workload{ID: "api-1", TenantID: "T", Description: "from the API", FWType: "legacy", VMType: "qemu",
		ImageID: "73a86d7e-93c0-480e-9c41-ab42f69b7799", Config: "---\n#cloud-config\nruncmd: []\n...\n",
		Defaults: []RequestedResource{{ResVCPUs, 1, true}, {ResMemMB, 256, true}},
		Storage:  []WorkloadDisk{{SourceType: "image", SourceID: "73a86d7e-93c0-480e-9c41-ab42f69b7799", Bootable: true, Ephemeral: true}}}
}

// TestWorkloadStorage: every store keeps a workload's disks as given,
// hands out copies, and a workload without disks has nil Storage.
func TestWorkloadStorage(t *testing.T) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			ctx := context.Background()
			s := im.open(t)
			seed(t, s, "T")
			want := apiWorkload()
			if err := s.CreateWorkload(ctx, want); err != nil {
				t.Fatal(err)
			}
			got, err := s.Workload(ctx, want.ID)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v %v\nwant %+v", got, err, want)
			}
			got.Storage[0].SourceID = "changed"
			ws, _ := s.Workloads(ctx, WorkloadFilter{TenantID: "T"})
			for _, w := range ws {
				switch {
				case w.ID == want.ID && !reflect.DeepEqual(w, want):
					t.Fatalf("listed %+v, want %+v", w, want)
				case w.ID != want.ID && w.Storage != nil:
					t.Fatalf("%s has storage %+v", w.ID, w.Storage)
				}
			}
		})
	}
}

// TestWorkloadStorageRestart: an API-made workload, disks included,
// survives closing and reopening the SQLite file; deleting it does too.
func TestWorkloadStorageRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ciao.db")
	s := openAt(t, path)
	seed(t, s, "T")
	want := apiWorkload()
	if err := s.CreateWorkload(ctx, want); err != nil {
		t.Fatal(err)
	}
	gone := apiWorkload()
	gone.ID, gone.Storage = "api-2", nil
	if err := s.CreateWorkload(ctx, gone); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openAt(t, path)
	if got, err := s.Workload(ctx, want.ID); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen: %+v %v\nwant %+v", got, err, want)
	}
	if got, err := s.Workload(ctx, gone.ID); err != nil || !reflect.DeepEqual(got, gone) {
		t.Fatalf("after reopen: %+v %v\nwant %+v", got, err, gone)
	}
	if err := s.DeleteWorkload(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openAt(t, path)
	defer s.Close()
	_, err := s.Workload(ctx, gone.ID)
	wantErr(t, err, ErrNotFound)
	if ws, _ := s.Workloads(ctx, WorkloadFilter{TenantID: "T"}); len(ws) != 3 {
		t.Fatalf("after delete and reopen: %d workloads, want 3", len(ws))
	}
}
