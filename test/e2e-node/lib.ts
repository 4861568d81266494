// Helpers of the e2e-node tier: kubectl against the node cluster of global-setup.ts, the test
// app and fake provider as real pods, bounded polling, and a results file.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';
import { runProgram, type RunResult } from '../support/run-program.js';

export interface NodeEnv {
  kubeconfig: string;
  dataDir: string;
  binDir: string;
  nodeName: string;
  containerdSock: string;
  /** localhost/paygo-e2e/apps:1 — apps/app.mjs (default) and apps/fake-provider.mjs */
  appImage: string;
  resultsFile: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    paygoNode: NodeEnv;
  }
}

export const node = (): NodeEnv => inject('paygoNode');

/** kubectl; never rejects on a non-zero exit. */
export function kr(args: string[], stdin?: string, timeoutMs = 120_000): Promise<RunResult> {
  const n = node();
  return runProgram(join(n.binDir, 'kubectl'), ['--kubeconfig', n.kubeconfig, `--request-timeout=${Math.ceil(timeoutMs / 1000)}s`, ...args], {
    ...(stdin === undefined ? {} : { stdin }),
    timeoutMs: timeoutMs + 5_000,
  });
}

/** kubectl; throws with stderr on a non-zero exit, returns stdout. */
export async function k(args: string[], stdin?: string, timeoutMs = 120_000): Promise<string> {
  const r = await kr(args, stdin, timeoutMs);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (exit ${r.code}): ${r.stderr}`);
  return r.stdout;
}

export async function kjson<T = any>(args: string[]): Promise<T> {
  return JSON.parse(await k([...args, '-o', 'json'])) as T;
}

export const apply = (ns: string, yaml: string) => k(['apply', '-n', ns, '-f', '-'], yaml);

/** A fresh namespace (labelled for injection unless inject is false). */
export async function namespace(prefix: string, opts: { inject?: boolean } = {}): Promise<string> {
  const ns = `e2en-${prefix}-${Math.random().toString(36).slice(2, 7)}`;
  await k(['create', 'namespace', ns]);
  if (opts.inject !== false) await k(['label', 'namespace', ns, 'paygo.dev/inject=enabled']);
  return ns;
}

export async function deleteNamespaces(...names: Array<string | undefined>): Promise<void> {
  await Promise.all(names.filter((n): n is string => !!n).map((n) => kr(['delete', 'namespace', n, '--wait=false', '--ignore-not-found'])));
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Polls fn until ok(value), bounded; returns the value and the time it took. */
export async function until<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 120_000, everyMs = 250): Promise<{ value: T; ms: number }> {
  const start = Date.now();
  let last: T | undefined;
  let lastErr: unknown;
  while (Date.now() - start < timeoutMs) {
    try {
      last = await fn();
      if (ok(last)) return { value: last, ms: Date.now() - start };
    } catch (e) {
      lastErr = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out (${timeoutMs} ms) waiting for ${what}; last: ${JSON.stringify(last)?.slice(0, 800)} ${lastErr ? String(lastErr).slice(0, 500) : ''}`);
}

/** Console + one JSON line in the run's results file. */
export function record(journey: string, data: Record<string, unknown>): void {
  const line = JSON.stringify({ journey, at: new Date().toISOString(), ...data }, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
  console.log(`[e2e-node] ${line}`);
  appendFileSync(node().resultsFile, line + '\n');
}

export interface PodInfo {
  name: string;
  ip: string;
  json: any;
}

export async function readyPods(ns: string, selector: string): Promise<PodInfo[]> {
  const list = await kjson<{ items: any[] }>(['get', 'pods', '-n', ns, '-l', selector]);
  return list.items
    .filter((p) => !p.metadata.deletionTimestamp && p.status.phase === 'Running' && p.status.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True'))
    .map((p) => ({ name: p.metadata.name, ip: p.status.podIP, json: p }));
}

/** The fake provider (apps/fake-provider.mjs) as a Deployment + Service "fake" in ns; returns its base URL. */
export async function deployProvider(ns: string): Promise<string> {
  const n = node();
  await apply(
    ns,
    `
apiVersion: apps/v1
kind: Deployment
metadata: { name: fake, labels: { app: fake } }
spec:
  replicas: 1
  selector: { matchLabels: { app: fake } }
  template:
    metadata: { labels: { app: fake, paygo.dev/inject: "false" } }
    spec:
      containers:
      - name: fake
        image: ${n.appImage}
        imagePullPolicy: Never
        args: ["/app/fake-provider.mjs"]
        ports: [{ containerPort: 8080 }]
        readinessProbe: { httpGet: { path: /healthz, port: 8080 }, periodSeconds: 1 }
---
apiVersion: v1
kind: Service
metadata: { name: fake }
spec:
  selector: { app: fake }
  ports: [{ port: 80, targetPort: 8080 }]
`,
  );
  await k(['rollout', 'status', '-n', ns, 'deployment/fake', '--timeout=180s'], undefined, 200_000);
  return `http://fake.${ns}.svc.cluster.local`;
}

/** What the provider served so far (through its pod IP, from the host). */
export async function providerCount(ns: string): Promise<{ count: number; byPrefix: Record<string, number>; authorization: Record<string, number> }> {
  const [p] = await readyPods(ns, 'app=fake');
  if (!p) throw new Error(`no ready fake provider in ${ns}`);
  return (await fetch(`http://${p.ip}:8080/__count`)).json() as any;
}

/** The app (apps/app.mjs) as a Deployment of `replicas` pods; waits for the rollout, returns the pods. */
export async function deployApp(ns: string, name = 'app', replicas = 2): Promise<PodInfo[]> {
  const n = node();
  await apply(
    ns,
    `
apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name}, labels: { app: ${name} } }
spec:
  replicas: ${replicas}
  selector: { matchLabels: { app: ${name} } }
  template:
    metadata: { labels: { app: ${name} } }
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: app
        image: ${n.appImage}
        imagePullPolicy: Never
        ports: [{ containerPort: 8080 }]
        readinessProbe: { httpGet: { path: /healthz, port: 8080 }, periodSeconds: 1 }
`,
  );
  await k(['rollout', 'status', '-n', ns, `deployment/${name}`, '--timeout=240s'], undefined, 260_000);
  const { value } = await until(`${replicas} ready pods of ${name}`, () => readyPods(ns, `app=${name}`), (p) => p.length === replicas, 60_000);
  return value;
}

export interface CallResult {
  status: number;
  body?: any;
  headers?: Record<string, string>;
  error?: string;
}

/** GET /call on the app pod: one chat completion through its sidecar. */
export async function call(pod: PodInfo | string, model: string, maxTokens?: number): Promise<CallResult> {
  const ip = typeof pod === 'string' ? pod : pod.ip;
  const q = new URLSearchParams({ model, ...(maxTokens ? { max_tokens: String(maxTokens) } : {}) });
  try {
    const r = await fetch(`http://${ip}:8080/call?${q}`, { signal: AbortSignal.timeout(45_000) });
    return (await r.json()) as CallResult;
  } catch (e) {
    return { status: -1, error: String((e as Error).cause ?? e) };
  }
}

/** Calls until one succeeds (bounded): right after a rollout or a config change. */
export async function callUntilOk(pod: PodInfo, model: string, ok: (r: CallResult) => boolean = (r) => r.status === 200, timeoutMs = 60_000): Promise<CallResult> {
  return (await until(`a completion of ${model} from ${pod.name}`, () => call(pod, model), ok, timeoutMs, 500)).value;
}

/** "0.000020000" → 20000n nano-USD. */
export function nano(usd: string): bigint {
  const m = /^(\d+)(?:\.(\d{1,9}))?$/.exec(usd.trim());
  if (!m) throw new Error(`not a USD amount: ${usd}`);
  return BigInt(m[1]!) * 1_000_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

export function usd(n: bigint): string {
  return `${n / 1_000_000_000n}.${(n % 1_000_000_000n).toString().padStart(9, '0')}`;
}

/** A ModelRoute on the fake provider; targets are URL prefixes of it (the answer names the prefix). */
export function route(name: string, providerUrl: string, targets: string[], opts: { strategy?: string; model?: string } = {}): string {
  return `
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: ${name} }
spec:
  model: ${opts.model ?? name}
  strategy: ${opts.strategy ?? 'fallback'}
  targets:
${targets.map((t) => `  - { name: ${t}, provider: openai-compatible, model: ${t}-model, baseURL: "${providerUrl}/${t}/v1", pricing: { input: "1.00", output: "2.00" } }`).join('\n')}
`;
}

/** Waits until the route's status says its current generation runs on `synced` sidecars. */
export async function routeSynced(ns: string, name: string, synced: number, timeoutMs = 120_000, everyMs = 100): Promise<{ value: any; ms: number }> {
  return until(
    `ModelRoute ${ns}/${name} synced to ${synced} sidecars`,
    // Only what matters, so that a timeout's message shows the status.
    async () => {
      const r = await kjson(['get', 'modelroute', name, '-n', ns]);
      return { metadata: { generation: r.metadata.generation, creationTimestamp: r.metadata.creationTimestamp }, status: r.status ?? null };
    },
    (r: any) => r.status?.observedGeneration === r.metadata.generation && r.status?.sidecars?.synced === synced && r.status?.sidecars?.desired === synced,
    timeoutMs,
    everyMs,
  );
}

/** containerd container id of a container of a pod (init or regular), from the pod's status. */
export function containerId(pod: any, container: string): string {
  const all = [...(pod.status.initContainerStatuses ?? []), ...(pod.status.containerStatuses ?? [])];
  const s = all.find((c: any) => c.name === container);
  if (!s?.containerID) throw new Error(`no container ${container} in pod ${pod.metadata.name}`);
  return String(s.containerID).replace(/^containerd:\/\//, '');
}

export async function ctr(args: string[]): Promise<string> {
  const n = node();
  const r = await runProgram(join(n.binDir, 'ctr'), ['--address', n.containerdSock, '--namespace', 'k8s.io', ...args], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`ctr ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** Host PID of a container's main process. */
export async function containerPid(id: string): Promise<number> {
  const out = await ctr(['tasks', 'ls']);
  const line = out.split('\n').find((l) => l.startsWith(id));
  if (!line) throw new Error(`no task ${id}`);
  return Number(line.trim().split(/\s+/)[1]);
}
