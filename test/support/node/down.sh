#!/usr/bin/env bash
# Removes everything up.sh started or changed, and leaves the machine as up.sh found it:
# processes (kubelet, kube-proxy, containerd and its shims, every container, controller-
# manager, scheduler, kube-apiserver, etcd), mounts under the data dir (pod volumes, container
# root filesystems, network namespaces), the paygo0 bridge and the pods' veths, the iptables
# chains of kube-proxy/kubelet/CNI (KUBE-*, CNI-*, and the rules that jump to them, IPv4 and
# IPv6), the cgroups under /paygo-node, the sysctls kubelet/kube-proxy/up.sh set, the
# directories containerd/CNI create outside the data dir (/run/containerd, /var/lib/cni, when
# they were not there before), and the data dir itself.
#
#   down.sh [--data-dir DIR] [--keep-dir]     (default DIR /tmp/paygo-node)
#
# Idempotent: running it again, or on a half-started cluster, is fine. Exit code 1 when
# something could not be removed (said on stderr), else 0.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dd=/tmp/paygo-node keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --data-dir) dd="$2"; shift 2 ;;
    --keep-dir) keep=1; shift ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "down.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
log() { echo "node/down: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "error: must run as root"; exit 1; }
rc=0
BRIDGE=paygo0
CGROUP_ROOT=/paygo-node
if [ -d "$dd" ]; then dd="$(cd "$dd" && pwd)"; fi
state="$dd/state"
if [ -f "$state" ]; then
  BRIDGE="$(awk '$1=="bridge"{print $2}' "$state")"; BRIDGE="${BRIDGE:-paygo0}"
  CGROUP_ROOT="$(awk '$1=="cgroup_root"{print $2}' "$state")"; CGROUP_ROOT="${CGROUP_ROOT:-/paygo-node}"
fi
bin="${PAYGO_CACHE_DIR:-$HOME/.cache/paygo}/bin/current"

# --- processes -----------------------------------------------------------------------------------
ours() { # pid: alive, not a zombie, and its command line names the data dir
  local st
  [ -n "${1:-}" ] && [ "$1" != $$ ] && kill -0 "$1" 2>/dev/null || return 1
  st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)"; [ -n "$st" ] && [ "$st" != Z ] || return 1
  tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$dd/"
}
stop_pid() { # pid name [timeout]
  local pid="$1" name="$2" t="${3:-10}" deadline
  ours "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null
  deadline=$(( $(date +%s) + t ))
  while ours "$pid" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
  if ours "$pid"; then log "$name ($pid) ignored SIGTERM for ${t}s; SIGKILL"; kill -KILL "$pid" 2>/dev/null; sleep 0.2; fi
}
stop_named() { local p; p="$(cat "$dd/run/$1.pid" 2>/dev/null)"; stop_pid "$p" "$1" "${2:-10}"; rm -f "$dd/run/$1.pid"; }

if [ -d "$dd" ]; then
  # kubelet first, so that it does not restart what is stopped next.
  stop_named kubelet
  stop_named kube-proxy
  stop_named kube-controller-manager
  stop_named kube-scheduler

  sock="$dd/containerd/containerd.sock"
  if ours "$(cat "$dd/run/containerd.pid" 2>/dev/null)" && [ -x "$bin/ctr" ] && [ -S "$sock" ]; then
    c() { timeout 20 "$bin/ctr" --address "$sock" --namespace k8s.io "$@"; }
    for id in $(c tasks ls -q 2>/dev/null); do c tasks kill -s SIGKILL "$id" >/dev/null 2>&1; done
    sleep 0.5
    for id in $(c tasks ls -q 2>/dev/null); do c tasks delete -f "$id" >/dev/null 2>&1; done
    for id in $(c containers ls -q 2>/dev/null); do c containers delete "$id" >/dev/null 2>&1; done
  fi
  stop_named containerd 15
fi

# Every process left in our cgroups (containers whose shim is gone).
cg_dirs() { for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do [ -d "$h${CGROUP_ROOT#/}" ] && echo "$h${CGROUP_ROOT#/}"; done; }
for _ in 1 2 3 4 5; do
  pids="$(for d in $(cg_dirs); do find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null; done | sort -un)"
  [ -n "$pids" ] || break
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null
  sleep 0.3
done
# containerd shims of this data dir that outlived containerd (their -address names DIR).
if [ -d "$dd" ]; then
  for d in /proc/[0-9]*; do
    p="${d#/proc/}"
    if ours "$p" && tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -q '^[^ ]*containerd-shim'; then
      stop_pid "$p" "containerd-shim" 5
    fi
  done
fi

# --- mounts (deepest first) ----------------------------------------------------------------------------
if [ -d "$dd" ]; then
  for _ in 1 2 3; do
    mnts="$(awk -v d="$dd/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-)"
    [ -n "$mnts" ] || break
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done <<<"$mnts"
  done
  if awk -v d="$dd/" 'index($5, d) == 1 { f=1 } END { exit !f }' /proc/self/mountinfo; then
    log "error: mounts left under $dd:"; awk -v d="$dd/" 'index($5, d) == 1 { print "  " $5 }' /proc/self/mountinfo >&2; rc=1
  fi
fi

# --- network -------------------------------------------------------------------------------------------
if ip link show "$BRIDGE" >/dev/null 2>&1; then
  for v in $(ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do ip link del "$v" 2>/dev/null; done
  ip link del "$BRIDGE" 2>/dev/null || { log "error: could not delete bridge $BRIDGE"; rc=1; }
fi

# kube-proxy's own cleanup, then every KUBE-*/CNI-* chain and the rules that jump to them.
if [ -x "$bin/kube-proxy" ]; then "$bin/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
clean_iptables() { # iptables | ip6tables
  command -v "$1-save" >/dev/null 2>&1 || return 0
  local script
  script="$("$1-save" 2>/dev/null | awk '
    /^\*/ { n++; tab[n]=$0; next }
    /^:/  { c=substr($1,2); if (c ~ /^(KUBE-|CNI-)/) own[n]=own[n] " " c; next }
    /^-A / { if ($2 !~ /^(KUBE-|CNI-)/ && $0 ~ / -[jg] (KUBE-|CNI-)/) del[n]=del[n] "-D" substr($0,3) "\n"; next }
    END { for (i=1;i<=n;i++) { if (del[i]=="" && own[i]=="") continue; print tab[i]; printf "%s", del[i];
            k=split(own[i],a," "); for (j=1;j<=k;j++) print "-F " a[j]; for (j=1;j<=k;j++) print "-X " a[j]; print "COMMIT" } }')"
  [ -n "$script" ] || return 0
  printf '%s\n' "$script" | "$1-restore" --noflush || { log "error: $1 cleanup failed"; rc=1; }
}
clean_iptables iptables
clean_iptables ip6tables

# The nf_tables tables that iptables-nft created for kube-proxy/kubelet, now without rules.
if [ -f "$state" ] && command -v nft >/dev/null 2>&1; then
  while read -r fam name; do
    grep -qxF "nft_table $fam $name" "$state" && continue
    if [ -z "$(nft -a list table "$fam" "$name" 2>/dev/null | grep '# handle' | grep -vE '^[[:space:]]*(table|chain) ')" ]; then
      nft delete table "$fam" "$name" 2>/dev/null || { log "error: could not delete nft table $fam $name"; rc=1; }
    else
      log "warning: nft table $fam $name (not there before up.sh) still has rules; left in place"
    fi
  done < <(nft list tables 2>/dev/null | awk '$1=="table" {print $2, $3}')
fi

# --- cgroups ----------------------------------------------------------------------------------------------
for d in $(cg_dirs); do
  find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  [ -d "$d" ] && { log "error: cgroup $d is still there"; rc=1; }
done

# --- sysctls and directories outside the data dir -----------------------------------------------------------
if [ -f "$state" ]; then
  while read -r kind k v; do
    [ "$kind" = sysctl ] || continue
    [ "$(sysctl -n "$k" 2>/dev/null)" = "$v" ] || sysctl -qw "$k=$v" 2>/dev/null || { log "error: could not restore $k=$v"; rc=1; }
  done <"$state"
  for d in /run/containerd /var/lib/cni /run/netns /etc/cni /opt/containerd /var/lib/containerd /run/nri /var/lib/kubelet /run/mount; do
    if [ -e "$d" ] && ! grep -qxF "existed $d" "$state"; then
      if awk -v d="$d/" 'index($5, d) == 1 { f=1 } END { exit !f }' /proc/self/mountinfo; then
        log "error: $d has mounts; left in place"; rc=1
      else
        rm -rf --one-file-system -- "$d"
      fi
    fi
  done
fi

# --- control plane, then the data dir -------------------------------------------------------------------------
if [ -d "$dd/cp" ]; then "$here/../controlplane/stop.sh" "$dd/cp" >/dev/null 2>&1 || true; fi
if [ -d "$dd" ] && ! awk -v d="$dd/" 'index($5, d) == 1 { f=1 } END { exit !f }' /proc/self/mountinfo; then
  if [ "$keep" = 1 ]; then
    find "$dd" -mindepth 1 -maxdepth 1 -exec rm -rf --one-file-system -- {} +
  else
    rm -rf --one-file-system -- "$dd"
  fi
fi
[ $rc -eq 0 ] && log "done: nothing of $dd is left" || log "finished with errors (see above)"
exit $rc
