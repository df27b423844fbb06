package docker

import "context"

// Labels returns a container's labels and whether it runs (tests only).
func (d *Driver) Labels(ctx context.Context, id string) (map[string]string, string, error) {
	c, err := d.cli.ContainerInspect(ctx, id)
	if err != nil {
		return nil, "", err
	}
	return c.Config.Labels, c.State.Status, nil
}

// Exists reports whether a container exists (tests only).
func (d *Driver) Exists(ctx context.Context, id string) bool {
	_, err := d.cli.ContainerInspect(ctx, id)
	return err == nil
}
