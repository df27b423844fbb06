package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
)

// TestLoadWorkloads: the 2016 tables and cloud-init files (testdata) give
// exactly the five shipped workloads, and seeding them twice is harmless.
func TestLoadWorkloads(t *testing.T) {
	ws, err := LoadWorkloads("testdata/tables", "testdata/workloads")
	if err != nil {
		t.Fatal(err)
	}
	want := ShippedWorkloads()
	if len(ws) != len(want) {
		t.Fatalf("%d workloads, want %d", len(ws), len(want))
	}
	for i, w := range ws {
		if fmt.Sprintf("%+v", w) != fmt.Sprintf("%+v", want[i]) {
			t.Errorf("workload %d:\n got %+v\nwant %+v", i, w, want[i])
		}
	}
	s := datastore.NewMemory()
	defer s.Close()
	for i := 0; i < 2; i++ {
		if err := SeedWorkloadFiles(context.Background(), s, "testdata/tables", "testdata/workloads"); err != nil {
			t.Fatal(err)
		}
	}
	if all, _ := s.Workloads(context.Background(), datastore.WorkloadFilter{Internal: true}); len(all) != 5 {
		t.Fatalf("%d workloads stored", len(all))
	}
}

// TestLoadWorkloadsErrors: each broken definition is refused with an
// error that names the file and line at fault.
func TestLoadWorkloadsErrors(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata/tables", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tmpl, res := read("workload_template.csv"), read("workload_resources.csv")
	cases := []struct {
		name     string
		tmpl     string
		res      string
		noYAML   bool
		wantText string
	}{
		{"vm type", strings.Replace(tmpl, "legacy, qemu", "legacy, kvm", 1), res, false, "workload_template.csv:2: vm_type \"kvm\""},
		{"fields", strings.Replace(tmpl, ", \"\", 1", ", 1", 1), res, false, "workload_template.csv:4: 7 fields, want 8"},
		{"internal", strings.Replace(tmpl, "\"\", 0\n", "\"\", yes\n", 1), res, false, "workload_template.csv:2: internal \"yes\""},
		{"fw type", strings.Replace(tmpl, ", efi,", ", bios,", 1), res, false, "workload_template.csv:3: fw_type \"bios\""},
		{"twice", tmpl + strings.SplitN(tmpl, "\n", 3)[1] + "\n", res, false, "workload_template.csv:7: workload 69e84267-ed01-4738-b15f-b47de06b62e7 defined twice"},
		{"quote", tmpl + "x, \"open, y\n", res, false, "workload_template.csv: parse error on line 7"},
		{"yaml", tmpl, res, true, "workload_template.csv:2: cloud-init file"},
		{"unknown workload", tmpl, res + "00000000-0000-4000-8000-000000000000, 2, 2, 2, 1\n", false, "workload_resources.csv:18: workload \"00000000"},
		{"resource id", tmpl, strings.Replace(res, ", 4, 80, 80, 1", ", 9, 80, 80, 1", 1), false, "workload_resources.csv:4: unknown resource id 9"},
		{"number", tmpl, strings.Replace(res, "3, 128, 128, 1", "3, lots, 128, 1", 1), false, "workload_resources.csv:3: field 3 \"lots\""},
		{"no memory", tmpl, strings.Replace(res, "e35ed972-c46c-4aad-a1e7-ef103ae079a2, 3, 128, 128, 1\n", "", 1), false, "workload e35ed972-c46c-4aad-a1e7-ef103ae079a2 has no positive mem_mb"},
		{"missing table", "", res, false, "workload_template.csv: no such file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			tables, yamls := filepath.Join(dir, "tables"), filepath.Join(dir, "workloads")
			os.MkdirAll(tables, 0o755)
			os.MkdirAll(yamls, 0o755)
			if c.tmpl != "" {
				os.WriteFile(filepath.Join(tables, "workload_template.csv"), []byte(c.tmpl), 0o644)
			}
			os.WriteFile(filepath.Join(tables, "workload_resources.csv"), []byte(c.res), 0o644)
			if !c.noYAML {
				for _, f := range []string{"test.yaml", "docker-ubuntu.yaml", "docker-iperf.yaml"} {
					b, _ := os.ReadFile(filepath.Join("testdata/workloads", f))
					os.WriteFile(filepath.Join(yamls, f), b, 0o644)
				}
			}
			_, err := LoadWorkloads(tables, yamls)
			if !errors.Is(err, ErrWorkloadFile) || !strings.Contains(err.Error(), c.wantText) {
				t.Fatalf("error %v, want ErrWorkloadFile naming %q", err, c.wantText)
			}
		})
	}
}
