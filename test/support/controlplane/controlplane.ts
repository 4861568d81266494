// A real Kubernetes control plane for tests: etcd + kube-apiserver built from their Go modules
// (install.sh, cached) and started by start.sh, which is the one implementation of the startup
// logic (dev-cluster.sh runs the same script). See README.md beside this file.
//
// What a test gets: a kube-apiserver on 127.0.0.1 with RBAC, client-cert auth, admission
// webhooks, TokenRequest/TokenReview; no controller-manager, scheduler or nodes.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProgram as run, type RunResult } from '../run-program.js';

const HERE = import.meta.dirname;
const INSTALL_SH = join(HERE, 'install.sh');
const START_SH = join(HERE, 'start.sh');
const STOP_SH = join(HERE, 'stop.sh');

/** Bound on install.sh: a first build on 2 cores takes ~15 min (see README.md). */
const INSTALL_TIMEOUT_MS = Number(process.env.PAYGO_INSTALL_TIMEOUT_MS ?? 45 * 60_000);
/** Bound on start.sh (it bounds itself: etcd 20 s, apiserver 60 s, bootstrap 20 s). */
const START_TIMEOUT_MS = 150_000;
/** Bound on stop.sh (SIGTERM, 10 s, SIGKILL, 5 s — per process). */
const STOP_TIMEOUT_MS = 45_000;
/** Default bound on one kubectl/helm call. */
const CLI_TIMEOUT_MS = 60_000;

export interface ControlPlane {
  /** Admin kubeconfig (client cert in group system:masters). */
  kubeconfigPath: string;
  /** https://127.0.0.1:PORT */
  server: string;
  /** PKI, etcd data, logs (etcd.log, kube-apiserver.log), pid files, kubeconfig. */
  dataDir: string;
  /** Holds kube-apiserver, etcd, kubectl, helm. */
  binDir: string;
  /** The CA that signed the apiserver's serving cert and the admin client cert. */
  caCertPath: string;
  /** Stops both processes. Removes dataDir only if startControlPlane created it. */
  stop(): Promise<void>;
}

export type { RunResult };

function tail(text: string, lines = 60): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

let binaries: Promise<string> | undefined;

/**
 * Makes kube-apiserver, etcd, kubectl and helm available (install.sh: $KUBEBUILDER_ASSETS,
 * else the cache, else a build) and returns the directory holding them. Memoised per process.
 */
export function ensureBinaries(): Promise<string> {
  binaries ??= (async () => {
    const r = await run('bash', [INSTALL_SH], { timeoutMs: INSTALL_TIMEOUT_MS, teeStderr: true });
    const dir = r.stdout.trim().split('\n').pop() ?? '';
    if (r.code !== 0 || dir === '') {
      throw new Error(`install.sh failed (exit ${r.code}):\n${tail(r.stderr)}`);
    }
    return dir;
  })();
  binaries.catch(() => (binaries = undefined)); // let a later call retry
  return binaries;
}

function parseEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^(PAYGO_CP_[A-Z_]+)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/**
 * Starts etcd + kube-apiserver (via start.sh) and waits until /readyz is ok. With no dataDir,
 * a temporary one is created and removed again by stop(). If this process dies without calling
 * stop(), a watchdog started by start.sh stops the control plane within seconds.
 */
export async function startControlPlane(opts: { dataDir?: string } = {}): Promise<ControlPlane> {
  const binDir = await ensureBinaries();
  const ownsDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'paygo-cp-')));
  const r = await run(
    'bash',
    [START_SH, '--data-dir', dataDir, '--bin-dir', binDir, '--owner-pid', String(process.pid)],
    { timeoutMs: START_TIMEOUT_MS },
  );
  const env = parseEnv(r.stdout);
  const stopArgs = [STOP_SH, dataDir, ...(ownsDir ? ['--remove'] : [])];
  if (r.code !== 0 || !env.PAYGO_CP_KUBECONFIG || !env.PAYGO_CP_SERVER) {
    await run('bash', stopArgs, { timeoutMs: STOP_TIMEOUT_MS });
    throw new Error(`control plane did not start (start.sh exit ${r.code}):\n${tail(r.stderr)}`);
  }
  let stopping: Promise<void> | undefined;
  return {
    kubeconfigPath: env.PAYGO_CP_KUBECONFIG,
    server: env.PAYGO_CP_SERVER,
    dataDir: env.PAYGO_CP_DATA_DIR ?? dataDir,
    binDir: env.PAYGO_CP_BIN_DIR ?? binDir,
    caCertPath: env.PAYGO_CP_CA_CERT ?? join(dataDir, 'pki', 'ca.crt'),
    stop() {
      stopping ??= run('bash', stopArgs, { timeoutMs: STOP_TIMEOUT_MS }).then((s) => {
        if (s.code !== 0) throw new Error(`stop.sh failed (exit ${s.code}):\n${tail(s.stderr)}`);
      });
      return stopping;
    },
  };
}

/** Runs the control plane's kubectl with its admin kubeconfig. Never rejects on a non-zero exit. */
export function kubectl(
  cp: ControlPlane,
  args: string[],
  stdin?: string,
  opts: { timeoutMs?: number } = {},
): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? CLI_TIMEOUT_MS;
  return run(
    join(cp.binDir, 'kubectl'),
    ['--kubeconfig', cp.kubeconfigPath, `--request-timeout=${Math.ceil(timeoutMs / 1000)}s`, ...args],
    { ...(stdin === undefined ? {} : { stdin }), timeoutMs },
  );
}

/**
 * Waits until the named CRDs are Established. Polls instead of `kubectl wait`, which fails at
 * once ("status.conditions accessor error") when asked before the API server wrote any condition.
 */
export async function waitCrdsEstablished(cp: ControlPlane, names: string[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const r = await kubectl(cp, ['get', 'crd', ...names, '-o', 'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Established")].status}{" "}{end}']);
    last = r.code === 0 ? r.stdout : r.stderr;
    if (r.code === 0 && r.stdout.split(' ').filter((s) => s === 'True').length === names.length) return;
    if (Date.now() > deadline) throw new Error(`CRDs ${names.join(', ')} not Established within ${timeoutMs} ms: ${last}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

/**
 * Runs helm against the control plane (admin kubeconfig); helm's cache/config/data live in
 * dataDir/helm so nothing under $HOME is touched. Never rejects on a non-zero exit.
 */
export function helm(
  cp: ControlPlane,
  args: string[],
  opts: { timeoutMs?: number; stdin?: string } = {},
): Promise<RunResult> {
  const home = join(cp.dataDir, 'helm');
  return run(join(cp.binDir, 'helm'), args, {
    ...(opts.stdin === undefined ? {} : { stdin: opts.stdin }),
    timeoutMs: opts.timeoutMs ?? CLI_TIMEOUT_MS,
    env: {
      ...process.env,
      KUBECONFIG: cp.kubeconfigPath,
      HELM_CACHE_HOME: join(home, 'cache'),
      HELM_CONFIG_HOME: join(home, 'config'),
      HELM_DATA_HOME: join(home, 'data'),
    },
  });
}
