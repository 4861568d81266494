#!/usr/bin/env bash
# Installs the tools `make bench` needs when missing: nginx (Debian nginx-light, else nginx).
# The bench runs its own nginx with its own config on 127.0.0.1; the packaged service is disabled.
set -euo pipefail
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "paygo bench: please install nginx (Debian/Ubuntu: apt-get install nginx-light)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
pkg=nginx
if apt-cache show nginx-light >/dev/null 2>&1; then pkg=nginx-light; fi
echo "paygo bench: installing $pkg with apt-get" >&2
apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nginx >/dev/null 2>&1 || true; fi
# Without an init system the package's postinst may have started nginx on :80; stop it.
if [ -f /run/nginx.pid ]; then kill "$(cat /run/nginx.pid)" 2>/dev/null || true; fi
exit 0
