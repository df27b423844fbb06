#!/bin/sh
# Installs what Ciao and its integration tests need on this machine: every
# component's OS packages through osprepare (which skips what is present),
# then the few tools only the tests use. Run as root or with sudo rights.
set -eu
cd "$(dirname "$0")/.."
go run ./osprepare/cmd/ciao-osprepare -component all
missing=""
command -v isoinfo >/dev/null 2>&1 || missing="$missing genisoimage"
command -v zsh >/dev/null 2>&1 || missing="$missing zsh" # ciao-cli's zsh completion test
command -v busybox >/dev/null 2>&1 || missing="$missing busybox-static" # networking tests: udhcpc, ping, arping in instance namespaces
command -v iperf3 >/dev/null 2>&1 || missing="$missing iperf3"         # networking/cmd/net-bench throughput figures
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd" # _release: systemd-analyze verify of the units
command -v chromium >/dev/null 2>&1 || missing="$missing chromium" # ciao-webui's browser tests (headless)
command -v openstack >/dev/null 2>&1 || missing="$missing python3-openstackclient" # ciao-controller: the real OpenStack client against the API
if [ -n "$missing" ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo -n"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
fi
# Services and images the integration tests use, all made locally.
./scripts/start-dockerd.sh
./scripts/test-image.sh
./scripts/build-vm-image.sh
