#!/bin/sh
# bench.sh: the standard benchmark run behind `make bench`. It builds signald
# and signald-bench, runs the load tool against a daemon on loopback in
# memory mode and in Redis mode (a private redis-server), across two
# instances, timeouts with three instances sharing the due set after a
# long load, Pub/Sub gaps under load (CLIENT KILL TYPE pubsub with 10,000
# users), the memory bound (heap per pending invitation, heap after a flood;
# in each mode), issue #11's invites shape (three runs each way, medians),
# then the Go microbenchmarks, and writes everything to docs/benchmarks.md
# with the exact commands, the machine and the date. Bounded: about eleven
# minutes.
set -eu
cd "$(dirname "$0")/.."
out=${BENCH_OUT:-docs/benchmarks.md}
dur=${BENCH_DURATION:-10s}
conns=${BENCH_CONNS:-15000}
gapconns=${BENCH_GAP_CONNS:-10000}
preload=${BENCH_PRELOAD:-20s}
tmp=$(mktemp -d)
daemon=""
extras=""
redis=""
cleanup() {
	[ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
	for pid in $extras; do
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	done
	[ -n "$redis" ] && kill "$redis" 2>/dev/null && wait "$redis" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
		awk 'BEGIN{srand(); print 20000+int(rand()*30000)}'
}

echo "building..." >&2
go build -o "$tmp/signald" ./cmd/signald
go build -o "$tmp/signald-bench" ./cmd/signald-bench

port=$(freeport)
url="ws://127.0.0.1:$port/v1/ws"

# start_daemon ARGS...: a fresh signald on $port; waits until /readyz is 200.
# The load runs far past the per-connection rate limit and the per-user
# invite budget (20 invitees/s), so both are lifted; the other quotas (100
# active per inviter, 100 pending per invitee) stay at their defaults.
start_daemon() {
	SIGNALD_ADDR="127.0.0.1:$port" "$tmp/signald" serve --dev --log-level warn \
		--rate-limit 1000000 --rate-burst 1000000 --invite-rate 1000000 --invite-burst 1000000 "$@" 2>>"$tmp/daemon.log" &
	daemon=$!
	for _ in $(seq 1 100); do
		curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "signald did not become ready" >&2
	cat "$tmp/daemon.log" >&2
	exit 1
}
stop_daemon() {
	kill "$daemon"
	wait "$daemon" 2>/dev/null || true
	daemon=""
}
# start_extra PORT ARGS...: one more signald, on PORT, beside $daemon (another
# instance of the same deployment); waits until its /readyz is 200.
start_extra() {
	xport=$1
	shift
	SIGNALD_ADDR="127.0.0.1:$xport" "$tmp/signald" serve --dev --log-level warn \
		--rate-limit 1000000 --rate-burst 1000000 --invite-rate 1000000 --invite-burst 1000000 "$@" 2>>"$tmp/daemon.log" &
	extras="$extras $!"
	for _ in $(seq 1 100); do
		curl -fs "http://127.0.0.1:$xport/readyz" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "signald on port $xport did not become ready" >&2
	cat "$tmp/daemon.log" >&2
	exit 1
}
stop_extras() {
	for pid in $extras; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	extras=""
}

# run NAME ARGS...: one signald-bench run, its report kept for the document.
run() {
	name=$1
	shift
	echo "  $name: signald-bench $*" >&2
	echo "signald-bench -url ws://127.0.0.1:PORT/v1/ws $*" >"$tmp/$name.cmd"
	"$tmp/signald-bench" -url "$url" -quiet -json "$tmp/$name.json" "$@" >"$tmp/$name.txt" 2>&1 ||
		echo "(signald-bench exited with status $?)" >>"$tmp/$name.txt"
}

# field NAME LABEL: the value on the first report line starting with LABEL.
field() {
	awk -v l="$2" 'index($0, "  " l) == 1 { n = split($0, a, /  +/); print a[n]; exit }' "$tmp/$1.txt" | sed 's/ *$//'
}
# lat NAME LABEL COLUMN: a latency column (3=p50 4=p90 5=p99 6=max) of the row starting with LABEL.
lat() {
	awk -v l="$2" -v c="$3" 'index($0, "  " l) == 1 { n = split($0, a, /  +/); print a[n - 6 + c - 1]; exit }' "$tmp/$1.txt"
}
setups() { field "$1" "call setups per second" | awk '{print int($1)}'; }
# median: the middle of the numbers on stdin (the lower middle of an even
# count; "—" for none).
median() { awk 'NF' | sort -g | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]; else print "—"}'; }
# med LABEL NAME...: the median of a report figure over runs, without its unit.
med() {
	l=$1
	shift
	for n in "$@"; do field "$n" "$l" | awk '{print $1}'; done | median
}
# medlat LABEL COLUMN NAME...: the median of a latency column over runs.
medlat() {
	l=$1
	c=$2
	shift 2
	for n in "$@"; do lat "$n" "$l" "$c"; done | median
}
# flush_redis: empties the private Redis (when there is one) between runs
# that leave invitations pending, so that their timeouts do not fire during
# the next run.
flush_redis() { [ -z "$redis" ] || redis-cli -p "$rport" flushall >/dev/null; }

scenarios() { # MODE EXTRA...: the standard scenarios against one store
	mode=$1
	shift
	start_daemon "$@"
	run "$mode-calls" -scenario calls -duration "$dur" -inflight 8 $benchredis
	half=$(($(setups "$mode-calls") / 2))
	[ "$half" -gt 0 ] || half=1000
	run "$mode-half" -scenario calls -duration "$dur" -inflight 8 -rate "$half" $benchredis
	run "$mode-mix" -scenario calls -duration "$dur" -inflight 8 -reject-pct 10 -cancel-pct 10 -timeout-pct 5 $benchredis
	run "$mode-group" -scenario group -group-size 200 -rounds 20 $benchredis
	stop_daemon
	# Issue #11's shape before the idle and memory scenarios: right after the
	# memory scenario (signald grown to about 600 MB, then stopped) the same
	# code delivered 17 % less, each delivery taking more CPU time.
	invites "$@"
	start_daemon "$@"
	run "$mode-idle" -scenario idle -conns "$conns" -hold 5s
	stop_daemon
	# The memory bound: a fresh daemon with its pprof server (the bench forces
	# garbage collections through it before each heap reading) and a short
	# retention, so that the flood's invitations are dropped 2 s after they
	# have timed out.
	pport=$(freeport)
	start_daemon --pprof-addr "127.0.0.1:$pport" --retention 2s "$@"
	run "$mode-memory" -scenario memory -pprof "http://127.0.0.1:$pport" -flood-wait 60s $benchredis $benchprefix
	sed -i "s|http://127.0.0.1:$pport|http://127.0.0.1:PPROF|g" "$tmp/$mode-memory.cmd"
	stop_daemon
}

# invites MODE-ARGS...: issue #11's shape (-scenario invites: 2,000 idle
# callees, 8 callers with one invite in flight each, 3 s of warm-up, then
# $dur), three runs each on a fresh daemon (and an emptied Redis). First as
# the issue measured it: nobody answers or cancels, so the invitations stay
# pending for their 60 s and the quotas they would exceed are raised; then
# the same paced at half the median deliveries/s (the p99 target); then with
# each delivered invitation cancelled by its caller (the tool's default,
# which holds under signald's default quotas).
invites() {
	quotas="--max-active-invitations 10000000 --max-pending-invitations 10000000"
	for i in 1 2 3; do
		flush_redis
		start_daemon "$@" $quotas
		run "$mode-invites-$i" -scenario invites -duration "$dur" -cancel-delivered=false $benchredis
		stop_daemon
	done
	half=$(med 'deliveries (onReceiveNewInvitation) per second' "$mode-invites-1" "$mode-invites-2" "$mode-invites-3" |
		awk '$1 + 0 > 0 {printf "%d", $1 / 2}')
	[ -n "$half" ] || half=1000
	for i in 1 2 3; do
		flush_redis
		start_daemon "$@" $quotas
		run "$mode-invites-half-$i" -scenario invites -duration "$dur" -cancel-delivered=false -rate "$half" $benchredis
		stop_daemon
	done
	for i in 1 2 3; do
		flush_redis
		start_daemon "$@"
		run "$mode-invites-cancel-$i" -scenario invites -duration "$dur" $benchredis
		stop_daemon
	done
	flush_redis
}

# inv KIND LABEL MODE, invlat KIND LABEL COLUMN MODE: the median over a
# mode's three invites runs of KIND ("", "-half", "-cancel").
inv() { med "$2" "$3-invites$1-1" "$3-invites$1-2" "$3-invites$1-3"; }
invlat() { medlat "$2" "$3" "$4-invites$1-1" "$4-invites$1-2" "$4-invites$1-3"; }
# invcpu KIND MODE: CPU seconds per 1,000 deliveries, medians: the server's
# in memory mode; server + Redis (server / Redis) in Redis mode.
invcpu() {
	if [ "$2" = memory ]; then
		echo "$(inv "$1" 'server CPU seconds per 1,000 deliveries' "$2") s (server)"
	else
		echo "$(inv "$1" 'server + Redis CPU seconds per 1,000 deliveries' "$2") s ($(inv "$1" 'server CPU seconds per 1,000 deliveries' "$2") / $(inv "$1" 'Redis CPU seconds per 1,000 deliveries' "$2"))"
	fi
}
# invload KIND MODE: machine busy % and 1-minute load average at the
# window's start, medians.
invload() {
	echo "$(inv "$1" 'machine CPU busy' "$2") % / $(inv "$1" "load average (1 min) at the window's start" "$2")"
}

echo "memory mode..." >&2
benchredis=""
benchprefix=""
scenarios memory

echo "redis mode..." >&2
rport=$(freeport)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" --logfile "$tmp/redis.log" &
redis=$!
for _ in $(seq 1 100); do redis-cli -p "$rport" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
benchredis="-redis 127.0.0.1:$rport"
benchprefix="-redis-prefix bench:"
scenarios redis --redis-url "redis://127.0.0.1:$rport" --redis-prefix bench:

echo "two instances on one Redis: callers on one, callees on the other..." >&2
port2=$(freeport)
start_daemon --redis-url "redis://127.0.0.1:$rport" --redis-prefix bench2: --node-id a
start_extra "$port2" --redis-url "redis://127.0.0.1:$rport" --redis-prefix bench2: --node-id b
run redis-cross -scenario calls -duration "$dur" -inflight 8 -other-url "ws://127.0.0.1:$port2/v1/ws" $benchredis
sed -i "s|ws://127.0.0.1:$port2/v1/ws|ws://127.0.0.1:PORT2/v1/ws|g" "$tmp/redis-cross.cmd"
stop_extras
stop_daemon

# Timeouts fire at their deadline whatever load came before and however many
# instances share the due set: three instances (a, b, c) on one Redis, the
# calls load for $preload (callers on a, callees on b; c only polls the due
# set), then the mix with timeouts at full rate.
echo "three instances on one Redis: timeout lateness after $preload of load..." >&2
port3=$(freeport)
start_daemon --redis-url "redis://127.0.0.1:$rport" --redis-prefix bench3: --node-id a
start_extra "$port2" --redis-url "redis://127.0.0.1:$rport" --redis-prefix bench3: --node-id b
start_extra "$port3" --redis-url "redis://127.0.0.1:$rport" --redis-prefix bench3: --node-id c
run redis-3i-load -scenario calls -duration "$preload" -inflight 8 -other-url "ws://127.0.0.1:$port2/v1/ws" $benchredis
run redis-3i-mix -scenario calls -duration "$dur" -inflight 8 -reject-pct 10 -cancel-pct 10 -timeout-pct 5 \
	-other-url "ws://127.0.0.1:$port2/v1/ws" $benchredis
sed -i "s|ws://127.0.0.1:$port2/v1/ws|ws://127.0.0.1:PORT2/v1/ws|g" "$tmp/redis-3i-load.cmd" "$tmp/redis-3i-mix.cmd"
stop_extras
stop_daemon

# A Pub/Sub gap must cost no reconnect and no event: $gapconns users on one
# instance (named, so that CLIENT LIST shows signald-gap), the calls load
# among 128 of them, and three times CLIENT KILL TYPE pubsub 3 s apart.
echo "Pub/Sub gaps under load: $gapconns users, CLIENT KILL TYPE pubsub x3..." >&2
start_daemon --redis-url "redis://127.0.0.1:$rport" --redis-prefix benchgap: --node-id gap
run redis-gap -scenario gap -conns "$gapconns" -rate 500 -kills 3 -kill-interval 3s $benchredis
stop_daemon

echo "Go microbenchmarks..." >&2
SIGNALD_TEST_REDIS_ADDR="127.0.0.1:$rport" go test -run '^$' -bench . -benchmem -benchtime 1s -count 3 \
	./internal/protocol ./internal/invite ./internal/redisstore ./internal/redisbus ./internal/app >"$tmp/micro.txt" 2>&1 ||
	echo "(go test exited with status $?)" >>"$tmp/micro.txt"

# The document.
{
	echo "# Benchmarks"
	echo
	echo "Written by \`make bench\` (scripts/bench.sh) on $(date -u '+%Y-%m-%d %H:%M UTC'). Do not edit: run it again."
	echo "What the figures mean, the targets and what limits them: [performance.md](performance.md)."
	echo
	echo "## Machine"
	echo
	echo "- CPU: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
	echo "- memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); open-file limit $(ulimit -n)"
	echo "- $(go version); $(redis-server --version | cut -d' ' -f1-3); Linux $(uname -r)"
	echo "- signald-bench and signald (and redis-server) on the same machine, over loopback: they share the cores."
	echo
	echo "## Summary"
	echo
	echo "| figure | memory mode | Redis mode |"
	echo "|---|---|---|"
	echo "| call setups/s, 8 in flight (invite → delivery → accept → delivery) | $(field memory-calls 'call setups per second') | $(field redis-calls 'call setups per second') |"
	echo "| deliveries/s in that run | $(field memory-calls 'deliveries (onReceiveNewInvitation) per second') | $(field redis-calls 'deliveries (onReceiveNewInvitation) per second') |"
	echo "| invite → delivery p50 / p99, flat out (ms) | $(lat memory-calls 'invite → onReceiveNewInvitation' 3) / $(lat memory-calls 'invite → onReceiveNewInvitation' 5) | $(lat redis-calls 'invite → onReceiveNewInvitation' 3) / $(lat redis-calls 'invite → onReceiveNewInvitation' 5) |"
	echo "| invite → delivery p50 / p99 at half that rate (ms) | $(lat memory-half 'invite → onReceiveNewInvitation' 3) / $(lat memory-half 'invite → onReceiveNewInvitation' 5) | $(lat redis-half 'invite → onReceiveNewInvitation' 3) / $(lat redis-half 'invite → onReceiveNewInvitation' 5) |"
	echo "| whole setup p50 / p99, flat out (ms) | $(lat memory-calls 'setup: invite → onInviteeAccepted' 3) / $(lat memory-calls 'setup: invite → onInviteeAccepted' 5) | $(lat redis-calls 'setup: invite → onInviteeAccepted' 3) / $(lat redis-calls 'setup: invite → onInviteeAccepted' 5) |"
	echo "| server CPU per setup | $(field memory-calls 'CPU per setup') | $(field redis-calls 'CPU per setup') |"
	echo "| load tool CPU relative to the server's | $(field memory-calls 'CPU relative to the server') | $(field redis-calls 'CPU relative to the server') |"
	echo "| Redis script calls per setup | — | $(field redis-calls 'script calls per setup, background subtracted') |"
	echo "| group of 200 online invitees: all delivered p50 / p99 (ms) | $(lat memory-group 'round: inviteInGroup → all K delivered' 3) / $(lat memory-group 'round: inviteInGroup → all K delivered' 5) | $(lat redis-group 'round: inviteInGroup → all K delivered' 3) / $(lat redis-group 'round: inviteInGroup → all K delivered' 5) |"
	echo "| idle connections held | $(field memory-idle 'connections established') | $(field redis-idle 'connections established') |"
	echo "| server RSS per idle logged-in connection | $(field memory-idle 'RSS per idle connection') | $(field redis-idle 'RSS per idle connection') |"
	echo "| invites, issue #11's shape (2,000 idle callees, 8 callers × 1 in flight, 3 s warm-up + $dur, invitations left pending): deliveries/s, median of 3 | $(inv '' 'deliveries (onReceiveNewInvitation) per second' memory) /s | $(inv '' 'deliveries (onReceiveNewInvitation) per second' redis) /s |"
	echo "| in those runs: invite → delivery p50 / p99 (ms), medians | $(invlat '' 'invite → onReceiveNewInvitation' 3 memory) / $(invlat '' 'invite → onReceiveNewInvitation' 5 memory) | $(invlat '' 'invite → onReceiveNewInvitation' 3 redis) / $(invlat '' 'invite → onReceiveNewInvitation' 5 redis) |"
	echo "| in those runs: CPU seconds per 1,000 deliveries, server + Redis (server / Redis), medians | $(invcpu '' memory) | $(invcpu '' redis) |"
	echo "| the same shape at half that rate (-rate): invite → delivery p50 / p99 (ms), medians of 3 | $(invlat -half 'invite → onReceiveNewInvitation' 3 memory) / $(invlat -half 'invite → onReceiveNewInvitation' 5 memory) at $(field memory-invites-half-1 'target invites per second') | $(invlat -half 'invite → onReceiveNewInvitation' 3 redis) / $(invlat -half 'invite → onReceiveNewInvitation' 5 redis) at $(field redis-invites-half-1 'target invites per second') |"
	echo "| the same shape, each delivered invitation cancelled by its caller (signald's default quotas): deliveries/s; CPU s per 1,000 deliveries, medians of 3 | $(inv -cancel 'deliveries (onReceiveNewInvitation) per second' memory) /s; $(invcpu -cancel memory) | $(inv -cancel 'deliveries (onReceiveNewInvitation) per second' redis) /s; $(invcpu -cancel redis) |"
	echo "| machine during the invites runs (left pending / half rate / cancelled): CPU busy % / load average at the start, medians | $(invload '' memory); $(invload -half memory); $(invload -cancel memory) | $(invload '' redis); $(invload -half redis); $(invload -cancel redis) |"
	echo "| timeout lateness p50 / p99 (deadline → onInvitationTimeout), mix at full rate (ms) | $(lat memory-mix 'timeout lateness: deadline → onInvitationTimeout' 3) / $(lat memory-mix 'timeout lateness: deadline → onInvitationTimeout' 5) | $(lat redis-mix 'timeout lateness: deadline → onInvitationTimeout' 3) / $(lat redis-mix 'timeout lateness: deadline → onInvitationTimeout' 5) |"
	echo "| the same with three instances sharing the due set, after $preload of calls load (ms) | — | $(lat redis-3i-mix 'timeout lateness: deadline → onInvitationTimeout' 3) / $(lat redis-3i-mix 'timeout lateness: deadline → onInvitationTimeout' 5) |"
	echo "| Pub/Sub gaps ($(field redis-gap 'Pub/Sub gaps made') × CLIENT KILL TYPE pubsub, $(field redis-gap 'users logged in') users, calls load): reconnects (connections closed by the server) / events lost | — | $(field redis-gap 'connections closed by the server') / $(field redis-gap 'events lost') |"
	echo "| catch-up after a Pub/Sub gap, mean / max | — | $(field redis-gap 'catch-up after a Pub/Sub gap: mean') / $(field redis-gap 'catch-up after a Pub/Sub gap: max') |"
	echo "| heap per pending invitation (bytes; signald's live heap after GC, $(field memory-memory '32 B data: pending invitations made') invitations with 32 B / 1 KiB of data) | $(field memory-memory '32 B data: heap per pending invitation (live)') / $(field memory-memory '1024 B data: heap per pending invitation (live)') | $(field redis-memory '32 B data: heap per pending invitation (live)') / $(field redis-memory '1024 B data: heap per pending invitation (live)') |"
	echo "| Redis used_memory per pending invitation (bytes, 32 B / 1 KiB of data) | — | $(field redis-memory '32 B data: Redis used_memory per pending invitation') / $(field redis-memory '1024 B data: Redis used_memory per pending invitation') |"
	echo "| heap after a flood of $(field memory-memory 'flood invitations made') 12 KiB invitations has ended (after minus before, live; per invitation) | $(field memory-memory 'heap after the flood minus before (live)'); $(field memory-memory 'heap after the flood minus before, per flood invitation (live)') | $(field redis-memory 'heap after the flood minus before (live)'); $(field redis-memory 'heap after the flood minus before, per flood invitation (live)') |"
	echo "| of which the flood's kept events (memory: frames, estimated; Redis: MEMORY USAGE of the users' streams, and used_memory after minus before) | $(field memory-memory 'kept frames of the flood') | $(field redis-memory "Redis: the flood's kept events"); used_memory $(field redis-memory 'Redis used_memory after the flood minus before') |"
	echo "| heap left per pending invitation once cancelled and dropped (live; the kept frames it left, estimated: the invitee's ring and cancel, the inviter's cancel) | $(field memory-memory 'the same per invitation (live)') (kept $(field memory-memory 'kept frames they left')) | $(field redis-memory 'the same per invitation (live)'); Redis used_memory $(field redis-memory 'Redis used_memory after minus before them, per invitation') |"
	echo
	echo "Across instances (Redis mode, two instances, every caller on one and every callee on the other):"
	echo "$(field redis-cross 'call setups per second') call setups; invite → delivery p50 / p99 $(lat redis-cross 'invite → onReceiveNewInvitation' 3) / $(lat redis-cross 'invite → onReceiveNewInvitation' 5) ms;"
	echo "whole setup p50 / p99 $(lat redis-cross 'setup: invite → onInviteeAccepted' 3) / $(lat redis-cross 'setup: invite → onInviteeAccepted' 5) ms (same machine, same load tool; compare with the Redis-mode column above)."
	echo
	echo "Timeouts with three instances (a, b, c) on one Redis: callers on a, callees on b, c serves no connection but claims"
	echo "deadlines like the others; the mix ran after $preload of plain calls load ($(field redis-3i-load 'call setups per second') call setups). Pub/Sub gaps:"
	echo "$(field redis-gap 'users logged in') users on one instance, $(field redis-gap 'users in the call load') of them in a calls load at $(field redis-gap 'target invitations per second'); catch-ups by result: caught up"
	echo "$(field redis-gap 'catch-ups by result: caught_up'), resume (1012) $(field redis-gap 'catch-ups by result: resume'), failed $(field redis-gap 'catch-ups by result: failed'); frames of no call under way (events a connection was not owed): $(field redis-gap 'frames of no current setup')."
	echo
	echo "Memory (signald-bench -scenario memory, a fresh daemon with --pprof-addr and --retention 2s in each mode): every heap figure is"
	echo "signald's live Go heap (go_memstats_heap_alloc_bytes) right after two garbage collections forced through pprof. A pending invitation"
	echo "includes its invitee's kept ring event ($(field memory-memory '32 B data: of which the invitee') of the memory-mode figure with 32 B of data). After the flood"
	echo "every invitation has timed out and been dropped; what stays is its kept events (each invitee's ring with the 12 KiB and its timeout,"
	echo "each inviter's timeouts), kept for 24 h and bounded per user and, in memory mode, in all (SIGNALD_EVENTS_MAX_BYTES)."
	echo "Machine load during the memory runs: $(field memory-memory 'load average (1 min) at the start') / $(field redis-memory 'load average (1 min) at the start') (1-minute load average at the start, memory / Redis mode, on $(nproc) cores)."
	echo
	echo "Invites (signald-bench -scenario invites, issue #11's load shape): each run on a fresh daemon (and an emptied Redis) with the"
	echo "per-connection rate limit and the invite budget lifted; the runs that leave their invitations pending (as the issue's did) also with"
	echo "--max-active-invitations 10000000 --max-pending-invitations 10000000. The half-rate runs pace the callers with -rate at half the median"
	echo "deliveries/s of the first three. CPU per 1,000 deliveries is process_cpu_seconds_total from signald's /metrics and, in Redis mode,"
	echo "used_cpu_sys + used_cpu_user from Redis's INFO cpu, each the difference from the warm-up's end to the last reply. Cancelling costs a"
	echo "transition, its reply and an event per delivery, and the next invite on a connection waits behind it: compare the cancelled runs"
	echo "with each other, not with the issue's figures. The machine is shared by all three processes: read the figures as ratios of runs made back to back."
	echo
	for mode in memory redis; do
		echo "## ${mode} mode"
		echo
		for s in calls half mix group idle memory invites-1 invites-2 invites-3 invites-half-1 invites-half-2 invites-half-3 \
			invites-cancel-1 invites-cancel-2 invites-cancel-3 cross 3i-load 3i-mix gap; do
			n="$mode-$s"
			[ -f "$tmp/$n.txt" ] || continue
			echo "### $n"
			echo
			echo '```'
			echo "\$ $(cat "$tmp/$n.cmd")"
			cat "$tmp/$n.txt"
			echo '```'
			echo
		done
	done
	echo "## Go microbenchmarks"
	echo
	echo '```'
	echo "\$ go test -run '^\$' -bench . -benchmem -benchtime 1s -count 3 ./internal/protocol ./internal/invite ./internal/redisstore ./internal/redisbus ./internal/app"
	grep -E '^(Benchmark|ok|FAIL|---)' "$tmp/micro.txt" || cat "$tmp/micro.txt"
	echo '```'
} >"$out"
echo "wrote $out" >&2
