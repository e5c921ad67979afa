#!/bin/sh
# Installs what the tests need that a fresh machine may lack, from Debian's
# packages: redis-server (with redis-cli) and haproxy. Nothing is done when
# they are already there.
set -eu
missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v redis-cli >/dev/null 2>&1 || missing="$missing redis-tools"
command -v haproxy >/dev/null 2>&1 || missing="$missing haproxy"
[ -z "$missing" ] && exit 0
echo "installing:$missing (Debian packages)..." >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq $missing >/dev/null
command -v redis-server >/dev/null && command -v redis-cli >/dev/null && command -v haproxy >/dev/null
