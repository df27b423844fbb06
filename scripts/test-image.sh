#!/bin/sh
# Builds the image the launcher's Docker tests and bench run,
# ciao-test/busybox:latest, from Debian's busybox-static, and imports it
# into the local engine. Nothing is pulled from a registry (none is
# reachable on CI); an image already present is left alone.
set -eu
image="${CIAO_TEST_IMAGE:-ciao-test/busybox:latest}"
if docker image inspect "$image" >/dev/null 2>&1; then
	exit 0
fi
if ! dpkg -s busybox-static >/dev/null 2>&1; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo -n"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends busybox-static
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/tmp" "$root/proc" "$root/sys" "$root/dev" "$root/etc"
cp /bin/busybox "$root/bin/busybox"
for app in sh sleep echo cat ls ps top true false kill env dd head yes; do
	ln -s busybox "$root/bin/$app"
done
echo "root:x:0:0:root:/:/bin/sh" >"$root/etc/passwd"
tar -C "$root" -c . | docker import \
	--change 'ENV PATH=/bin' \
	--change 'CMD ["/bin/sleep", "3600"]' \
	- "$image" >/dev/null
echo "test-image: imported $image"
