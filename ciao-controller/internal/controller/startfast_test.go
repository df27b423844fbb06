package controller

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
	"github.com/ciao-project/ciao/payloads"
	"github.com/ciao-project/ciao/uuid"
)

// slowStart is what startPayload made before the fast path.
func slowStart(t testing.TB, w datastore.Workload, cmd payloads.StartCmd, meta payloads.StartMetadata) []byte {
	b, err := payloads.ComposeStart(&payloads.Start{Start: cmd}, w.Config, meta)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkFast: when the fast path answers, its bytes are ComposeStart's.
func checkFast(t testing.TB, w datastore.Workload, cmd payloads.StartCmd, meta payloads.StartMetadata) bool {
	got, ok := fastStart(w, &cmd, meta)
	if !ok {
		return false
	}
	if want := slowStart(t, w, cmd, meta); !bytes.Equal(got, want) {
		t.Fatalf("fast START differs:\n%s\nwant:\n%s", got, want)
	}
	return true
}

// TestFastStartMatchesComposeStart: instance and CNCI STARTs of every
// shipped workload and of workloads made through the workloads API
// (workloadapi_test.go), with and without a CNCI, at many addresses, are
// byte-for-byte ComposeStart's; odd values take the slow path.
func TestFastStartMatchesComposeStart(t *testing.T) {
	fast := 0
	for _, w := range append(ShippedWorkloads(), apiWorkloads(t)...) {
		for i := 0; i < 300; i++ {
			a := fmt.Sprintf("172.%d.%d.%d", 16+i%16, i%256, 2+i%253)
			in := datastore.Instance{ID: uuid.Generate().String(), TenantID: uuid.Generate().String(), IP: a,
				MAC: fmt.Sprintf("02:00:ac:%02x:%02x:%02x", 16+i%16, i%256, 2+i%253)}
			cn := datastore.CNCI{}
			if i%2 == 0 {
				cn = datastore.CNCI{ID: uuid.Generate().String(), IP: fmt.Sprintf("198.51.100.%d", i%250)}
			}
			p, err := startPayload(w, in, cn)
			if err != nil {
				t.Fatal(err)
			}
			s, err := payloads.DecodeStart(p)
			if err != nil || s.Start.InstanceUUID != in.ID || s.Start.Networking.ConcentratorIP != cn.IP {
				t.Fatalf("START %s does not decode back: %+v %v", p, s, err)
			}
			if checkFast(t, w, s.Start, payloads.StartMetadata{UUID: in.ID, Hostname: in.ID}) {
				fast++
			}
		}
		c, err := CNCIStartPayload(w, uuid.Generate().String(), uuid.Generate().String(), "02:3a:bc:00:11:22")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := payloads.DecodeStart(c); err != nil {
			t.Fatal(err)
		}
	}
	if fast < 1000 {
		t.Fatalf("fast path taken %d times only", fast)
	}
	// Values yaml.v2 would quote, or that the fast path does not know,
	// go the slow way.
	w := ShippedWorkloads()[1]
	base := payloads.StartCmd{TenantUUID: uuid.Generate().String(), InstanceUUID: uuid.Generate().String(),
		Networking: payloads.NetworkResources{VnicUUID: uuid.Generate().String(), VnicMAC: "02:00:ac:10:00:02"}}
	for _, mod := range []func(*payloads.StartCmd){
		func(c *payloads.StartCmd) { c.TenantUUID = "tenant with spaces" },
		func(c *payloads.StartCmd) { c.Networking.VnicMAC = "02:00:10:10:00:02" },
		func(c *payloads.StartCmd) { c.Networking.PrivateIP = "1e3" },
		func(c *payloads.StartCmd) { c.Networking.Subnet = "yes" },
		func(c *payloads.StartCmd) { c.Networking.PublicIP = true },
		func(c *payloads.StartCmd) { c.Storage.ID = "x" },
	} {
		c := base
		mod(&c)
		if _, ok := fastStart(w, &c, payloads.StartMetadata{UUID: c.InstanceUUID, Hostname: c.InstanceUUID}); ok {
			t.Errorf("fast path took %+v", c)
		}
	}
}

// FuzzFastStart: for any values, the fast path either declines or gives
// exactly ComposeStart's bytes.
func FuzzFastStart(f *testing.F) {
	f.Add("1bd6cbb2-2a43-4b6e-9a4f-0f6d3a3c1e2a", "02:00:ac:10:00:02", "172.16.0.2", "172.16.0.0/24", "198.51.100.20", "ubuntu:latest", int64(1))
	f.Add("1BD6CBB2-2A43-4B6E-9A4F-0F6D3A3C1E2A", "02:00:10:10:00:02", "10.0.0.1", "10.0.0.0/8", "", "", int64(2))
	f.Add("1E345678-2A43-4B6E-9A4F-0F6D3A3C1E2A", "02:00:0a:10:00:02", "10.0.0.1", "10.0.0.0/8", "", "", int64(4))
	f.Fuzz(func(t *testing.T, tenant, mac, ip, subnet, cnciIP, image string, seed int64) {
		r := rand.New(rand.NewSource(seed))
		w := ShippedWorkloads()[r.Intn(5)]
		w.ImageName = image
		id := uuid.Generate().String()
		cmd := payloads.StartCmd{TenantUUID: tenant, InstanceUUID: id, ImageUUID: w.ImageID, FWType: payloads.Firmware(w.FWType),
			InstancePersistence: payloads.PersistenceHost, VMType: payloads.Hypervisor(w.VMType),
			RequestedResources: []payloads.RequestedResource{}, EstimatedResources: []payloads.EstimatedResource{},
			Networking: payloads.NetworkResources{VnicMAC: mac, VnicUUID: uuid.Generate().String(), ConcentratorIP: cnciIP,
				Subnet: subnet, PrivateIP: ip}}
		if cmd.VMType == payloads.HypervisorDocker {
			cmd.DockerImage = w.ImageName
		}
		for _, d := range w.Defaults {
			cmd.RequestedResources = append(cmd.RequestedResources,
				payloads.RequestedResource{Type: payloads.Resource(d.Type), Value: d.Value, Mandatory: d.Mandatory})
		}
		host := id
		if seed%2 == 0 {
			host = "cnci-" + tenant
		}
		checkFast(t, w, cmd, payloads.StartMetadata{UUID: id, Hostname: host})
	})
}

func BenchmarkStartPayload(b *testing.B) {
	w := ShippedWorkloads()[1]
	in := datastore.Instance{ID: uuid.Generate().String(), TenantID: uuid.Generate().String(), IP: "172.16.0.2", MAC: "02:00:ac:10:00:02"}
	for i := 0; i < b.N; i++ {
		if _, err := startPayload(w, in, datastore.CNCI{}); err != nil {
			b.Fatal(err)
		}
	}
}
