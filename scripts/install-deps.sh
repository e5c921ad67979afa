#!/bin/sh
# Installs what the tests need that a fresh machine may lack, from Debian's
# packages: redis-server (with redis-cli), haproxy, and promtool (package
# prometheus) for checking deploy/prometheus/alerts.yaml. Nothing is done
# when they are already there.
#
# Recommends are left out: the only one among these is
# prometheus-node-exporter, one more daemon. The prometheus package itself
# starts a Prometheus server where services may start (systemd, or an
# init.d without a policy-rc.d that forbids it, as Docker images have): it
# listens on :9090; the tests neither use it nor mind it (they listen on
# ports of their own). `systemctl disable --now prometheus` stops it.
set -eu
missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v redis-cli >/dev/null 2>&1 || missing="$missing redis-tools"
command -v haproxy >/dev/null 2>&1 || missing="$missing haproxy"
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
[ -z "$missing" ] && exit 0
echo "installing:$missing (Debian packages)..." >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
command -v redis-server >/dev/null && command -v redis-cli >/dev/null && command -v haproxy >/dev/null \
	&& command -v promtool >/dev/null
