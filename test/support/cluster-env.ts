import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubectl, startControlPlane, waitCrdsEstablished, type ControlPlane } from './controlplane/controlplane.js';
import { startOperator, type OperatorProcess } from './operator-process.js';
import { ROOT, freePort, startSidecar, type SidecarProcess } from './sidecar-process.js';

/**
 * A real control plane with paygo on it: kube-apiserver + etcd, the CRDs, namespaces with a
 * ServiceAccount "app", the operator process, and helpers for pods with bound tokens and
 * sidecars in operator mode.
 */
export interface ClusterEnv {
  cp: ControlPlane;
  work: string;
  operator: OperatorProcess;
  operatorPort: number;
  caFile: string;
  k(args: string[], stdin?: string): Promise<string>;
  apply(yaml: string): Promise<void>;
  /** Creates a Pod object (Pending: no nodes) and writes a token bound to it; returns the token file. */
  podWithToken(namespace: string, name: string, labels: Record<string, string>, audience?: string): Promise<string>;
  sidecarFor(tokenFile: string, opts?: { stateDir?: string; args?: string[] }): Promise<SidecarProcess>;
  restartOperator(identity?: string): Promise<OperatorProcess>;
  stop(): Promise<void>;
}

export async function startClusterEnv(namespaces: string[]): Promise<ClusterEnv> {
  const cp = await startControlPlane();
  const work = mkdtempSync(join(tmpdir(), 'paygo-e2e-'));
  const k = async (args: string[], stdin?: string) => {
    const r = await kubectl(cp, args, stdin);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  };
  const apply = async (yaml: string) => {
    await k(['apply', '-f', '-'], yaml);
  };
  for (const f of readdirSync(join(ROOT, 'crds')).filter((f) => f.endsWith('.yaml'))) await k(['apply', '-f', join(ROOT, 'crds', f)]);
  await waitCrdsEstablished(cp, ['modelroutes.paygo.dev', 'budgets.paygo.dev', 'providerquotas.paygo.dev', 'ratelimits.paygo.dev']);
  await k(['create', 'namespace', 'paygo-system']);
  for (const ns of namespaces) {
    await k(['create', 'namespace', ns]);
    await k(['create', 'serviceaccount', 'app', '-n', ns]);
  }
  const operatorPort = await freePort();
  // Every sidecar started here is stopped by stop(), even when a test failed half-way.
  const started: SidecarProcess[] = [];
  const env: ClusterEnv = {
    cp,
    work,
    operatorPort,
    operator: await startOperator(cp.kubeconfigPath, { port: operatorPort, identity: 'op-a' }),
    caFile: join(work, 'ca.crt'),
    k,
    apply,
    async podWithToken(namespace, name, labels, audience = 'paygo') {
      const labelYaml = Object.entries(labels)
        .map(([key, v]) => `${key}: "${v}"`)
        .join(', ');
      await apply(`
apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: ${namespace}, labels: { ${labelYaml} } }
spec:
  serviceAccountName: app
  automountServiceAccountToken: false
  containers: [{ name: app, image: example.invalid/app:1 }]
`);
      const token = (await k(['create', 'token', 'app', '-n', namespace, '--audience', audience, '--bound-object-kind', 'Pod', '--bound-object-name', name, '--duration', '1h'])).trim();
      const file = join(work, `${namespace}-${name}-${audience}.token`);
      writeFileSync(file, token);
      return file;
    },
    async sidecarFor(tokenFile, opts = {}) {
      const stateDir = opts.stateDir ?? mkdtempSync(join(work, 'state-'));
      const s = await startSidecar(null, {
        args: ['--operator', `https://127.0.0.1:${operatorPort}`, '--token-file', tokenFile, '--operator-ca', env.caFile, '--state-dir', stateDir, ...(opts.args ?? [])],
        waitReady: false,
      });
      started.push(s);
      return s;
    },
    async restartOperator(identity = 'op-a') {
      env.operator = await startOperator(cp.kubeconfigPath, { port: operatorPort, identity });
      return env.operator;
    },
    async stop() {
      await Promise.allSettled(started.map((s) => s.stop()));
      await env.operator.stop();
      await cp.stop();
    },
  };
  writeFileSync(env.caFile, Buffer.from(await k(['get', 'secret', 'paygo-operator-tls', '-n', 'paygo-system', '-o', 'jsonpath={.data.ca\\.crt}']), 'base64'));
  return env;
}

/** Polls until ok(value) (bounded), returning the value and how long it took. */
export async function until<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<{ value: T; ms: number }> {
  const start = Date.now();
  let last: T | undefined;
  while (Date.now() - start < timeoutMs) {
    last = await fn();
    if (ok(last)) return { value: last, ms: Date.now() - start };
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)?.slice(0, 500)}`);
}
