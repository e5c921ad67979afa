#!/bin/sh
# test-js.sh: the TypeScript SDK's tests and the demo page's browser tests,
# against real signald processes (memory and Redis; each test file starts
# its own redis-server on a free port). Installs what is missing: Node and
# npm, redis-server and Chromium from Debian (apt-get, with sudo when not
# root), the SDK's npm dependencies from package-lock.json (npm ci).
#
#   scripts/test-js.sh            SDK tests and browser tests
#   scripts/test-js.sh sdk        SDK tests only
#   scripts/test-js.sh browser    browser tests only
#
# SIGNALD_TEST_BACKENDS=memory (or redis) narrows the stores; screenshots
# land in clients/js/test-output/.
set -eu
cd "$(dirname "$0")/.."
what=${1:-all}

need=""
command -v node >/dev/null 2>&1 || need="$need nodejs"
command -v npm >/dev/null 2>&1 || need="$need npm"
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
if [ "$what" != sdk ] && [ -z "${CHROMIUM_PATH:-}" ] && ! command -v chromium >/dev/null 2>&1; then
	need="$need chromium"
fi
if [ -n "$need" ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	echo "test-js.sh: installing$need" >&2
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $need >/dev/null
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 18 ]; then
	echo "test-js.sh: Node $node_major is too old; the SDK's tests need Node 18 or later" >&2
	exit 1
fi

cd clients/js
# npm ci when the lock file changed since the last install (or none was made).
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json .installed-lock 2>/dev/null; then
	npm ci --no-audit --no-fund
	cp package-lock.json .installed-lock
fi
npm run --silent build

bin_dir=$(mktemp -d)
trap 'rm -rf "$bin_dir"' EXIT INT TERM
(cd ../.. && go build -o "$bin_dir/signald" ./cmd/signald)
export SIGNALD_BIN="$bin_dir/signald"
export CHROMIUM_PATH="${CHROMIUM_PATH:-$(command -v chromium || true)}"

# One test file at a time: each starts its own signald and redis-server, and
# the browser tests their Chromium; on 2 cores that is plenty. (Node 18,
# Debian 12's, has no --test-concurrency and runs files in parallel.)
conc=""
if node --help | grep -q -- --test-concurrency; then conc="--test-concurrency=1"; fi
status=0
if [ "$what" = all ] || [ "$what" = sdk ]; then
	node --test $conc test/*.test.mjs || status=1
fi
if [ "$what" = all ] || [ "$what" = browser ]; then
	node --test $conc browser-test/*.test.mjs || status=1
fi
exit $status
