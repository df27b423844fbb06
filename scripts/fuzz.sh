#!/bin/sh
# Runs every native fuzz target in the module for the given time each.
# Usage: scripts/fuzz.sh 3s
set -eu
t=${1:-3s}
cd "$(dirname "$0")/.."
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	grep -qs '^func Fuzz' "$dir"/*_test.go || continue
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | sed 's/^func //'); do
		echo "fuzz $pkg $target ($t)"
		go test -run='^$' -fuzz="^${target}\$" -fuzztime="$t" -fuzzminimizetime=100x "$pkg" >/tmp/ciao-fuzz.$$ 2>&1 || {
			cat /tmp/ciao-fuzz.$$; rm -f /tmp/ciao-fuzz.$$; exit 1; }
	done
done
rm -f /tmp/ciao-fuzz.$$
