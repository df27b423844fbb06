package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/ciao-project/ciao/ciao-controller/internal/datastore"
)

// Cloud-init documents of the shipped workloads (controller.md §8.2),
// abridged: the demo user of test.yaml is left out.
const (
	cloudInitTest         = "---\n#cloud-config\nruncmd:\n  - [ touch, /etc/bootdone ]\n...\n"
	cloudInitDockerUbuntu = "---\n#cloud-config\nruncmd:\n  - [ /bin/bash, -c, \"while true; do sleep 60; done\" ]\n...\n"
	cloudInitDockerIperf  = "---\n#cloud-config\nruncmd:\n  - [ /bin/bash, runIperf.sh, \"-P 8\" ]\n...\n"
)

// Ids of the shipped workloads (controller.md §8.3).
const (
	WorkloadFedora       = "69e84267-ed01-4738-b15f-b47de06b62e7"
	WorkloadClear        = "e35ed972-c46c-4aad-a1e7-ef103ae079a2"
	WorkloadCNCI         = "eba04826-62a5-48bd-876f-9119667b1487"
	WorkloadDockerUbuntu = "ca957444-fa46-11e5-94f9-38607786d9ec"
	WorkloadDockerIperf  = "ab68111c-03a6-11e6-87de-001320fb6e31"
)

// ShippedWorkloads returns the workloads of controller.md §8.3.
func ShippedWorkloads() []datastore.Workload {
	def := func(v, m, d int) []datastore.RequestedResource {
		return []datastore.RequestedResource{
			{Type: datastore.ResVCPUs, Value: v, Mandatory: true},
			{Type: datastore.ResMemMB, Value: m, Mandatory: true},
			{Type: datastore.ResDiskMB, Value: d, Mandatory: true},
		}
	}
	return []datastore.Workload{
		{ID: WorkloadFedora, Description: "Fedora 23 Cloud", Filename: "test.yaml", FWType: "legacy", VMType: "qemu",
			ImageID: "73a86d7e-93c0-480e-9c41-ab42f69b7799", Config: cloudInitTest, Defaults: def(2, 128, 80)},
		{ID: WorkloadClear, Description: "Clear Cloud", Filename: "test.yaml", FWType: "efi", VMType: "qemu",
			ImageID: "df3768da-31f5-4ba6-82f0-127a1a705169", Config: cloudInitTest, Defaults: def(2, 128, 80)},
		{ID: WorkloadCNCI, Description: "CNCI", Filename: "test.yaml", FWType: "efi", VMType: "qemu", Internal: true,
			ImageID: "4e16e743-265a-4bf2-9fd1-57ada0b28904", Config: cloudInitTest,
			Defaults: append(def(4, 2048, 2048), datastore.RequestedResource{Type: datastore.ResNetworkNode, Value: 1, Mandatory: true})},
		{ID: WorkloadDockerUbuntu, Description: "Docker Ubuntu latest", Filename: "docker-ubuntu.yaml", VMType: "docker",
			ImageID: "fa7d86d8-fa46-11e5-8493-38607786d9ec", ImageName: "ubuntu:latest", Config: cloudInitDockerUbuntu, Defaults: def(2, 128, 80)},
		{ID: WorkloadDockerIperf, Description: "Docker Iperf", Filename: "docker-iperf.yaml", VMType: "docker",
			ImageID: "b5e696b8-03a6-11e6-a424-001320fb6e31", ImageName: "mcastelino/iperf:latest", Config: cloudInitDockerIperf, Defaults: def(2, 128, 80)},
	}
}

// SeedWorkloads stores the shipped workloads that are not stored yet.
// Like the 2016 CSV seeding, an existing id is left as it is.
func SeedWorkloads(ctx context.Context, s datastore.Store) error {
	for _, w := range ShippedWorkloads() {
		if err := s.CreateWorkload(ctx, w); err != nil && !errors.Is(err, datastore.ErrExists) {
			return fmt.Errorf("seed workload %s: %w", w.ID, err)
		}
	}
	return nil
}
