#!/usr/bin/env bash
# Starts a real single-node Kubernetes cluster on this machine (root, Linux, cgroup v1 or v2)
# from the binaries of install.sh, and returns once the Node is Ready and CoreDNS answers.
#
#   up.sh [--data-dir DIR] [--no-paygo-images] [--install-paygo]
#
#   --data-dir          everything goes there (default /tmp/paygo-node; keep it short: unix
#                       socket paths live in it). down.sh DIR removes it again.
#   --no-paygo-images   do not build/import the paygo operator and sidecar images.
#   --install-paygo     then `helm upgrade --install` charts/paygo (namespace paygo-system,
#                       the imported images, pullPolicy Never) and wait for the operator.
#
# What runs (all from DIR, logs in DIR/log/):
#   etcd + kube-apiserver           ../controlplane/start.sh (bound to 0.0.0.0, advertised on
#                                   the node's address 10.244.0.1, lease endpoint reconciler)
#   kube-controller-manager, kube-scheduler
#   containerd 2 (+ runc from Debian, CNI bridge/host-local/loopback from Debian)
#   kubelet (cgroupfs driver, cgroup root /paygo-node, failCgroupV1: false)
#   kube-proxy (iptables mode)
#   CoreDNS as a Deployment + Service kube-dns at 10.0.0.10 (cluster.local only, no upstream)
# Network: bridge paygo0 = 10.244.0.1/24 (the node's IP, pods 10.244.0.2-254), services
# 10.0.0.0/24. Images: images.sh builds them with buildah and they are imported into
# containerd's k8s.io namespace (nothing is pulled; pods need imagePullPolicy IfNotPresent or
# Never, and tags other than :latest).
#
# stdout: KEY=VALUE lines, among them KUBECONFIG=<path> on its own line (also in DIR/env).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dd=/tmp/paygo-node paygo_images=1 install_paygo=0
while [ $# -gt 0 ]; do
  case "$1" in
    --data-dir) dd="$2"; shift 2 ;;
    --no-paygo-images) paygo_images=0; shift ;;
    --install-paygo) install_paygo=1; shift ;;
    -h|--help) sed -n '2,26p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "up.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

t0=$(date +%s)
log() { echo "node/up: [$(( $(date +%s) - t0 ))s] $*" >&2; }
die() { log "error: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (kubelet, containerd, iptables, mounts)"

NODE_NAME=paygo-node
BRIDGE=paygo0
NODE_IP=10.244.0.1
POD_CIDR=10.244.0.0/24
CLUSTER_CIDR=10.244.0.0/16
SERVICE_CIDR=10.0.0.0/24   # = ../controlplane/start.sh's --service-cluster-ip-range
DNS_IP=10.0.0.10
CGROUP_ROOT=/paygo-node
# Created outside DIR by containerd (shim sockets), CNI (its cache), kubelet (device plugins'
# socket), libmount: down.sh removes those that were not there before.
OUTSIDE_DIRS="/run/containerd /var/lib/cni /run/netns /etc/cni /opt/containerd /var/lib/containerd /run/nri /var/lib/kubelet /run/mount"

mkdir -p "$dd"
dd="$(cd "$dd" && pwd)"
chmod 0700 "$dd"
mkdir -p "$dd/log" "$dd/run"

bin="$("$here/install.sh")"
export PATH="$bin:$PATH"

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
pid_of() { cat "$dd/run/$1.pid" 2>/dev/null || true; }
start_bg() { # name cmd...  (own session; log in DIR/log/name.log; pid in DIR/run/name.pid)
  local name="$1"; shift
  setsid "$@" >>"$dd/log/$name.log" 2>&1 </dev/null &
  echo $! >"$dd/run/$name.pid"
  started+=("$name")
}
tail_log() { log "---- last 30 lines of $1 ----"; tail -n 30 "$1" >&2 || true; }
started=()
wait_for() { # description timeout-seconds log-to-show command...
  local what="$1" timeout="$2" proc="$3" p; shift 3
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    for p in ${started[@]+"${started[@]}"}; do
      alive "$(pid_of "$p")" || { tail_log "$dd/log/$p.log"; die "$p exited while waiting for $what"; }
    done
    [ "$(date +%s)" -lt "$deadline" ] || { [ -n "$proc" ] && tail_log "$dd/log/$proc.log"; die "timed out (${timeout}s) waiting for $what"; }
    sleep 0.5
  done
}
# A free 127.0.0.1 port below the ephemeral range (as ../controlplane/start.sh picks them).
free_port() {
  local used p
  used="$(awk 'FNR>1 { split($2, a, ":"); print a[2] }' /proc/net/tcp /proc/net/tcp6 | sort -u | while read -r h; do echo $((16#$h)); done)"
  for _ in $(seq 1 200); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 12000 ))
    grep -qx "$p" <<<"$used" || { echo "$p"; return 0; }
  done
  die "no free port found"
}

if [ -f "$dd/env" ] && alive "$(pid_of kubelet)" && alive "$(pid_of containerd)"; then
  log "already running from $dd"; cat "$dd/env"; exit 0
fi
# One node cluster per machine (one bridge, one kubelet port, one cgroup root).
if ip link show "$BRIDGE" >/dev/null 2>&1 && [ ! -f "$dd/state" ]; then
  die "bridge $BRIDGE exists: another node cluster runs (or a crashed one was not cleaned up); run down.sh --data-dir <its dir> first"
fi
if [ -d "$dd/cp" ] || [ -f "$dd/state" ]; then
  log "cleaning up the leftovers of an earlier run in $dd"
  "$here/down.sh" --data-dir "$dd" --keep-dir >&2
  mkdir -p "$dd/log" "$dd/run"
fi

# --- what down.sh must put back ------------------------------------------------------------------
SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
  net.ipv4.conf.all.route_localnet vm.overcommit_memory vm.panic_on_oom kernel.panic
  kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes
  net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established
  net.netfilter.nf_conntrack_tcp_timeout_close_wait net.netfilter.nf_conntrack_tcp_be_liberal)
{
  for s in "${SYSCTLS[@]}"; do v="$(sysctl -n "$s" 2>/dev/null)" && printf 'sysctl %s %s\n' "$s" "$v"; done
  for d in $OUTSIDE_DIRS; do [ -e "$d" ] && printf 'existed %s\n' "$d"; done
  # iptables-nft creates the nf_tables tables it touches (filter, nat, mangle; ip and ip6).
  if command -v nft >/dev/null 2>&1; then nft list tables 2>/dev/null | awk '$1=="table" {print "nft_table " $2 " " $3}'; fi
  echo "cgroup_root $CGROUP_ROOT"
  echo "bridge $BRIDGE"
} >"$dd/state"

# --- kernel settings and the node's network ------------------------------------------------------
sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || die "br_netfilter is needed (net.bridge.bridge-nf-call-iptables)"
if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
  ip link add "$BRIDGE" type bridge
fi
ip addr replace "$NODE_IP/24" dev "$BRIDGE"
ip link set "$BRIDGE" up

# --- control plane ---------------------------------------------------------------------------------
pki="$dd/cp/pki"
log "starting etcd + kube-apiserver"
"$here/../controlplane/start.sh" --data-dir "$dd/cp" --bin-dir "$bin" \
  --apiserver-arg --bind-address=0.0.0.0 \
  --apiserver-arg "--advertise-address=$NODE_IP" \
  --apiserver-arg --endpoint-reconciler-type=lease \
  --apiserver-arg "--kubelet-client-certificate=$pki/admin.crt" \
  --apiserver-arg "--kubelet-client-key=$pki/admin.key" \
  --apiserver-arg --kubelet-preferred-address-types=InternalIP \
  >"$dd/cp.env"
kubeconfig="$dd/cp/kubeconfig"
kc() { kubectl --kubeconfig "$kubeconfig" "$@"; }

log "starting kube-controller-manager and kube-scheduler"
start_bg kube-controller-manager kube-controller-manager \
  --kubeconfig="$kubeconfig" \
  --authentication-kubeconfig="$kubeconfig" --authorization-kubeconfig="$kubeconfig" \
  --secure-port=0 --leader-elect=false \
  --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
  --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" --cluster-cidr="$CLUSTER_CIDR" \
  --use-service-account-credentials=true --controllers='*' \
  --cluster-name=paygo --v=1 --profiling=false
start_bg kube-scheduler kube-scheduler \
  --kubeconfig="$kubeconfig" \
  --authentication-kubeconfig="$kubeconfig" --authorization-kubeconfig="$kubeconfig" \
  --secure-port=0 --leader-elect=false --v=1 --profiling=false

# --- images ---------------------------------------------------------------------------------------
log "building images (buildah; a first run builds the paygo images: minutes)"
img_args=(--out "$dd/images" --bin-dir "$bin")
[ "$paygo_images" = 1 ] || img_args+=(--no-paygo)
"$here/images.sh" "${img_args[@]}" >"$dd/images.list"

# --- containerd -------------------------------------------------------------------------------------
mkdir -p "$dd/containerd" "$dd/cni/net.d" "$dd/cni/ipam"
sock="$dd/containerd/containerd.sock"
cat >"$dd/containerd/config.toml" <<EOF
version = 3
root = "$dd/containerd/root"
state = "$dd/containerd/state"
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "$sock"

[ttrpc]
  address = "$dd/containerd/containerd.sock.ttrpc"

[debug]
  address = ""

[plugins]
  [plugins.'io.containerd.internal.v1.opt']
    path = "$dd/containerd/opt"
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = "localhost/paygo/pause:3.10"
  [plugins.'io.containerd.cri.v1.runtime']
    netns_mounts_under_state_dir = true
    # Sandboxes ask for oom_score_adj -998, and lowering it needs CAP_SYS_RESOURCE, which a
    # sandboxed root (such as this project's machines) may lack: clamp to containerd's own.
    restrict_oom_score_adj = true
    enable_cdi = false
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = "$(command -v runc)"
          Root = "$dd/containerd/runc"
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ["/usr/lib/cni"]
      conf_dir = "$dd/cni/net.d"
      max_conf_num = 1
EOF
cat >"$dd/cni/net.d/10-paygo.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "paygo",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$dd/cni/ipam",
        "ranges": [[{ "subnet": "$POD_CIDR", "gateway": "$NODE_IP" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    }
  ]
}
EOF
log "starting containerd"
# containerd-shim-runc-v2 is looked up on PATH.
start_bg containerd containerd --config "$dd/containerd/config.toml"
wait_for "containerd's socket" 30 containerd ctr --address "$sock" version
ctr_() { ctr --address "$sock" --namespace k8s.io "$@"; }
while read -r tarball; do
  [ -n "$tarball" ] || continue
  ctr_ images import --local=false --no-unpack "$tarball" >>"$dd/log/images-import.log" 2>&1 ||
    ctr_ images import "$tarball" >>"$dd/log/images-import.log" 2>&1 ||
    { tail_log "$dd/log/images-import.log"; die "could not import $tarball"; }
done <"$dd/images.list"
log "imported: $(ctr_ images ls -q | grep -v '^sha256:' | tr '\n' ' ')"

# --- kubelet ------------------------------------------------------------------------------------------
# A cgroup of our own in every hierarchy, so that down.sh knows exactly what to remove.
for h in /sys/fs/cgroup/*/; do
  [ -f "$h/cgroup.procs" ] || continue
  mkdir -p "$h${CGROUP_ROOT#/}"
  if [ -f "$h/cpuset.cpus" ]; then  # cgroup v1 cpuset: a new cgroup starts with no cpus
    cat "$h/cpuset.cpus" >"$h${CGROUP_ROOT#/}/cpuset.cpus"
    cat "$h/cpuset.mems" >"$h${CGROUP_ROOT#/}/cpuset.mems"
  fi
done
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then mkdir -p "/sys/fs/cgroup${CGROUP_ROOT}"; fi

mkdir -p "$dd/kubelet"
cat >"$dd/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
containerRuntimeEndpoint: unix://$sock
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: false }
  x509: { clientCAFile: $pki/ca.crt }
authorization:
  mode: AlwaysAllow
clusterDomain: cluster.local
clusterDNS: ["$DNS_IP"]
resolvConf: ""
podCIDR: $POD_CIDR
podLogsDir: $dd/kubelet/pod-logs
failSwapOn: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
serializeImagePulls: false
maxPods: 60
EOF
log "starting kubelet"
start_bg kubelet kubelet \
  --config="$dd/kubelet/config.yaml" \
  --kubeconfig="$kubeconfig" \
  --root-dir="$dd/kubelet/root" \
  --cert-dir="$dd/kubelet/pki" \
  --hostname-override="$NODE_NAME" \
  --node-ip="$NODE_IP" \
  --v=1

log "starting kube-proxy (iptables)"
start_bg kube-proxy kube-proxy \
  --kubeconfig="$kubeconfig" \
  --proxy-mode=iptables \
  --hostname-override="$NODE_NAME" \
  --cluster-cidr="$CLUSTER_CIDR" \
  --conntrack-max-per-core=0 \
  --conntrack-tcp-timeout-established=0 \
  --conntrack-tcp-timeout-close-wait=0 \
  --iptables-localhost-nodeports=false \
  --metrics-bind-address="127.0.0.1:$(free_port)" \
  --healthz-bind-address="127.0.0.1:$(free_port)" \
  --v=1

wait_for "Node $NODE_NAME Ready" 120 kubelet \
  kc wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s

# --- CoreDNS -------------------------------------------------------------------------------------------
coredns_img="$(grep -o 'localhost_paygo_coredns_[^/]*\.tar$' "$dd/images.list" | sed 's/^localhost_paygo_coredns_//; s/\.tar$//')"
log "deploying CoreDNS $coredns_img"
kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: { name: coredns, namespace: kube-system }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: "system:coredns" }
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: "system:coredns" }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns" }
subjects: [{ kind: ServiceAccount, name: coredns, namespace: kube-system }]
---
apiVersion: v1
kind: ConfigMap
metadata: { name: coredns, namespace: kube-system }
data:
  # cluster.local only: no "forward", so no query ever leaves this machine.
  Corefile: |
    .:53 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 5
        }
        cache 5
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: coredns, namespace: kube-system, labels: { k8s-app: kube-dns } }
spec:
  replicas: 1
  selector: { matchLabels: { k8s-app: kube-dns } }
  template:
    metadata: { labels: { k8s-app: kube-dns } }
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      containers:
      - name: coredns
        image: localhost/paygo/coredns:$coredns_img
        imagePullPolicy: Never
        args: ["-conf", "/etc/coredns/Corefile"]
        ports:
        - { name: dns, containerPort: 53, protocol: UDP }
        - { name: dns-tcp, containerPort: 53, protocol: TCP }
        readinessProbe: { httpGet: { path: /ready, port: 8181 }, periodSeconds: 2 }
        livenessProbe: { httpGet: { path: /health, port: 8080 }, periodSeconds: 10 }
        resources: { requests: { cpu: 50m, memory: 30Mi }, limits: { memory: 100Mi } }
        volumeMounts: [{ name: config, mountPath: /etc/coredns, readOnly: true }]
      volumes: [{ name: config, configMap: { name: coredns } }]
---
apiVersion: v1
kind: Service
metadata: { name: kube-dns, namespace: kube-system, labels: { k8s-app: kube-dns } }
spec:
  clusterIP: $DNS_IP
  selector: { k8s-app: kube-dns }
  ports:
  - { name: dns, port: 53, protocol: UDP }
  - { name: dns-tcp, port: 53, protocol: TCP }
EOF
wait_for "CoreDNS Ready" 120 kubelet \
  kc -n kube-system wait --for=condition=Available deployment/coredns --timeout=2s
# From the host, through kube-proxy's rules for the kube-dns Service.
dns_check() {
  node -e '
    const { Resolver } = require("node:dns").promises;
    const r = new Resolver({ timeout: 1000, tries: 1 }); r.setServers([process.argv[1]]);
    r.resolve4("kubernetes.default.svc.cluster.local").then((a) => { if (a[0] !== "10.0.0.1") process.exit(1); }, () => process.exit(1));
  ' "$DNS_IP"
}
wait_for "CoreDNS to answer on $DNS_IP" 60 kubelet dns_check

if [ "$install_paygo" = 1 ]; then
  [ "$paygo_images" = 1 ] || die "--install-paygo needs the paygo images (drop --no-paygo-images)"
  log "helm upgrade --install paygo charts/paygo"
  helm --kubeconfig "$kubeconfig" upgrade --install paygo "$here/../../../charts/paygo" \
    -n paygo-system --create-namespace \
    --set operator.image.pullPolicy=Never --set sidecar.image.pullPolicy=Never >"$dd/log/helm.log" 2>&1 ||
    { tail_log "$dd/log/helm.log"; die "helm install failed"; }
  kc -n paygo-system rollout status deployment/paygo-operator --timeout=180s >&2 ||
    { kc -n paygo-system get pods -o wide >&2; die "the paygo operator did not become ready"; }
fi

cp "$kubeconfig" "$dd/kubeconfig"
{
  echo "KUBECONFIG=$dd/kubeconfig"
  echo "PAYGO_NODE_DATA_DIR=$dd"
  echo "PAYGO_NODE_BIN_DIR=$bin"
  echo "PAYGO_NODE_NAME=$NODE_NAME"
  echo "PAYGO_NODE_CONTAINERD_SOCK=$sock"
} >"$dd/env"
log "ready: node $NODE_NAME, CoreDNS on $DNS_IP (down: $here/down.sh --data-dir $dd)"
cat "$dd/env"
