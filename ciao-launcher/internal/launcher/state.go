package launcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/golang/glog"
	yaml "gopkg.in/yaml.v2"

	"github.com/ciao-project/ciao/ciao-launcher/internal/driver"
	"github.com/ciao-project/ciao/payloads"
)

// stateFileName is the instance's state file inside its directory. Its
// existence, with the directory, is what makes an instance exist.
const stateFileName = "state"

// stateVersion is written into every state file.
const stateVersion = 1

// instanceState is the content of an instance's state file: enough to
// restart the instance (its START) and to find it again (its handle).
type instanceState struct {
	Version int `json:"version"`
	// Kind names the driver (driver.KindProcess...).
	Kind string `json:"kind"`
	// Start is the START payload as received, all three documents.
	Start []byte `json:"start"`
	// Handle is the driver's handle of the last launch; empty before the
	// first one succeeded.
	Handle driver.Handle `json:"handle"`
}

func statePath(dir string) string { return filepath.Join(dir, stateFileName) }

// deletingFileName marks an instance whose deletion has begun. A DELETE
// (or EVACUATE) writes it, durably, before it tears anything down, so a
// launcher killed in the middle of a deletion finds the mark when it
// restarts and finishes the deletion instead of adopting the instance
// (adoptAll): the instance is never reported running again, and
// InstanceDeleted is sent once it is gone. A launcher killed before the
// mark was written adopts the instance as it was; the controller, which
// re-sends unconfirmed DELETEs, deletes it then. So every DELETE that
// reached the launcher ends in InstanceDeleted, or in no_instance for
// the re-sent one if the first InstanceDeleted was lost.
const deletingFileName = "deleting"

// markDeleting writes dir's deletion mark and syncs it and its entry.
func markDeleting(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, deletingFileName), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// deletingMarked reports whether dir holds the deletion mark.
func deletingMarked(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, deletingFileName))
	return err == nil
}

// save replaces the state file atomically and durably (a temporary file
// renamed over it): once it returns, the new state, and the instance
// directory holding it, survive a power loss; until then the previous
// state does. It is for instances whose previous state was acknowledged
// (RESTART); a START writes its state with create and commit.
func (s *instanceState) save(dir string) error {
	b, err := s.encode()
	if err != nil {
		return err
	}
	if err := replaceFile(statePath(dir), b, 0o600, true); err != nil {
		return err
	}
	// The directory's own entry in the state directory (made by START's
	// mkdir) must be durable too. On ext4 the journal commit of the sync
	// above already carried it, and this sync is a cheap no-op.
	syncDir(filepath.Dir(filepath.Clean(dir)))
	return nil
}

// create writes a new instance's first record (its START, no handle yet)
// straight to the state file of its fresh directory, created with O_EXCL:
// one file creation, no temporary file and no rename. It is not synced:
// a launcher killed (SIGKILL, panic) after create returns finds it, as the
// kernel has it; a power loss before commit may lose it. The file is left
// open for commit, which the caller must call (or close the file).
func (s *instanceState) create(dir string) (*stateFile, error) {
	b, err := s.encode()
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(statePath(dir), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	return &stateFile{f: f, dir: dir, size: len(b)}, nil
}

// stateFile is a START's state file between create and commit.
type stateFile struct {
	f    *os.File
	dir  string
	size int // bytes written so far
}

// commit rewrites the record create wrote, in place, with s (now holding
// the launch's handle), and makes it durable: the file, its entry in the
// instance directory and the directory's entry in the state directory are
// synced before commit returns, which is before the instance is reported
// active. It closes the file.
//
// Rewriting in place, not through a temporary file and a rename, is safe
// because nothing acknowledged depends on the record yet: a rewrite cut
// short (a launcher killed within the write, a power loss before the sync)
// leaves create's record or an unreadable state file, the same as a power
// loss between create and commit did before (see scanInstances: an
// unreadable directory is not adopted; -hard-reset removes it).
func (sf *stateFile) commit(s *instanceState) error {
	defer sf.f.Close()
	b, err := s.encode()
	if err != nil {
		return err
	}
	if _, err := sf.f.WriteAt(b, 0); err != nil {
		return err
	}
	if len(b) < sf.size {
		if err := sf.f.Truncate(int64(len(b))); err != nil {
			return err
		}
	}
	sf.size = len(b)
	if err := sf.f.Sync(); err != nil {
		return err
	}
	syncDir(sf.dir)
	syncDir(filepath.Dir(filepath.Clean(sf.dir)))
	return nil
}

// close abandons the file without committing it.
func (sf *stateFile) close() { sf.f.Close() }

// encode is the state file's content. Compact JSON: loadState reads the
// indented files earlier launchers wrote as well.
func (s *instanceState) encode() ([]byte, error) {
	s.Version = stateVersion
	return json.Marshal(s)
}

// loadState reads an instance's state file.
func loadState(dir string) (*instanceState, error) {
	b, err := os.ReadFile(statePath(dir))
	if err != nil {
		return nil, err
	}
	var s instanceState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", statePath(dir), err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("%s: unknown version %d", statePath(dir), s.Version)
	}
	return &s, nil
}

// startRequest is a decoded START.
type startRequest struct {
	id       string
	cmd      payloads.StartCmd
	raw      []byte
	userData []byte
	metaData []byte
}

// parseStart decodes and checks a START payload the way the 2016 launcher
// does; the reason says how to answer a failure.
func parseStart(payload []byte) (*startRequest, payloads.StartFailureReason, error) {
	startYAML, userData, metaData, err := payloads.SplitStart(payload)
	if err != nil {
		return nil, payloads.StartInvalidPayload, err
	}
	var st payloads.Start
	if err := yaml.Unmarshal(startYAML, &st); err != nil {
		return nil, payloads.StartInvalidPayload, err
	}
	if err := st.Start.ValidateForLauncher(); err != nil {
		return &startRequest{id: trimID(st.Start.InstanceUUID)}, payloads.StartInvalidData, err
	}
	if _, err := st.Start.Firmware(); err != nil {
		return nil, payloads.StartInvalidData, err
	}
	for _, r := range st.Start.RequestedResources {
		if r.Value < 0 {
			return &startRequest{id: trimID(st.Start.InstanceUUID)}, payloads.StartInvalidData,
				fmt.Errorf("%w: negative %s", payloads.ErrInvalidData, r.Type)
		}
	}
	return &startRequest{
		id:       trimID(st.Start.InstanceUUID),
		cmd:      st.Start,
		raw:      payload,
		userData: userData,
		metaData: metaData,
	}, "", nil
}

// spec turns a START into a driver spec.
func (r *startRequest) spec(dir string, network bool) driver.Spec {
	vcpus, _ := r.cmd.VCPUs()
	mem, _ := r.cmd.MemMB()
	disk, _ := r.cmd.DiskMB()
	fw, _ := r.cmd.Firmware()
	hv, _ := r.cmd.Hypervisor()
	image := r.cmd.ImageUUID
	if hv == payloads.HypervisorDocker {
		image = r.cmd.DockerImage
	}
	return driver.Spec{
		InstanceUUID: r.id,
		Tenant:       trimID(r.cmd.TenantUUID),
		Dir:          dir,
		VCPUs:        vcpus,
		MemMB:        mem,
		DiskMB:       disk,
		Image:        image,
		Legacy:       fw == payloads.FirmwareLegacy,
		Network:      network,
		VnicMAC:      strings.TrimSpace(r.cmd.Networking.VnicMAC),
		UserData:     r.userData,
		MetaData:     r.metaData,
	}
}

// foundInstance is an instance directory found at start-up.
type foundInstance struct {
	id       string
	dir      string
	state    *instanceState
	req      *startRequest
	deleting bool // its deletion had begun (deletingFileName)
}

// scanInstances lists the instance directories under root. Directories
// whose state cannot be read are reported in bad.
func scanInstances(root string) (found []foundInstance, bad []string, err error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		st, err := loadState(dir)
		if err != nil {
			glog.Warningf("launcher: instance directory %s: %v", dir, err)
			bad = append(bad, dir)
			continue
		}
		req, _, err := parseStart(st.Start)
		if err != nil {
			glog.Warningf("launcher: instance directory %s: stored START: %v", dir, err)
			bad = append(bad, dir)
			continue
		}
		if req.id != e.Name() {
			glog.Warningf("launcher: instance directory %s holds instance %s", dir, req.id)
			bad = append(bad, dir)
			continue
		}
		found = append(found, foundInstance{id: req.id, dir: dir, state: st, req: req, deleting: deletingMarked(dir)})
	}
	return found, bad, nil
}

// hardReset stops and deletes every instance under cfg.StateDir and removes
// their directories, including those whose state is unreadable.
func hardReset(ctx context.Context, cfg Config, drivers driver.Registry) error {
	found, bad, err := scanInstances(cfg.StateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("hard reset: %w", err)
	}
	var errs []error
	// Directories a driver still holds something in (a process instance's
	// network namespace mounted on <dir>/netns by a launcher that died
	// before saving its handle) are removed again after the drivers' Reset.
	var busy []string
	for _, f := range found {
		if f.state.Handle.Driver != "" {
			d, err := drivers.Lookup(f.state.Kind)
			if err != nil {
				errs = append(errs, fmt.Errorf("hard reset of %s: %w", f.id, err))
				continue // keep the directory: something still runs
			}
			if err := d.Delete(ctx, f.state.Handle); err != nil {
				errs = append(errs, fmt.Errorf("hard reset of %s: %w", f.id, err))
				continue
			}
		}
		glog.Infof("launcher: hard reset: removed instance %s", f.id)
		if err := os.RemoveAll(f.dir); err != nil {
			busy = append(busy, f.dir)
		}
	}
	for _, dir := range bad {
		glog.Warningf("launcher: hard reset: removing unreadable instance directory %s", dir)
		if err := os.RemoveAll(dir); err != nil {
			busy = append(busy, dir)
		}
	}
	// Containers whose directory is gone (a launcher that died between
	// creating one and saving its handle) are found by label only.
	for _, kind := range drivers.Kinds() {
		if r, ok := drivers[kind].(driver.Resetter); ok {
			if err := r.Reset(ctx, filepath.Clean(cfg.StateDir)); err != nil {
				errs = append(errs, fmt.Errorf("hard reset of %s instances: %w", kind, err))
			}
		}
	}
	for _, dir := range busy {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("hard reset: %w", err))
		}
	}
	return errors.Join(errs...)
}

func trimID(s string) string { return strings.TrimSpace(s) }
