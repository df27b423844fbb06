package datastore

import (
	"context"
	"path/filepath"
	"testing"
)

// TestInstanceNames: the name given at create is kept, listed, and (in
// SQLite) survives a reopen; instances without one have "".
func TestInstanceNames(t *testing.T) {
	const tenant = "0c9f33c3-8c2b-4d1c-8d3a-6c1f0b3f4a10"
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			s := im.open(t)
			seed(t, s, tenant)
			named := req("00000000-0000-4000-8000-000000000001", tenant)
			named.Name = "web <1>"
			ins := mustCreate(t, s, named, req("00000000-0000-4000-8000-000000000002", tenant))
			if ins[0].Name != "web <1>" || ins[1].Name != "" {
				t.Fatalf("created %+v", ins)
			}
			in, err := s.Instance(context.Background(), named.ID)
			if err != nil || in.Name != "web <1>" {
				t.Fatalf("instance %+v %v", in, err)
			}
			p, err := s.Instances(context.Background(), InstanceQuery{TenantID: tenant})
			if err != nil || len(p.Instances) != 2 || p.Instances[0].Name != "web <1>" {
				t.Fatalf("instances %+v %v", p, err)
			}
		})
	}
	t.Run("sqlite reopen", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "ciao.db")
		s, err := OpenSQLite(context.Background(), NewConfig(path))
		if err != nil {
			t.Fatal(err)
		}
		seed(t, s, tenant)
		named := req("00000000-0000-4000-8000-000000000001", tenant)
		named.Name = "db"
		mustCreate(t, s, named)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err = OpenSQLite(context.Background(), NewConfig(path))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if in, err := s.Instance(context.Background(), named.ID); err != nil || in.Name != "db" {
			t.Fatalf("after reopen %+v %v", in, err)
		}
	})
}
