#!/bin/sh
# Import boundaries (STYLE.md): libraries never import daemons, the CLI and
# web UI talk to the controller only through its API, and only tests
# import testutil.
set -eu
cd "$(dirname "$0")/.."
fail=0
for pkg in $(go list ./...); do
	case "$pkg" in
	*/ciao-controller*|*/ciao-scheduler*|*/ciao-launcher*|*/_release*|*/testutil*) continue ;;
	esac
	for imp in $(go list -f '{{join .Imports " "}}' "$pkg"); do
		case "$imp" in
		github.com/ciao-project/ciao/ciao-controller*|github.com/ciao-project/ciao/ciao-scheduler*|github.com/ciao-project/ciao/ciao-launcher*)
			echo "import boundary: $pkg imports daemon package $imp"; fail=1 ;;
		github.com/ciao-project/ciao/testutil*)
			echo "import boundary: non-test code in $pkg imports $imp"; fail=1 ;;
		esac
	done
done
for pkg in $(go list ./... | grep -v /testutil); do
	for imp in $(go list -f '{{join .Imports " "}}' "$pkg"); do
		case "$imp" in
		github.com/ciao-project/ciao/testutil*)
			echo "import boundary: non-test code in $pkg imports $imp"; fail=1 ;;
		esac
	done
done
exit $fail
