#!/bin/sh
# Builds the tiny boot image the QEMU driver's tests and vm-bench use, from
# Debian packages only (nothing is fetched at test run time):
#
#   <outdir>/vmlinuz         Debian's cloud kernel, extracted with dpkg-deb -x
#   <outdir>/initrd.img      busybox initramfs (cpio newc, gzip); its /init
#                            prints "CIAO-VM-BOOTED <hostname>" on ttyS0, shows
#                            the config drive's meta_data.json when it can
#                            mount it, asks for eth0's address by DHCP (in
#                            the background) and prints "CIAO-VM-NET eth0
#                            <ip>/<prefix>" once it has one, then idles so
#                            the VM keeps running
#   <outdir>/disk.qcow2      a small empty qcow2 root disk (the overlay base)
#   <outdir>/cmdline         the kernel command line
#
# Usage: scripts/build-vm-image.sh [outdir]   (default build/vm)
# Idempotent: a complete outdir built from the same script is left alone.
set -eu
cd "$(dirname "$0")/.."
out=${1:-build/vm}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The stamp names this script's content, so editing /init rebuilds.
stamp=$(sha256sum "$0" | cut -c1-16)
if [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ] && [ -s "$out/disk.qcow2" ] &&
	[ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
	exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo -n"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. Kernel: the cloud flavour is small and has virtio built in; it is a
# meta package, so follow its dependency to the versioned image.
kpkg=""
for meta in linux-image-cloud-amd64 linux-image-amd64; do
	dep=$(apt-cache depends "$meta" 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)
	if [ -n "$dep" ]; then
		kpkg=$dep
		break
	fi
done
[ -n "$kpkg" ] || { echo "build-vm-image: no Debian kernel package found (apt-get update?)" >&2; exit 1; }
# apt-get download drops privileges to _apt, which must be able to write.
chmod 777 "$work"
(cd "$work" && apt-get download "$kpkg" >/dev/null)
dpkg-deb -x "$work"/"$kpkg"_*.deb "$work/kernel"
cp "$work"/kernel/boot/vmlinuz-* "$out/vmlinuz.tmp"
kver=$(ls "$work/kernel/lib/modules" | head -n1)

# 2. Busybox, statically linked so the initramfs needs no libraries.
if [ ! -x /bin/busybox ] || ! file -L /bin/busybox 2>/dev/null | grep -q static; then
	if ! dpkg -s busybox-static >/dev/null 2>&1; then
		$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends busybox-static >/dev/null
	fi
fi
root="$work/root"
mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev" "$root/mnt" "$root/lib/modules" "$root/etc"
cp /bin/busybox "$root/bin/busybox"
for app in sh mount umount cat echo sleep hostname insmod mkdir ls ip udhcpc; do
	ln -s busybox "$root/bin/$app"
done
# The modules that let /init read the config drive (a virtio CD-ROM) and
# drive a virtio NIC, in load order: the virtio core (virtio_ring, then
# virtio) is a module in the cloud kernel, and virtio_net needs
# net_failover, which needs failover. Any of them may be built in, so
# missing files are fine; a module whose dependency is not loaded before
# it fails the build (insmod does not resolve dependencies).
modules="drivers/virtio/virtio_ring drivers/virtio/virtio \
	drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci_modern_dev \
	drivers/virtio/virtio_pci drivers/block/virtio_blk drivers/cdrom/cdrom fs/isofs/isofs \
	net/core/failover drivers/net/net_failover drivers/net/virtio_net"
loaded=" "
for m in $modules; do
	f=$(ls "$work/kernel/lib/modules/$kver/kernel/$m".ko 2>/dev/null | head -n1 || true)
	[ -n "$f" ] || continue
	for dep in $(grep -ao 'depends=[a-z0-9_,-]*' "$f" | head -n1 | cut -d= -f2 | tr ',' ' '); do
		case "$loaded" in
		*" $dep "*) ;;
		*) echo "build-vm-image: $m needs $dep, which is not loaded before it" >&2; exit 1 ;;
		esac
	done
	cp "$f" "$root/lib/modules/"
	loaded="$loaded$(basename "$m") "
done
cat >"$root/init" <<'EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
# QEMU's -uuid is the DMI product uuid: the launcher sets it to the instance.
name=$(cat /sys/class/dmi/id/product_uuid 2>/dev/null)
[ -n "$name" ] || name=$(hostname)
hostname "$name" 2>/dev/null
echo "CIAO-VM-BOOTED $name" >/dev/ttyS0
# Optional: show the config drive's metadata (cloud-init would read it).
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk cdrom isofs; do
	[ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko 2>/dev/null
done
# Networking, in the background so that a VM without a NIC (or without a
# DHCP server) boots as fast as before: udhcpc keeps asking (3 tries of
# 1 s, then again after 2 s) and renews the lease; its script prints
# "CIAO-VM-NET eth0 <ip>/<prefix>".
(
	for m in failover net_failover virtio_net; do
		[ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko 2>/dev/null
	done
	if [ -e /sys/class/net/eth0 ]; then
		ip link set lo up
		exec udhcpc -f -i eth0 -s /etc/udhcpc.script -t 3 -T 1 -A 2 >/dev/null 2>&1
	fi
) &
for d in /dev/vd?; do
	if mount -t iso9660 -o ro "$d" /mnt 2>/dev/null; then
		if [ -f /mnt/openstack/latest/meta_data.json ]; then
			echo "CIAO-VM-METADATA $(cat /mnt/openstack/latest/meta_data.json | tr -d '\n ')" >/dev/ttyS0
		fi
		umount /mnt
	fi
done
while :; do sleep 3600; done
EOF
chmod 755 "$root/init"
# udhcpc runs this on every lease change: it configures eth0 and prints
# the address it got on the serial console.
cat >"$root/etc/udhcpc.script" <<'EOF'
#!/bin/sh
case "$1" in
deconfig)
	ip addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound|renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	for r in $router; do
		ip route add default via "$r" dev "$interface" 2>/dev/null
		break
	done
	echo "CIAO-VM-NET $interface $ip/${mask:-24}" >/dev/ttyS0
	;;
esac
exit 0
EOF
chmod 755 "$root/etc/udhcpc.script"
# busybox's own cpio writes newc, so the cpio package is not needed.
(cd "$root" && find . | /bin/busybox cpio -o -H newc 2>/dev/null) >"$work/initrd.cpio"
gzip -9 <"$work/initrd.cpio" >"$out/initrd.img.tmp"
[ "$(wc -c <"$work/initrd.cpio")" -gt 100000 ] || { echo "build-vm-image: initramfs too small" >&2; exit 1; }

# 3. A small root disk for the overlay (the initramfs does not need it).
qemu-img create -q -f qcow2 "$out/disk.qcow2.tmp" 64M

echo "console=ttyS0 panic=-1 quiet" >"$out/cmdline"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
mv "$out/initrd.img.tmp" "$out/initrd.img"
mv "$out/disk.qcow2.tmp" "$out/disk.qcow2"
echo "$stamp" >"$out/.stamp"
echo "build-vm-image: $out ($kpkg)"
