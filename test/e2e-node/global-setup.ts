// Global setup of the e2e-node tier: a real single-node cluster (test/support/node/up.sh
// --install-paygo: containerd, kubelet, kube-proxy, CoreDNS, paygo from charts/paygo), the test
// images (images.sh) imported, and down.sh at the end — also when setup or a test failed.
// PAYGO_NODE_KUBECONFIG=<dir>/kubeconfig reuses a running cluster (and leaves it running).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { runProgram } from '../support/run-program.js';
import type { NodeEnv } from './lib.js';

const HERE = import.meta.dirname;
const NODE = join(HERE, '..', 'support', 'node');

function parseEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

async function down(dataDir: string | undefined): Promise<void> {
  const t = Date.now();
  const r = await runProgram('bash', [join(NODE, 'down.sh'), ...(dataDir ? ['--data-dir', dataDir] : [])], { timeoutMs: 180_000 });
  console.log(`e2e-node: down.sh exit ${r.code} in ${((Date.now() - t) / 1000).toFixed(1)} s${r.code ? `\n${r.stderr}` : ''}`);
}

/** What down.sh deletes and a failure needs: the paygo objects, events and the operator's logs. */
async function collect(n: NodeEnv, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const kubectl = (args: string[]) => runProgram(join(n.binDir, 'kubectl'), ['--kubeconfig', n.kubeconfig, '--request-timeout=20s', ...args], { timeoutMs: 30_000 });
  const dumps: Array<[string, string[]]> = [
    ['paygo-objects.yaml', ['get', 'modelroutes,budgets', '-A', '-o', 'yaml']],
    ['pods.txt', ['get', 'pods', '-A', '-o', 'wide']],
    ['events.txt', ['get', 'events', '-A', '--sort-by=.lastTimestamp']],
    ['operator.log', ['logs', '-n', 'paygo-system', '-l', 'app.kubernetes.io/name=paygo', '--all-containers', '--prefix', '--tail=-1', '--max-log-requests=10']],
  ];
  for (const [file, args] of dumps) {
    const r = await kubectl(args);
    writeFileSync(join(dir, file), r.stdout + r.stderr);
  }
  // Logs of pods deleted during the run (e.g. the operator pods journey 6 deletes) are in the kubelet's log dir.
  await runProgram('bash', ['-c', `cp -r "${n.dataDir}/kubelet/pod-logs" "${dir}/pod-logs" 2>/dev/null; cp "${n.dataDir}"/log/*.log "${dir}/" 2>/dev/null; true`], { timeoutMs: 60_000 });
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const reuse = process.env.PAYGO_NODE_KUBECONFIG;
  let env: Record<string, string>;
  let owned = false;
  const t0 = Date.now();
  try {
    if (reuse) {
      env = parseEnv(readFileSync(join(dirname(reuse), 'env'), 'utf8'));
      console.log(`e2e-node: reusing the cluster of ${reuse}`);
    } else {
      owned = true;
      const r = await runProgram('bash', [join(NODE, 'up.sh'), '--install-paygo'], { timeoutMs: 60 * 60_000, teeStderr: true });
      if (r.code !== 0) throw new Error(`up.sh --install-paygo failed (exit ${r.code}):\n${r.stderr.split('\n').slice(-40).join('\n')}`);
      env = parseEnv(r.stdout);
      console.log(`e2e-node: up.sh --install-paygo took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    if (!env.KUBECONFIG || !env.PAYGO_NODE_CONTAINERD_SOCK) throw new Error(`no KUBECONFIG/PAYGO_NODE_CONTAINERD_SOCK in ${JSON.stringify(env)}`);
    const img = await runProgram('bash', [join(HERE, 'images.sh'), env.PAYGO_NODE_CONTAINERD_SOCK], { timeoutMs: 600_000 });
    if (img.code !== 0) throw new Error(`e2e-node/images.sh failed (exit ${img.code}):\n${img.stderr}`);
  } catch (e) {
    if (owned) await down(undefined);
    throw e;
  }
  const runId = new Date().toISOString().replace(/[:.]/g, '-');
  mkdirSync(join(HERE, 'results'), { recursive: true });
  const nodeEnv: NodeEnv = {
    kubeconfig: env.KUBECONFIG,
    dataDir: env.PAYGO_NODE_DATA_DIR ?? dirname(env.KUBECONFIG),
    binDir: env.PAYGO_NODE_BIN_DIR ?? join(process.env.HOME ?? '/root', '.cache/paygo/bin/current'),
    nodeName: env.PAYGO_NODE_NAME ?? 'paygo-node',
    containerdSock: env.PAYGO_NODE_CONTAINERD_SOCK,
    appImage: 'localhost/paygo-e2e/apps:1',
    resultsFile: join(HERE, 'results', `run-${runId}.jsonl`),
  };
  project.provide('paygoNode', nodeEnv);
  return async () => {
    if (owned) {
      await collect(nodeEnv, join(HERE, 'results', `cluster-${runId}`));
      await down(nodeEnv.dataDir);
    }
  };
}
