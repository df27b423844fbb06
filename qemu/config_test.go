package qemu

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// launcherDir is the instance directory used by the launcher's own
// unit-test vector (launcher spec §7.5).
const launcherDir = "/var/lib/ciao/instance/1"

// launcherBase is the launcher's legacy test VM: root disk, config drive,
// KVM, daemonised, QMP socket.
func launcherBase() Config {
	return Config{
		Drives:    []Drive{RootDisk(launcherDir + "/image.qcow2"), ConfigDriveDisk(launcherDir + "/seed.iso")},
		Accel:     AccelKVM,
		Daemonize: true,
		QMPSocket: launcherDir + "/socket",
	}
}

func TestArgs(t *testing.T) {
	const launcherVector = "-drive file=/var/lib/ciao/instance/1/image.qcow2,if=virtio,aio=threads,format=qcow2 " +
		"-drive file=/var/lib/ciao/instance/1/seed.iso,if=virtio,media=cdrom " +
		"-enable-kvm -cpu host -daemonize -qmp unix:/var/lib/ciao/instance/1/socket,server,nowait"
	const seedAndNet = "-drive file=/var/lib/ciao/instance/1/image.qcow2,if=virtio,aio=threads,format=qcow2 " +
		"-drive file=/var/lib/ciao/instance/1/seed.iso,if=virtio,media=cdrom "
	const tail = "-enable-kvm -cpu host -daemonize -qmp unix:/var/lib/ciao/instance/1/socket,server,nowait"

	tests := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"launcher legacy", func(*Config) {}, launcherVector},
		{"launcher efi", func(c *Config) { c.Firmware = "/usr/share/qemu/OVMF.fd" },
			launcherVector + " -bios /usr/share/qemu/OVMF.fd"},
		{"launcher mem", func(c *Config) { c.MemoryMB = 100 }, launcherVector + " -m 100"},
		{"launcher cpus", func(c *Config) { c.CPUs = 4 }, launcherVector + " -smp cpus=4"},
		{"launcher user net", func(c *Config) { c.NetDevs = []NetDev{{Kind: NetUser}} },
			seedAndNet + "-net nic,model=virtio -net user " + tail},
		{"launcher tap", func(c *Config) {
			c.NetDevs = []NetDev{{Kind: NetTap, IFName: "vnic0", MAC: "02:00:00:00:00:01", VHost: true}}
		}, seedAndNet + "-netdev type=tap,ifname=vnic0,script=no,downscript=no,id=vnic0,vhost=on " +
			"-device driver=virtio-net-pci,netdev=vnic0,mac=02:00:00:00:00:01 " + tail},
		{"launcher macvtap fds", func(c *Config) {
			c.NetDevs = []NetDev{{Kind: NetTapFDs, ID: "mvt0", MAC: "02:00:00:00:00:02", VHost: true,
				FDs: []*os.File{os.Stdin, os.Stdin, os.Stdin, os.Stdin}}}
		}, seedAndNet + "-netdev type=tap,fds=3:4:5:6,id=mvt0,vhost=on " +
			"-device virtio-net-pci,netdev=mvt0,mq=on,vectors=32,mac=02:00:00:00:00:02 " + tail},
		{"tap fd opened in another namespace", func(c *Config) {
			c.NetDevs = []NetDev{{Kind: NetTapFDs, ID: "svn_1", MAC: "02:00:ac:10:00:02", FDs: []*os.File{os.Stdin}}}
		}, seedAndNet + "-netdev type=tap,fds=3,id=svn_1 " +
			"-device virtio-net-pci,netdev=svn_1,mac=02:00:ac:10:00:02 " + tail},
		{"launcher volume", func(c *Config) {
			vol := Drive{File: "rbd:rbd/v1:id=ciao", Interface: "none", ID: "drive_v1", Format: "raw",
				PCISlot: 5, DeviceID: "device_v1"}
			c.Drives = []Drive{c.Drives[0], vol, c.Drives[1]}
		}, "-drive file=/var/lib/ciao/instance/1/image.qcow2,if=virtio,aio=threads,format=qcow2 " +
			"-drive file=rbd:rbd/v1:id=ciao,if=none,id=drive_v1,format=raw " +
			"-device virtio-blk-pci,scsi=off,bus=pci.0,addr=0x5,id=device_v1,drive=drive_v1 " +
			"-drive file=/var/lib/ciao/instance/1/seed.iso,if=virtio,media=cdrom " + tail},
		{"launcher nc console", func(c *Config) {
			c.Headless = true
			c.Serial = &Serial{Kind: SerialTCP, Host: "192.168.0.2", Port: 5901}
		}, launcherVector + " -display none -vga none -device isa-serial,chardev=gnc0 " +
			"-chardev socket,port=5901,host=192.168.0.2,server,id=gnc0,server,nowait"},
		{"tcg with model", func(c *Config) { c.Accel = AccelTCG; c.CPUModel = "qemu64" },
			seedAndNet + "-accel tcg -cpu qemu64 -daemonize -qmp unix:/var/lib/ciao/instance/1/socket,server,nowait"},
		{"kvm with model", func(c *Config) { c.CPUModel = "Skylake-Server" },
			strings.Replace(launcherVector, "-cpu host", "-cpu Skylake-Server", 1)},
		{"identity, machine, pidfile", func(c *Config) {
			c.Name, c.UUID, c.MachineType = "vm1", "0b8b7d3e-6b36-4d5d-9a4b-4a3a0b9c1f00", "q35"
			c.PIDFile = "/run/vm1.pid"
		}, "-name vm1 -uuid 0b8b7d3e-6b36-4d5d-9a4b-4a3a0b9c1f00 -machine q35 " +
			strings.Replace(launcherVector, "-daemonize", "-daemonize -pidfile /run/vm1.pid", 1)},
		{"direct kernel boot, file console, knobs", func(c *Config) {
			c.Drives = nil
			c.Accel = AccelTCG
			c.Daemonize = false
			c.Kernel = Kernel{Path: "/boot/vmlinuz", Initrd: "/boot/initrd.img", Append: "console=ttyS0 root=/dev/vda1 rw"}
			c.Serial = &Serial{Kind: SerialFile, Path: "/tmp/console.log", ID: "con0"}
			c.NoUserConfig, c.NoDefaults, c.NoGraphic = true, true, true
		}, "-accel tcg -qmp unix:/var/lib/ciao/instance/1/socket,server,nowait " +
			"-device isa-serial,chardev=con0 -chardev file,path=/tmp/console.log,id=con0 " +
			"-kernel /boot/vmlinuz -initrd /boot/initrd.img -append console=ttyS0 root=/dev/vda1 rw " +
			"-no-user-config -nodefaults -nographic"},
		{"unix console", func(c *Config) {
			c.Drives, c.Daemonize, c.QMPSocket = nil, false, ""
			c.Serial = &Serial{Kind: SerialUnix, Path: "/tmp/con.sock"}
		}, "-enable-kvm -cpu host -device isa-serial,chardev=gnc0 -chardev socket,path=/tmp/con.sock,server,id=gnc0,nowait"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := launcherBase()
			tc.modify(&c)
			args, _, err := c.Args()
			if err != nil {
				t.Fatalf("Args: %v", err)
			}
			// "-append" takes one argument that contains spaces, so compare
			// the list, not a re-split string.
			if got := strings.Join(args, " "); got != tc.want {
				t.Errorf("args\n got: %s\nwant: %s", got, tc.want)
			}
		})
	}
}

func TestArgsAppendIsOneArgument(t *testing.T) {
	c := Config{Accel: AccelTCG, Kernel: Kernel{Path: "k", Append: "a b c"}}
	args, _, err := c.Args()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"-accel", "tcg", "-kernel", "k", "-append", "a b c"}
	if !reflect.DeepEqual(args, want) {
		t.Fatalf("got %q, want %q", args, want)
	}
}

func TestArgsFDNumbering(t *testing.T) {
	a, b, c3 := os.Stdin, os.Stdout, os.Stderr
	c := Config{Accel: AccelTCG, NetDevs: []NetDev{
		{Kind: NetTapFDs, ID: "n0", MAC: "m0", FDs: []*os.File{a, b}},
		{Kind: NetTap, IFName: "tap1", MAC: "m1"},
		{Kind: NetTapFDs, ID: "n2", MAC: "m2", FDs: []*os.File{c3}},
	}}
	args, files, err := c.Args()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(files, []*os.File{a, b, c3}) {
		t.Errorf("files = %v", files)
	}
	got := strings.Join(args, " ")
	for _, want := range []string{"type=tap,fds=3:4,id=n0", "type=tap,fds=5,id=n2", "ifname=tap1,script=no,downscript=no,id=tap1 "} {
		if !strings.Contains(got, want) {
			t.Errorf("%q missing from %s", want, got)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		modify  func(*Config)
		wantErr error
	}{
		{"auto unresolved", func(c *Config) { c.Accel = AccelAuto }, ErrAccelAuto},
		{"bad accel", func(c *Config) { c.Accel = 42 }, ErrInvalidConfig},
		{"nographic daemonize", func(c *Config) { c.NoGraphic = true }, ErrInvalidConfig},
		{"append without kernel", func(c *Config) { c.Kernel.Append = "x" }, ErrInvalidConfig},
		{"drive without file", func(c *Config) { c.Drives = []Drive{{Interface: "virtio"}} }, ErrInvalidConfig},
		{"pci slot without ids", func(c *Config) { c.Drives = []Drive{{File: "f", PCISlot: 4}} }, ErrInvalidConfig},
		{"tap without mac", func(c *Config) { c.NetDevs = []NetDev{{Kind: NetTap, IFName: "t"}} }, ErrInvalidConfig},
		{"tap fds without fds", func(c *Config) { c.NetDevs = []NetDev{{Kind: NetTapFDs, ID: "t", MAC: "m"}} }, ErrInvalidConfig},
		{"netdev zero kind", func(c *Config) { c.NetDevs = []NetDev{{}} }, ErrInvalidConfig},
		{"serial tcp no port", func(c *Config) { c.Serial = &Serial{Kind: SerialTCP, Host: "h"} }, ErrInvalidConfig},
		{"serial file no path", func(c *Config) { c.Serial = &Serial{Kind: SerialFile} }, ErrInvalidConfig},
		{"negative memory", func(c *Config) { c.MemoryMB = -1 }, ErrInvalidConfig},
		{"valid", func(*Config) {}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := launcherBase()
			tc.modify(&c)
			err := c.Validate()
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			if _, _, err := c.Args(); !errors.Is(err, tc.wantErr) {
				t.Fatalf("Args did not validate: %v", err)
			}
		})
	}
}

func TestAccel(t *testing.T) {
	yes := func() bool { return true }
	no := func() bool { return false }
	tests := []struct {
		in     Accel
		usable func() bool
		want   Accel
	}{
		{AccelAuto, yes, AccelKVM},
		{AccelAuto, no, AccelTCG},
		{AccelAuto, nil, AccelTCG},
		{AccelKVM, no, AccelKVM}, // explicit choices are the caller's
		{AccelTCG, yes, AccelTCG},
	}
	for _, tc := range tests {
		if got := ResolveAccel(tc.in, tc.usable); got != tc.want {
			t.Errorf("ResolveAccel(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	for s, want := range map[string]Accel{"auto": AccelAuto, "": AccelAuto, "KVM": AccelKVM, "tcg": AccelTCG, "software": AccelTCG} {
		got, err := ParseAccel(s)
		if err != nil || got != want {
			t.Errorf("ParseAccel(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if _, err := ParseAccel("xen"); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("ParseAccel(xen) err = %v", err)
	}
	if s := Accel(9).String(); s != "Accel(9)" {
		t.Errorf("String = %q", s)
	}
}

func TestKVMUsableAt(t *testing.T) {
	if kvmUsableAt("/nonexistent/kvm") {
		t.Error("missing device reported usable")
	}
	// A regular file opens but rejects the ioctl.
	f := t.TempDir() + "/kvm"
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if kvmUsableAt(f) {
		t.Error("regular file reported usable")
	}
	t.Logf("KVMUsable() on this machine: %v", KVMUsable())
}
