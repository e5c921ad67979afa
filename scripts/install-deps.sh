#!/bin/sh
# Installs what the tests need that a fresh machine may lack: Debian's
# redis-server. Nothing is done when it is already there.
set -eu
if command -v redis-server >/dev/null 2>&1; then
	exit 0
fi
echo "installing redis-server (Debian package)..." >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq redis-server >/dev/null
command -v redis-server >/dev/null
