#!/bin/sh
# check-systemd-unit.sh BINARY - runs systemd-analyze verify on contrib/catalogd.service with
# ExecStart pointed at BINARY (verify requires the executable to exist). Skips without
# systemd-analyze.
set -eu
command -v systemd-analyze >/dev/null 2>&1 || { echo "systemd-analyze not found: skipped"; exit 0; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|/usr/local/bin/catalogd|$(realpath "$1")|" contrib/catalogd.service > "$dir/catalogd.service"
systemd-analyze verify "$dir/catalogd.service"
echo "systemd unit: ok"
