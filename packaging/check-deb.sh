#!/usr/bin/env bash
# Builds the package from the debug binaries (`packaging/deb.sh debug`), installs it with
# dpkg -i and checks what an admin relies on, then purges it again (CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$(bash packaging/deb.sh debug | tail -1)
had_user=$(getent passwd logrelay >/dev/null && echo yes || echo no)
cleanup() {
  dpkg --purge logrelay >/dev/null 2>&1 || true
  if [ "$had_user" = no ]; then userdel logrelay 2>/dev/null || true; fi
  rmdir /var/lib/logrelay 2>/dev/null || true
}
trap cleanup EXIT
dpkg -i "$deb" >/dev/null
logrelayd --version
man -w logq logrelayd logrelayd.toml
test -f /usr/lib/systemd/system/logrelayd.service
test -f /usr/lib/systemd/system/logrelayd.socket
test -f /usr/share/bash-completion/completions/logq
getent passwd logrelay
test "$(stat -c %U /var/lib/logrelay)" = logrelay
logrelayd check-config /etc/logrelay/logrelayd.toml
systemd-analyze verify /usr/lib/systemd/system/logrelayd.service /usr/lib/systemd/system/logrelayd.socket
echo "package check: ok"
