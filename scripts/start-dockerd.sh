#!/bin/sh
# Starts a Docker engine for the launcher's Docker tests and the bench if
# none answers on the socket, and waits (up to ~30 s) until it does. It is
# idempotent: with an engine already up it only checks it. The engine runs
# without iptables rules or a default bridge because test containers use
# network mode "none" and the CI machines have no netfilter to spare.
# Environment: DOCKER_SOCK (default /var/run/docker.sock), DOCKERD_LOG
# (default /var/log/ciao-dockerd.log).
set -eu
sock="${DOCKER_SOCK:-/var/run/docker.sock}"
log="${DOCKERD_LOG:-/var/log/ciao-dockerd.log}"
export DOCKER_HOST="unix://$sock"

answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if answers; then
	exit 0
fi
# Test packages run in parallel and each may call this script: one starts
# the engine, the others wait for it rather than start a second one.
if command -v flock >/dev/null 2>&1 && [ -z "${CIAO_DOCKERD_LOCKED:-}" ]; then
	CIAO_DOCKERD_LOCKED=1 exec flock "${TMPDIR:-/tmp}/ciao-start-dockerd.lock" "$0" "$@"
fi
if answers; then
	exit 0
fi
if ! command -v dockerd >/dev/null 2>&1 && [ ! -x /usr/sbin/dockerd ]; then
	echo "start-dockerd: dockerd is not installed" >&2
	exit 1
fi
dockerd=$(command -v dockerd || echo /usr/sbin/dockerd)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo -n"
# A previous engine that died leaves its pid file and socket behind.
if [ -S "$sock" ] && ! answers; then
	$sudo rm -f "$sock"
fi
$sudo sh -c "nohup '$dockerd' --iptables=false --bridge=none --host 'unix://$sock' >>'$log' 2>&1 &"
i=0
while [ $i -lt 60 ]; do
	if answers; then
		echo "start-dockerd: engine up on $sock (log: $log)"
		exit 0
	fi
	sleep 0.5
	i=$((i + 1))
done
echo "start-dockerd: no answer on $sock after 30 s; last lines of $log:" >&2
tail -n 20 "$log" >&2 || true
exit 1
