#!/usr/bin/env bash
# Installs what `make bench` needs when it is missing: nginx (Debian's package). The bench starts
# its own nginx with its own config on 127.0.0.1 (pid and logs in a temp dir), so the packaged
# service is disabled and stopped right after the install.
set -euo pipefail
for p in /usr/sbin/nginx /usr/bin/nginx /usr/local/sbin/nginx /usr/local/bin/nginx; do
  [ -x "$p" ] && exit 0
done
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "paygo bench: please install nginx (Debian/Ubuntu: apt-get install nginx-light or nginx); the bench runs without it but reports nginx as not measured" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
echo "paygo bench: installing nginx with apt-get" >&2
apt-get update -qq >/dev/null
# Debian 12's nginx is the core build (nginx-light is a transitional package there).
pkg=nginx
apt-cache show nginx >/dev/null 2>&1 || pkg=nginx-light
apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
# Do not leave the packaged service running (it would listen on :80).
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nginx >/dev/null 2>&1 || true; fi
if [ -s /run/nginx.pid ]; then kill "$(cat /run/nginx.pid)" 2>/dev/null || true; fi
exit 0
