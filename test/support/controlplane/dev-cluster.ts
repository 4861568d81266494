// The dev cluster (dev-cluster.sh) from TypeScript: attach to one that is already up, or bring
// one up / down. An e2e test can use `await attachDevCluster() ?? await startControlPlane()` to
// reuse a running dev cluster while iterating; the ControlPlane it returns has a stop() that
// leaves the dev cluster running (it is not the test's to stop).
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ControlPlane } from './controlplane.js';

const DEV_CLUSTER_SH = join(import.meta.dirname, 'dev-cluster.sh');
/** up may build the binaries on a first run; down is bounded by stop.sh. */
const UP_TIMEOUT_MS = 45 * 60_000;
const DOWN_TIMEOUT_MS = 60_000;

export function devClusterDir(): string {
  return process.env.PAYGO_DEV_DIR ?? '/tmp/paygo-dev-cluster';
}

function runScript(args: string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', [DEV_CLUSTER_SH, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: -1, stdout, stderr: `${stderr}\n${err.message}` });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** The running dev cluster, or undefined when none is up. Its stop() does nothing. */
export async function attachDevCluster(): Promise<ControlPlane | undefined> {
  const r = await runScript(['status'], 30_000);
  if (r.code !== 0) return undefined;
  const env: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^(PAYGO_CP_[A-Z_]+)=(.*)$/.exec(line);
    if (m) env[m[1]!] = m[2]!;
  }
  if (!env.PAYGO_CP_KUBECONFIG || !env.PAYGO_CP_SERVER || !env.PAYGO_CP_BIN_DIR) return undefined;
  // The kubeconfig must be readable: otherwise the dir belongs to something else.
  await readFile(env.PAYGO_CP_KUBECONFIG, 'utf8');
  return {
    kubeconfigPath: env.PAYGO_CP_KUBECONFIG,
    server: env.PAYGO_CP_SERVER,
    dataDir: env.PAYGO_CP_DATA_DIR ?? devClusterDir(),
    binDir: env.PAYGO_CP_BIN_DIR,
    caCertPath: env.PAYGO_CP_CA_CERT ?? join(devClusterDir(), 'pki', 'ca.crt'),
    stop: async () => {},
  };
}

/** `dev-cluster.sh up` (starts it if needed, applies crds/*.yaml), then attaches. */
export async function devClusterUp(): Promise<ControlPlane> {
  const r = await runScript(['up'], UP_TIMEOUT_MS);
  if (r.code !== 0) throw new Error(`dev-cluster.sh up failed (exit ${r.code}):\n${r.stderr.trimEnd().split('\n').slice(-60).join('\n')}`);
  const cp = await attachDevCluster();
  if (!cp) throw new Error('dev-cluster.sh up succeeded but the cluster is not running');
  return cp;
}

/** `dev-cluster.sh down`: stops it, keeps its data. */
export async function devClusterDown(): Promise<void> {
  const r = await runScript(['down'], DOWN_TIMEOUT_MS);
  if (r.code !== 0) throw new Error(`dev-cluster.sh down failed (exit ${r.code}):\n${r.stderr}`);
}
