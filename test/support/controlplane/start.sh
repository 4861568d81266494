#!/usr/bin/env bash
# Starts a real control plane (etcd + kube-apiserver, no controller-manager, no scheduler, no
# nodes) listening on 127.0.0.1 only, and returns once /readyz is ok. The one implementation of
# the startup logic: controlplane.ts and dev-cluster.sh both run this script.
#
#   start.sh --data-dir DIR [--bin-dir DIR] [--owner-pid PID]
#
#   --data-dir   where the PKI, etcd data, logs, pid files and the kubeconfig go (created if
#                missing; reused if present: the same CA and etcd data survive a restart).
#   --bin-dir    a directory holding kube-apiserver, etcd, kubectl (default: run install.sh).
#   --owner-pid  stop the control plane when that process is gone (a watchdog that polls
#                every 2 s), so a crashed test run leaves nothing behind.
#   --apiserver-arg ARG  one more kube-apiserver flag, after the defaults (so it wins over
#                them); repeatable. ../node/up.sh uses it to serve nodes and pods.
#
# On success prints KEY=VALUE lines on stdout (also written to DIR/env):
#   PAYGO_CP_KUBECONFIG PAYGO_CP_SERVER PAYGO_CP_DATA_DIR PAYGO_CP_BIN_DIR PAYGO_CP_CA_CERT
#   PAYGO_CP_ETCD_PID PAYGO_CP_APISERVER_PID
# Progress and, on failure, the tail of the failing process's log go to stderr; exit code 1.
# Stop with stop.sh DIR.
#
# What is not there, since no kube-controller-manager runs: ServiceAccounts (other than
# default/default, which this script creates) and their token Secrets are not created for
# you; namespaces are created but a deleted namespace stays Terminating; no garbage
# collection, no Deployments→Pods; Pods stay Pending. Admission (incl. Mutating/Validating
# webhooks), RBAC, TokenRequest and TokenReview are real.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
data_dir="" bin_dir="" owner_pid="" apiserver_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data-dir) data_dir="$2"; shift 2 ;;
    --bin-dir) bin_dir="$2"; shift 2 ;;
    --owner-pid) owner_pid="$2"; shift 2 ;;
    --apiserver-arg) apiserver_args+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,27p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "start.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$data_dir" ] || { echo "start.sh: --data-dir is required" >&2; exit 2; }

log() { echo "controlplane/start: $*" >&2; }
mkdir -p "$data_dir"
data_dir="$(cd "$data_dir" && pwd)"
chmod 0700 "$data_dir"
pki="$data_dir/pki"
kubeconfig="$data_dir/kubeconfig"

ETCD_READY_TIMEOUT="${PAYGO_CP_ETCD_TIMEOUT:-20}"       # seconds for etcd to listen
APISERVER_READY_TIMEOUT="${PAYGO_CP_READY_TIMEOUT:-60}" # seconds for kube-apiserver /readyz

if [ -z "$bin_dir" ]; then bin_dir="$("$here/install.sh")"; fi
for b in etcd kube-apiserver kubectl; do
  [ -x "$bin_dir/$b" ] || { log "error: $bin_dir/$b is missing (run install.sh)"; exit 1; }
done

# Running (a zombie child that already exited does not count).
alive() {
  [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
  local st; st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
pidof_file() { cat "$data_dir/$1.pid" 2>/dev/null || true; }

emit_env() {
  {
    echo "PAYGO_CP_KUBECONFIG=$kubeconfig"
    echo "PAYGO_CP_SERVER=https://127.0.0.1:$api_port"
    echo "PAYGO_CP_DATA_DIR=$data_dir"
    echo "PAYGO_CP_BIN_DIR=$bin_dir"
    echo "PAYGO_CP_CA_CERT=$pki/ca.crt"
    echo "PAYGO_CP_ETCD_PID=$(pidof_file etcd)"
    echo "PAYGO_CP_APISERVER_PID=$(pidof_file kube-apiserver)"
  } >"$data_dir/env.tmp"
  mv -f "$data_dir/env.tmp" "$data_dir/env"
  cat "$data_dir/env"
}

# Already running from this data dir? Then report it instead of starting a second one.
if alive "$(pidof_file kube-apiserver)" && alive "$(pidof_file etcd)" && [ -f "$data_dir/ports" ]; then
  # shellcheck disable=SC1091
  . "$data_dir/ports"
  if "$bin_dir/kubectl" --kubeconfig "$kubeconfig" --request-timeout=5s get --raw /readyz >/dev/null 2>&1; then
    log "already running from $data_dir"
    emit_env
    exit 0
  fi
fi
"$here/stop.sh" "$data_dir" >/dev/null 2>&1 || true  # leftovers of a dead run

# --- PKI (kept across restarts of the same data dir) -----------------------------------------
gen_pki() {
  mkdir -p "$pki"
  (
    cd "$pki"
    umask 077
    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
    key ca.key
    openssl req -x509 -new -key ca.key -days 3650 -subj "/CN=paygo-test-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out ca.crt 2>/dev/null
    sign() { # name subject extfile-content
      key "$1.key"
      openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
      printf '%s\n' "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile "$1.ext" -out "$1.crt" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    sign apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    sign admin "/O=system:masters/CN=paygo-admin" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
    key sa.key
    openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
    chmod 0644 ca.crt apiserver.crt admin.crt sa.pub
  )
}
if [ ! -s "$pki/ca.crt" ] || [ ! -s "$pki/admin.key" ] || [ ! -s "$pki/sa.pub" ]; then
  log "generating PKI in $pki"
  rm -rf "$pki"
  gen_pki
fi

b64() { base64 <"$1" | tr -d '\n'; }

# --- ports -----------------------------------------------------------------------------------
# Ports in use (any state) on this host, from /proc: no extra tools needed.
used_ports() {
  local h
  awk 'NR>1 { split($2, a, ":"); print a[2] }' /proc/net/tcp /proc/net/tcp6 2>/dev/null | sort -u |
    while read -r h; do [ -n "$h" ] && echo $((16#$h)); done
}
# A free port below the ephemeral range (32768+), so the kernel does not hand it out to
# someone else meanwhile; never one of the ports given as arguments.
free_port() {
  local used p
  used="$(used_ports)"
  for _ in $(seq 1 200); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 12000 ))
    case " $* " in *" $p "*) continue ;; esac
    if ! grep -qx "$p" <<<"$used"; then echo "$p"; return 0; fi
  done
  log "error: no free port found"; return 1
}
listening() { # port: is something listening on port (IPv4, or IPv6/dual-stack for 0.0.0.0)?
  awk -v p="$(printf '%04X' "$1")" 'FNR>1 && $4=="0A" { split($2, a, ":"); if (a[2]==p) f=1 } END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
port_free() { ! grep -qx "$1" <<<"$(used_ports)"; }

# Reuse the previous ports when still free (etcd keeps its peer URL in its data).
if [ -f "$data_dir/ports" ]; then
  # shellcheck disable=SC1091
  . "$data_dir/ports"
  for p in "${etcd_client_port:-}" "${etcd_peer_port:-}" "${api_port:-}"; do
    if [ -z "$p" ] || ! port_free "$p"; then etcd_client_port=""; break; fi
  done
fi
pick_ports() {
  etcd_client_port="$(free_port)"
  etcd_peer_port="$(free_port "$etcd_client_port")"
  api_port="$(free_port "$etcd_client_port" "$etcd_peer_port")"
}
[ -n "${etcd_client_port:-}" ] || pick_ports

tail_log() { log "---- last 40 lines of $1 ----"; tail -n 40 "$1" >&2 || true; log "----"; }
fail() { # message logfile
  log "error: $1"
  [ -n "${2:-}" ] && tail_log "$2"
  "$here/stop.sh" "$data_dir" >/dev/null 2>&1 || true
  exit 1
}
wait_listen() { # pid port timeout-seconds
  local deadline=$(( $(date +%s) + $3 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    alive "$1" || return 2
    listening "$2" && return 0
    sleep 0.2
  done
  return 1
}

# --- etcd -----------------------------------------------------------------------------------
start_etcd() {
  mkdir -p "$data_dir/etcd"
  chmod 0700 "$data_dir/etcd"
  setsid "$bin_dir/etcd" \
    --name paygo \
    --data-dir "$data_dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_client_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_client_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "paygo=http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster-state new \
    --unsafe-no-fsync \
    --log-level warn \
    >>"$data_dir/etcd.log" 2>&1 </dev/null &
  echo $! >"$data_dir/etcd.pid"
}

attempt=1
while :; do
  printf 'etcd_client_port=%s\netcd_peer_port=%s\napi_port=%s\n' "$etcd_client_port" "$etcd_peer_port" "$api_port" >"$data_dir/ports"
  log "starting etcd on 127.0.0.1:$etcd_client_port (log: $data_dir/etcd.log)"
  start_etcd
  rc=0; wait_listen "$(pidof_file etcd)" "$etcd_client_port" "$ETCD_READY_TIMEOUT" || rc=$?
  [ $rc -eq 0 ] && break
  if [ $rc -eq 2 ] && [ $attempt -lt 3 ]; then  # died: most likely a port race; new ports
    log "etcd exited early (attempt $attempt); retrying on other ports"
    tail -n 5 "$data_dir/etcd.log" >&2 || true
    attempt=$((attempt + 1)); pick_ports; continue
  fi
  fail "etcd did not start listening on 127.0.0.1:$etcd_client_port within ${ETCD_READY_TIMEOUT}s" "$data_dir/etcd.log"
done

# --- kube-apiserver ---------------------------------------------------------------------------
issuer="https://kubernetes.default.svc.cluster.local"
start_apiserver() {
  setsid "$bin_dir/kube-apiserver" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --endpoint-reconciler-type=none \
    --secure-port="$api_port" \
    --etcd-servers="http://127.0.0.1:$etcd_client_port" \
    --tls-cert-file="$pki/apiserver.crt" \
    --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --service-account-issuer="$issuer" \
    --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --api-audiences="$issuer" \
    --authorization-mode=RBAC \
    --anonymous-auth=true \
    --service-cluster-ip-range=10.0.0.0/24 \
    --allow-privileged=true \
    --enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook \
    --profiling=false \
    --v=1 \
    ${apiserver_args[@]+"${apiserver_args[@]}"} \
    >>"$data_dir/kube-apiserver.log" 2>&1 </dev/null &
  echo $! >"$data_dir/kube-apiserver.pid"
}

attempt=1
while :; do
  log "starting kube-apiserver on https://127.0.0.1:$api_port (log: $data_dir/kube-apiserver.log)"
  start_apiserver
  api_deadline=$(( $(date +%s) + APISERVER_READY_TIMEOUT ))  # listening and /readyz, together
  rc=0; wait_listen "$(pidof_file kube-apiserver)" "$api_port" "$APISERVER_READY_TIMEOUT" || rc=$?
  [ $rc -eq 0 ] && break
  if [ $rc -eq 2 ] && [ $attempt -lt 3 ] && grep -q "address already in use" "$data_dir/kube-apiserver.log"; then
    log "kube-apiserver port $api_port was taken; retrying on another"
    attempt=$((attempt + 1)); api_port="$(free_port "$etcd_client_port" "$etcd_peer_port" "$api_port")"
    printf 'etcd_client_port=%s\netcd_peer_port=%s\napi_port=%s\n' "$etcd_client_port" "$etcd_peer_port" "$api_port" >"$data_dir/ports"
    continue
  fi
  fail "kube-apiserver did not start listening on 127.0.0.1:$api_port within ${APISERVER_READY_TIMEOUT}s" "$data_dir/kube-apiserver.log"
done

cat >"$kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: paygo-test
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: paygo-admin
  user:
    client-certificate-data: $(b64 "$pki/admin.crt")
    client-key-data: $(b64 "$pki/admin.key")
contexts:
- name: paygo-test
  context:
    cluster: paygo-test
    user: paygo-admin
current-context: paygo-test
EOF
chmod 0600 "$kubeconfig.tmp"
mv -f "$kubeconfig.tmp" "$kubeconfig"

kc() { "$bin_dir/kubectl" --kubeconfig "$kubeconfig" --request-timeout=5s "$@"; }
deadline=$api_deadline
until kc get --raw /readyz >/dev/null 2>&1; do
  alive "$(pidof_file kube-apiserver)" || fail "kube-apiserver exited" "$data_dir/kube-apiserver.log"
  if [ "$(date +%s)" -ge "$deadline" ]; then
    kc get --raw '/readyz?verbose' >&2 2>&1 || true
    fail "kube-apiserver was not ready within ${APISERVER_READY_TIMEOUT}s" "$data_dir/kube-apiserver.log"
  fi
  sleep 0.3
done

# No kube-controller-manager: create what it would have (default/default ServiceAccount).
# The bootstrap controller creates the "default" namespace right after start; retry briefly.
deadline=$(( $(date +%s) + 20 ))
until kc apply -f - >/dev/null 2>"$data_dir/bootstrap.err" <<'EOF'
apiVersion: v1
kind: ServiceAccount
metadata:
  name: default
  namespace: default
EOF
do
  if [ "$(date +%s)" -ge "$deadline" ]; then cat "$data_dir/bootstrap.err" >&2; fail "could not create ServiceAccount default/default"; fi
  sleep 0.5
done
rm -f "$data_dir/bootstrap.err"

# --- watchdog -----------------------------------------------------------------------------------
if [ -n "$owner_pid" ]; then
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid bash -c '
    owner="$1"; dir="$2"; stop="$3"
    while kill -0 "$owner" 2>/dev/null && [ -f "$dir/kube-apiserver.pid" ]; do sleep 2; done
    [ -f "$dir/kube-apiserver.pid" ] && exec "$stop" "$dir"
  ' paygo-cp-watchdog "$owner_pid" "$data_dir" "$here/stop.sh" >/dev/null 2>&1 </dev/null &
  echo $! >"$data_dir/watchdog.pid"
fi

log "ready: https://127.0.0.1:$api_port (kubeconfig: $kubeconfig)"
emit_env
