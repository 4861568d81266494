// A fleet on this machine: the real operator in process over the fake API server, and real
// sidecar processes in operator mode authenticating as pods it knows.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Operator } from '../../operator/operator.js';
import { parseOptions, type OperatorOptions } from '../../operator/options.js';
import { PODS, type FakeKube } from './fake-kube.js';
import { pod, silent } from './operator-fixtures.js';
import { startSidecar, type SidecarProcess } from './sidecar-process.js';

/** Pod app-<n> (uid-<n>) of namespace ns, known to the fake API server, its token tok-<n> written to dir/token-<n>. */
export function fleetPod(kube: FakeKube, dir: string, namespace: string, n: number): void {
  kube.put(PODS, pod(namespace, `app-${n}`, `uid-${n}`));
  kube.registerToken(`tok-${n}`, { namespace, podName: `app-${n}`, podUid: `uid-${n}` });
  writeFileSync(join(dir, `token-${n}`), `tok-${n}`);
}

/** The operator in process (no leader election), started; its CA written to dir/ca.pem for the sidecars. */
export async function startInProcessOperator(kube: FakeKube, dir: string): Promise<{ op: Operator; url: string }> {
  const o = parseOptions(['--listen', '127.0.0.1:0', '--health', '127.0.0.1:0', '--namespace', 'paygo-system', '--identity', 'op-1', '--leader-elect', 'false'], {}) as OperatorOptions;
  const op = new Operator(o, kube.kubeConfig('op-1'), silent);
  try {
    const { url } = await op.start();
    writeFileSync(join(dir, 'ca.pem'), op.tls!.caPem);
    return { op, url };
  } catch (err) {
    await op.stop();
    throw err;
  }
}

/** The sidecar process of fleetPod n, in operator mode against the operator at url. */
export function startFleetSidecar(url: string, dir: string, n: number): Promise<SidecarProcess> {
  return startSidecar(null, { args: ['--operator', url, '--token-file', join(dir, `token-${n}`), '--operator-ca', join(dir, 'ca.pem'), '--state-dir', join(dir, `state-${n}`)] });
}
