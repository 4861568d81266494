#!/usr/bin/env bash
# Stops a control plane started by start.sh from DATA_DIR: kube-apiserver, then etcd, then the
# watchdog; each gets SIGTERM, then SIGKILL after a bound. Only processes whose pid file is in
# DATA_DIR and whose command line names DATA_DIR are signalled (a recycled pid is left alone).
#
#   stop.sh DATA_DIR [--remove]     --remove: also delete DATA_DIR afterwards
set -uo pipefail

dir="${1:?usage: stop.sh DATA_DIR [--remove]}"
remove="${2:-}"
[ -d "$dir" ] || exit 0
dir="$(cd "$dir" && pwd)"
TERM_TIMEOUT="${PAYGO_CP_STOP_TIMEOUT:-10}"  # seconds between SIGTERM and SIGKILL

log() { echo "controlplane/stop: $*" >&2; }

ours() { # pid: alive, not a zombie, and started for this data dir?
  local pid="$1" st
  [ -n "$pid" ] && [ "$pid" != "$$" ] && kill -0 "$pid" 2>/dev/null || return 1
  st="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
  [ -n "$st" ] && [ "$st" != Z ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir"
}

stop_one() { # name
  local f="$dir/$1.pid" pid deadline
  [ -f "$f" ] || return 0
  pid="$(cat "$f" 2>/dev/null || true)"
  if ours "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    deadline=$(( $(date +%s) + TERM_TIMEOUT ))
    while ours "$pid" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
    if ours "$pid"; then
      log "$1 ($pid) did not exit within ${TERM_TIMEOUT}s of SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null
      deadline=$(( $(date +%s) + 5 ))
      while ours "$pid" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
    fi
  fi
  rm -f "$f"
}

# The watchdog's pid file goes first (so it does not race us), the watchdog itself last.
wd="$(cat "$dir/watchdog.pid" 2>/dev/null || true)"
rm -f "$dir/watchdog.pid"
stop_one kube-apiserver
stop_one etcd
if [ -n "$wd" ] && [ "$wd" != "$$" ] && kill -0 "$wd" 2>/dev/null &&
   tr '\0' ' ' <"/proc/$wd/cmdline" 2>/dev/null | grep -q paygo-cp-watchdog; then
  kill -TERM "$wd" 2>/dev/null
fi
rm -f "$dir/env"

if [ "$remove" = "--remove" ]; then
  rm -rf -- "$dir"
fi
exit 0
