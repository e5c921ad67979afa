#!/bin/sh
# with-redis.sh CMD...: starts a private redis-server on a free loopback
# port, runs CMD with SIGNALD_TEST_REDIS_ADDR pointing at it, stops it, and
# exits with CMD's status. Nothing is written to disk.
set -eu
dir=$(mktemp -d)
pid=""
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

for attempt in 1 2 3 4 5; do
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
		|| awk 'BEGIN{srand(); print 20000+int(rand()*30000)}')
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
		--logfile "$dir/redis.log" >/dev/null 2>&1 &
	pid=$!
	ok=""
	for i in $(seq 1 100); do
		# Ours only when it answers with our directory: the port was free when
		# picked, but another process may have taken it before our server.
		if redis-cli -p "$port" config get dir 2>/dev/null | grep -qxF "$(cd "$dir" && pwd -P)"; then
			ok=1
			break
		fi
		if ! kill -0 "$pid" 2>/dev/null; then break; fi
		sleep 0.05
	done
	if [ -n "$ok" ]; then break; fi
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	pid=""
done
if [ -z "$pid" ]; then
	echo "with-redis.sh: could not start redis-server" >&2
	cat "$dir/redis.log" >&2 2>/dev/null || true
	exit 1
fi
echo "with-redis.sh: private redis-server on 127.0.0.1:$port" >&2
export SIGNALD_TEST_REDIS_ADDR="127.0.0.1:$port"
set +e
"$@"
status=$?
set -e
exit $status
