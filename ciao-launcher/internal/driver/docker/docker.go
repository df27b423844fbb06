// Package docker is ciao-launcher's container backend: an instance is a
// Docker container named ciao-<instance uuid>, created from the START's
// docker_image and run through the Docker Engine API.
//
// Containers are owned by dockerd, not by the launcher, so they outlive it.
// The Handle keeps the container id; the ciao.instance_uuid label lets a
// restarted launcher find the container even if the id it saved is stale,
// and the ciao.instances_root label scopes a hard reset to one launcher's
// containers. Images are never built here: a missing image is pulled, and
// where no registry is reachable it must already be loaded (docker load or
// import), else the START fails with image_failure.
package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"runtime"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/golang/glog"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/networking"
)

// Config tunes the driver. Zero values take the defaults of DefaultConfig.
type Config struct {
	// Host is the engine's address; "" uses DOCKER_HOST, else
	// unix:///var/run/docker.sock.
	Host string
	// StopGrace is how long Stop lets a container handle SIGTERM before
	// the engine kills it.
	StopGrace time.Duration
	// APITimeout bounds each engine call that is not a pull or a stop.
	APITimeout time.Duration
	// PullTimeout bounds pulling a missing image.
	PullTimeout time.Duration
}

// DefaultConfig is the configuration of a real node.
func DefaultConfig() Config {
	return Config{StopGrace: 10 * time.Second, APITimeout: 30 * time.Second, PullTimeout: 10 * time.Minute}
}

// Driver is the Docker backend. Its state is the engine client, which is
// safe for concurrent use; everything about an instance is in its Handle.
type Driver struct {
	cfg      Config
	cli      *client.Client
	hostCPUs int
}

var (
	_ driver.Driver   = (*Driver)(nil)
	_ driver.Resetter = (*Driver)(nil)
)

// New returns a Docker driver. It does not contact the engine: a node
// whose engine is down still starts, and its container STARTs fail with
// launch_failure until the engine answers.
func New(cfg Config) (*Driver, error) {
	def := DefaultConfig()
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = def.StopGrace
	}
	if cfg.APITimeout <= 0 {
		cfg.APITimeout = def.APITimeout
	}
	if cfg.PullTimeout <= 0 {
		cfg.PullTimeout = def.PullTimeout
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation(), client.WithUserAgent("ciao-launcher")}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker: engine client: %w", err)
	}
	return &Driver{cfg: cfg, cli: cli, hostCPUs: runtime.NumCPU()}, nil
}

// Close closes the engine client's idle connections. Containers are not
// touched.
func (d *Driver) Close() error { return d.cli.Close() }

// Ping checks that the engine answers.
func (d *Driver) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.APITimeout)
	defer cancel()
	if _, err := d.cli.Ping(ctx); err != nil {
		return fmt.Errorf("docker: engine at %s does not answer: %w", d.cli.DaemonHost(), err)
	}
	return nil
}

// handleData is the driver's part of a Handle: what the label fallback
// needs.
type handleData struct {
	UUID string `json:"uuid"`
}

func instanceOf(h driver.Handle) string {
	var hd handleData
	if len(h.Data) > 0 {
		if err := json.Unmarshal(h.Data, &hd); err != nil {
			glog.Warningf("docker: bad handle data %q: %v", h.Data, err)
		}
	}
	return hd.UUID
}

// Start creates and starts the instance's container.
func (d *Driver) Start(ctx context.Context, spec driver.Spec) (driver.Handle, error) {
	cs, err := containerConfig(spec, filepath.Dir(spec.Dir), d.hostCPUs)
	if err != nil {
		return driver.Handle{}, err
	}
	if err := d.ensureImage(ctx, spec.Image); err != nil {
		return driver.Handle{}, err
	}
	id, err := d.create(ctx, cs)
	if err != nil {
		return driver.Handle{}, err
	}
	sctx, cancel := context.WithTimeout(ctx, d.cfg.APITimeout)
	defer cancel()
	if err := d.cli.ContainerStart(sctx, id, container.StartOptions{}); err != nil {
		// A container that cannot start is removed (a RESTART then
		// creates it anew) rather than left for the next attempt to trip
		// over.
		d.remove(context.WithoutCancel(ctx), id)
		return driver.Handle{}, fmt.Errorf("%w: starting container %s of %s: %v", driver.ErrLaunch, shortID(id), spec.InstanceUUID, err)
	}
	if err := d.attachVnic(ctx, id, spec); err != nil {
		d.remove(context.WithoutCancel(ctx), id)
		return driver.Handle{}, fmt.Errorf("%w: tenant VNIC of %s: %v", driver.ErrLaunch, spec.InstanceUUID, err)
	}
	data, _ := json.Marshal(handleData{UUID: spec.InstanceUUID})
	glog.Infof("docker: %s started container %s (%s, cmd %q)", spec.InstanceUUID, shortID(id), spec.Image, cs.Config.Cmd)
	return driver.Handle{Driver: driver.KindDocker, ID: id, Data: data}, nil
}

// create creates the container, or returns the instance's existing one:
// RESTART calls Start again, and restarting the stopped container keeps
// its writable layer as a VM reboot keeps its disk. The same applies to a
// container left by a launcher that died before saving its handle. A
// container of that name that is not this instance's (another instances
// root: another launcher on the engine) is an error.
func (d *Driver) create(ctx context.Context, cs containerSpec) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, d.cfg.APITimeout)
	defer cancel()
	resp, err := d.cli.ContainerCreate(cctx, cs.Config, cs.Host, nil, nil, cs.Name)
	if err == nil {
		for _, w := range resp.Warnings {
			glog.Warningf("docker: creating %s: %s", cs.Name, w)
		}
		return resp.ID, nil
	}
	if !cerrdefs.IsConflict(err) {
		return "", d.launchErr(ctx, fmt.Sprintf("creating container %s", cs.Name), err)
	}
	old, ierr := d.cli.ContainerInspect(cctx, cs.Name)
	if ierr != nil || old.Config == nil || old.Config.Labels[LabelInstance] != cs.Config.Labels[LabelInstance] ||
		old.Config.Labels[LabelRoot] != cs.Config.Labels[LabelRoot] {
		return "", fmt.Errorf("%w: a container named %s exists and is not this instance's: %v", driver.ErrLaunch, cs.Name, err)
	}
	glog.V(1).Infof("docker: reusing container %s of %s", shortID(old.ID), cs.Name)
	return old.ID, nil
}

// launchErr wraps an engine error in ErrLaunch, saying whether the engine
// is down, which is the usual reason and the one the operator can fix.
func (d *Driver) launchErr(ctx context.Context, step string, err error) error {
	if perr := d.Ping(ctx); perr != nil {
		return fmt.Errorf("%w: %s: %v", driver.ErrLaunch, step, perr)
	}
	return fmt.Errorf("%w: %s: %v", driver.ErrLaunch, step, err)
}

// ensureImage makes sure ref is in the engine's image store, pulling it if
// needed. Errors wrap ErrImage, or ErrLaunch if the engine does not answer.
func (d *Driver) ensureImage(ctx context.Context, ref string) error {
	ictx, cancel := context.WithTimeout(ctx, d.cfg.APITimeout)
	_, err := d.cli.ImageInspect(ictx, ref)
	cancel()
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return d.launchErr(ctx, fmt.Sprintf("looking up image %q", ref), err)
	}
	glog.Infof("docker: image %q is not on this node, pulling it", ref)
	pctx, cancel := context.WithTimeout(ctx, d.cfg.PullTimeout)
	defer cancel()
	if err := d.pull(pctx, ref); err != nil {
		return fmt.Errorf("%w: image %q is not on this node and pulling it failed (load it with `docker load` or `docker import` where no registry is reachable): %v", driver.ErrImage, ref, err)
	}
	return nil
}

// pull pulls ref and reads the progress stream to its end: the engine
// reports a failed pull only as an error message in that stream.
func (d *Driver) pull(ctx context.Context, ref string) error {
	rc, err := d.cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var m struct {
			Status      string `json:"status"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading pull progress: %w", err)
		}
		if m.ErrorDetail != nil {
			return errors.New(m.ErrorDetail.Message)
		}
		glog.V(2).Infof("docker: pull %s: %s", ref, m.Status)
	}
}

// inspect finds the handle's container: by id, else by the instance label
// (the saved id may be stale, e.g. after the container was recreated).
// A container that is gone is (zero, ErrNotRunning).
func (d *Driver) inspect(ctx context.Context, h driver.Handle, size bool) (container.InspectResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.APITimeout)
	defer cancel()
	if h.ID != "" {
		c, _, err := d.cli.ContainerInspectWithRaw(ctx, h.ID, size)
		if err == nil {
			return c, nil
		}
		if !cerrdefs.IsNotFound(err) {
			return container.InspectResponse{}, fmt.Errorf("docker: inspecting %s: %w", shortID(h.ID), err)
		}
	}
	uuid := instanceOf(h)
	if uuid == "" {
		return container.InspectResponse{}, driver.ErrNotRunning
	}
	list, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelInstance+"="+uuid))})
	if err != nil {
		return container.InspectResponse{}, fmt.Errorf("docker: listing containers of %s: %w", uuid, err)
	}
	if len(list) == 0 {
		return container.InspectResponse{}, driver.ErrNotRunning
	}
	if h.ID != "" {
		glog.Warningf("docker: container %s of %s is gone, found %s by its label", shortID(h.ID), uuid, shortID(list[0].ID))
	}
	c, _, err := d.cli.ContainerInspectWithRaw(ctx, list[0].ID, size)
	if cerrdefs.IsNotFound(err) {
		return container.InspectResponse{}, driver.ErrNotRunning
	}
	return c, err
}

func running(c container.InspectResponse) bool {
	return c.State != nil && (c.State.Running || c.State.Paused || c.State.Restarting)
}

// Running inspects the container; a container that is gone is not running.
func (d *Driver) Running(ctx context.Context, h driver.Handle) (bool, error) {
	c, err := d.inspect(ctx, h, false)
	if errors.Is(err, driver.ErrNotRunning) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return running(c), nil
}

// Stop stops the container: SIGTERM, then SIGKILL after StopGrace.
func (d *Driver) Stop(ctx context.Context, h driver.Handle) error {
	c, err := d.inspect(ctx, h, false)
	if err != nil {
		return err
	}
	if !running(c) {
		return driver.ErrNotRunning
	}
	secs := int(math.Ceil(d.cfg.StopGrace.Seconds()))
	sctx, cancel := context.WithTimeout(ctx, d.cfg.StopGrace+d.cfg.APITimeout)
	defer cancel()
	if err := d.cli.ContainerStop(sctx, c.ID, container.StopOptions{Timeout: &secs}); err != nil {
		if cerrdefs.IsNotFound(err) {
			return driver.ErrNotRunning
		}
		return fmt.Errorf("docker: stopping %s: %w", shortID(c.ID), err)
	}
	return nil
}

// Delete force-removes the container and its anonymous volumes.
func (d *Driver) Delete(ctx context.Context, h driver.Handle) error {
	c, err := d.inspect(ctx, h, false)
	if errors.Is(err, driver.ErrNotRunning) {
		return nil
	}
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, d.cfg.StopGrace+d.cfg.APITimeout)
	defer cancel()
	err = d.cli.ContainerRemove(rctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: removing %s: %w", shortID(c.ID), err)
	}
	return nil
}

// remove force-removes a container, logging failures: it cleans up after
// another error, which is the one to report.
func (d *Driver) remove(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.APITimeout)
	defer cancel()
	if err := d.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
		glog.Warningf("docker: removing container %s: %v", shortID(id), err)
	}
}

// Adopt checks the container of a handle found on disk. It neither starts
// nor stops it.
func (d *Driver) Adopt(ctx context.Context, h driver.Handle, spec driver.Spec) (bool, error) {
	if h.Driver != driver.KindDocker {
		return false, fmt.Errorf("docker: cannot adopt a %q handle", h.Driver)
	}
	if instanceOf(h) == "" && spec.InstanceUUID != "" {
		h.Data, _ = json.Marshal(handleData{UUID: spec.InstanceUUID})
	}
	return d.Running(ctx, h)
}

// Stats samples the container once: memory in use (rounded up, so a live
// container never reports 0 MB), cumulative CPU time (the launcher turns
// two samples into a percentage normalised to the vcpus) and the size of
// its writable layer.
func (d *Driver) Stats(ctx context.Context, h driver.Handle) (driver.Stats, error) {
	s := driver.Stats{MemMB: -1, DiskMB: -1, CPUTime: -1}
	c, err := d.inspect(ctx, h, true)
	if err != nil {
		return s, err
	}
	if c.SizeRw != nil {
		s.DiskMB = int(*c.SizeRw / 1000000)
	}
	if !running(c) {
		return s, driver.ErrNotRunning
	}
	sctx, cancel := context.WithTimeout(ctx, d.cfg.APITimeout)
	defer cancel()
	r, err := d.cli.ContainerStatsOneShot(sctx, c.ID)
	if err != nil {
		return s, fmt.Errorf("docker: stats of %s: %w", shortID(c.ID), err)
	}
	defer r.Body.Close()
	var st container.StatsResponse
	if err := json.NewDecoder(r.Body).Decode(&st); err != nil {
		return s, fmt.Errorf("docker: decoding stats of %s: %w", shortID(c.ID), err)
	}
	applyStats(&s, st)
	return s, nil
}

// applyStats fills a sample from the engine's stats. An exited container
// has zero readings; they stay unknown.
func applyStats(s *driver.Stats, st container.StatsResponse) {
	if u := st.MemoryStats.Usage; u > 0 {
		s.MemMB = int((u + 1<<20 - 1) >> 20)
	}
	if t := st.CPUStats.CPUUsage.TotalUsage; t > 0 {
		s.CPUTime = time.Duration(t)
	}
}

// Reset force-removes every container of the launcher whose instances
// live under root, including any the state directory no longer knows. An
// engine that does not answer is only a warning (launcher spec §13): a
// node without Docker must still be resettable.
func (d *Driver) Reset(ctx context.Context, root string) error {
	if err := d.Ping(ctx); err != nil {
		glog.Warningf("docker: hard reset skips containers: %v", err)
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, d.cfg.APITimeout)
	list, err := d.cli.ContainerList(lctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelRoot+"="+root))})
	cancel()
	if err != nil {
		return fmt.Errorf("docker: listing ciao containers: %w", err)
	}
	var errs []error
	for _, c := range list {
		rctx, cancel := context.WithTimeout(ctx, d.cfg.APITimeout+d.cfg.StopGrace)
		err := d.cli.ContainerRemove(rctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		cancel()
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("docker: removing %s: %w", shortID(c.ID), err))
			continue
		}
		glog.Infof("docker: hard reset: removed container %s of %s", shortID(c.ID), c.Labels[LabelInstance])
	}
	return errors.Join(errs...)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// attachVnic moves the instance's tenant VNIC into the running container
// as eth0 with its address and the subnet's gateway (the work the 2016
// Docker network plugin had dockerd do).
func (d *Driver) attachVnic(ctx context.Context, id string, spec driver.Spec) error {
	if spec.VnicPeer == "" {
		return nil
	}
	ictx, cancel := context.WithTimeout(ctx, d.cfg.APITimeout)
	defer cancel()
	info, err := d.cli.ContainerInspect(ictx, id)
	if err != nil {
		return err
	}
	if info.State == nil || info.State.Pid <= 0 {
		return fmt.Errorf("container %s has no process", shortID(id))
	}
	node := networking.DefaultConfig()
	node.Netns = spec.VnicNetns
	return networking.AttachContainer(node, spec.VnicPeer, fmt.Sprintf("/proc/%d/ns/net", info.State.Pid), spec.VnicAddr, spec.VnicGateway)
}
