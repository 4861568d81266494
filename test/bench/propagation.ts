/**
 * Config propagation bench (run by run.ts in its own process; prints one JSON line on stdout).
 *
 * A real kube-apiserver + etcd + the paygo operator (test/support/cluster-env.ts). 200 Pods with
 * pod-bound ServiceAccount tokens (audience paygo) are created through the Kubernetes API, and
 * 200 lightweight sidecar clients (in this process: one authenticated SSE stream each, ACKing
 * every snapshot like the sidecar does) connect to the operator. Then a ModelRoute is changed with
 * `kubectl apply`, CHANGES times: per client, the time from the start of `kubectl apply` until
 * that client's ACK for the new version was accepted by the operator (POST /v1/ack answered).
 * Then 1,000 ModelRoutes are created (another namespace) and the operator's RSS is read from
 * /proc; the propagation is measured once more with those routes present.
 *
 * Runs from source with vite-node (vitest's runner), like the tests, because test/support
 * resolves the repository (CRDs, control-plane scripts, dist/) relative to its own source file.
 *
 * BENCH_PROPAGATION=auto (default) skips when the control-plane binaries are not built yet
 * (`make controlplane`, ~15 min once on 2 cores) instead of building them.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { Agent } from 'undici';
import { SseParser } from '../../sidecar/sse.js';
import { startClusterEnv, type ClusterEnv } from '../support/cluster-env.js';
import { controlPlaneBinariesAvailable, cpuUs, mb, memSampler, percentile, procMem, runBenchPart, sleep } from './lib.js';

const CLIENTS = Number(process.env.BENCH_PROP_CLIENTS ?? 200);
const CHANGES = Number(process.env.BENCH_PROP_CHANGES ?? 5);
const ROUTES = Number(process.env.BENCH_PROP_ROUTES ?? 1000);
const CONCURRENCY = 16;
const LIMIT_MS = 4 * 60_000;
const NS = 'bench';
const SCALE_NS = 'bench-scale';

const plog = (...a: unknown[]) => console.error(`[prop ${new Date().toISOString().slice(11, 19)}]`, ...a);

/** Runs fn over items with at most n in flight. */
async function pool<T, R>(items: T[], n: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

function routeYaml(name: string, namespace: string, maxOutputTokens: number): string {
  return `apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  model: ${name}
  targets:
    - { name: up, provider: openai-compatible, model: gpt-4o-mini, baseURL: "http://127.0.0.1:9/v1", credentials: { secretRef: { name: bench, key: api-key } } }
  limits: { maxOutputTokens: ${maxOutputTokens} }
`;
}

interface Ack {
  version: string;
  at: number;
}
/** One lightweight sidecar: the SSE stream, and an ACK for every snapshot, as the sidecar sends them. */
class Client {
  acks: Ack[] = [];
  connected = false;
  error: string | undefined;
  private readonly abort = new AbortController();
  constructor(
    private readonly agent: Agent,
    private readonly origin: string,
    private readonly token: string,
  ) {}

  start(): void {
    void this.run();
  }

  private async run(): Promise<void> {
    try {
      const res = await this.agent.request({ origin: this.origin, path: '/v1/stream', method: 'GET', headers: { authorization: `Bearer ${this.token}`, accept: 'text/event-stream' }, signal: this.abort.signal });
      if (res.statusCode !== 200) {
        this.error = `stream: ${res.statusCode} ${(await res.body.text()).slice(0, 200)}`;
        return;
      }
      this.connected = true;
      const parser = new SseParser();
      for await (const chunk of res.body) {
        for (const ev of parser.push(chunk as Uint8Array)) {
          if (ev.event !== 'snapshot') continue;
          const version = (JSON.parse(ev.data) as { snapshot: { version: string } }).snapshot.version;
          void this.ack(version);
        }
      }
    } catch (err) {
      if (!this.abort.signal.aborted) this.error = `stream: ${(err as Error).message}`;
    } finally {
      this.connected = false;
    }
  }

  private async ack(version: string): Promise<void> {
    try {
      const res = await this.agent.request({
        origin: this.origin,
        path: '/v1/ack',
        method: 'POST',
        headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ version, accepted: true }),
      });
      await res.body.dump();
      if (res.statusCode === 204) this.acks.push({ version, at: performance.now() });
      else this.error = `ack: ${res.statusCode}`;
    } catch (err) {
      this.error = `ack: ${(err as Error).message}`;
    }
  }

  lastVersion(): string | undefined {
    return this.acks[this.acks.length - 1]?.version;
  }

  stop(): void {
    this.abort.abort();
  }
}

async function waitFor(what: string, ok: () => boolean, timeoutMs: number): Promise<number> {
  const start = performance.now();
  while (!ok()) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(2);
  }
  return performance.now() - start;
}

interface ChangeResult {
  /** How long `kubectl apply` itself took (process start, discovery, the write). */
  applyMs: number;
  ackMs: number[];
  allAckedMs: number;
}
/** Changes the route with kubectl apply; per client, ms from the start of the apply to its ACK of the new version. */
async function change(env: ClusterEnv, clients: Client[], value: number): Promise<ChangeResult> {
  const old = new Set(clients.map((c) => c.lastVersion()));
  const t0 = performance.now();
  await env.apply(routeYaml('prop', NS, value));
  const applyMs = performance.now() - t0;
  const acked = (c: Client) => c.acks.find((a) => a.at >= t0 && !old.has(a.version));
  await waitFor('every client to ACK the new version', () => clients.every((c) => acked(c) !== undefined), 30_000);
  const ackMs = clients.map((c) => acked(c)!.at - t0);
  return { applyMs, ackMs, allAckedMs: Math.max(...ackMs) };
}

function stats(xs: number[]) {
  const r = (x: number) => Math.round(x * 10) / 10;
  return { n: xs.length, p50: r(percentile(xs, 0.5)), p90: r(percentile(xs, 0.9)), p99: r(percentile(xs, 0.99)), max: r(Math.max(...xs)) };
}

async function main(): Promise<Record<string, unknown>> {
  const mode = process.env.BENCH_PROPAGATION ?? 'auto';
  if (mode === 'auto' && !controlPlaneBinariesAvailable()) {
    return { measured: false, reason: 'the control-plane binaries are not built (run `make controlplane` once, ~15 min on 2 cores, or set KUBEBUILDER_ASSETS; BENCH_PROPAGATION=1 builds them)' };
  }
  const t = performance.now();
  const env = await startClusterEnv([NS, SCALE_NS]);
  current = env;
  const clients: Client[] = [];
  const agent = new Agent({ connect: { ca: readFileSync(env.caFile, 'utf8') }, bodyTimeout: 0, headersTimeout: 30_000, keepAliveTimeout: 60_000 });
  try {
    plog(`control plane + operator up in ${Math.round(performance.now() - t)} ms`);
    const kc = new KubeConfig();
    kc.loadFromFile(env.cp.kubeconfigPath);
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const opPid = env.operator.child.pid!;
    const opStart = procMem(opPid);
    for (const ns of [NS, SCALE_NS]) await env.apply(`apiVersion: v1\nkind: Secret\nmetadata: { name: bench, namespace: ${ns} }\nstringData: { api-key: sk-bench }\n`);
    await env.apply(routeYaml('prop', NS, 1000));

    // 200 Pods and pod-bound tokens through the API (kubectl would take minutes).
    let t1 = performance.now();
    const names = Array.from({ length: CLIENTS }, (_, i) => `app-${String(i).padStart(3, '0')}`);
    const tokens = await pool(names, CONCURRENCY, async (name) => {
      const pod = await core.createNamespacedPod({
        namespace: NS,
        body: { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { app: 'bench' } }, spec: { serviceAccountName: 'app', automountServiceAccountToken: false, containers: [{ name: 'app', image: 'example.invalid/app:1' }] } },
      });
      const tr = await core.createNamespacedServiceAccountToken({
        name: 'app',
        namespace: NS,
        body: { spec: { audiences: ['paygo'], expirationSeconds: 3600, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name, uid: pod.metadata!.uid! } } },
      });
      const token = tr.status?.token;
      if (!token) throw new Error(`no token for pod ${name}`);
      return token;
    });
    plog(`${CLIENTS} pods + tokens in ${Math.round(performance.now() - t1)} ms`);

    t1 = performance.now();
    const origin = `https://127.0.0.1:${env.operatorPort}`;
    for (const token of tokens) {
      const c = new Client(agent, origin, token);
      clients.push(c);
      c.start();
    }
    const initial = await waitFor(
      `${CLIENTS} streams to connect and ACK`,
      () => clients.every((c) => c.acks.length > 0) || clients.some((c) => c.error !== undefined),
      60_000,
    );
    const failed = clients.filter((c) => c.error);
    if (failed.length) throw new Error(`${failed.length} clients failed: ${failed[0]!.error}`);
    plog(`${CLIENTS} streams connected and ACKed their first snapshot in ${Math.round(initial)} ms`);
    await sleep(1000);
    const opIdle = procMem(opPid);

    const runChanges = async (n: number, base: number) => {
      const out: ChangeResult[] = [];
      for (let i = 0; i < n; i++) {
        out.push(await change(env, clients, base + i));
        const last = out[out.length - 1]!;
        plog(`change ${i + 1}/${n}: kubectl apply ${Math.round(last.applyMs)} ms; ACK p50 ${Math.round(percentile(last.ackMs, 0.5))} ms, all ${Math.round(last.allAckedMs)} ms`);
        await sleep(500);
      }
      return out;
    };
    await change(env, clients, 1999); // warm-up (kubectl's discovery cache), not counted
    const changes = await runChanges(CHANGES, 2000);

    // 1,000 ModelRoutes (in a namespace without sidecars) and the operator's RSS.
    const mem = memSampler(opPid, 200);
    t1 = performance.now();
    await pool(
      Array.from({ length: ROUTES }, (_, i) => `route-${String(i).padStart(4, '0')}`),
      CONCURRENCY,
      (name) =>
        custom.createNamespacedCustomObject({
          group: 'paygo.dev',
          version: 'v1alpha1',
          namespace: SCALE_NS,
          plural: 'modelroutes',
          body: {
            apiVersion: 'paygo.dev/v1alpha1',
            kind: 'ModelRoute',
            metadata: { name, namespace: SCALE_NS },
            spec: { model: name, targets: [{ name: 'up', provider: 'openai-compatible', model: 'gpt-4o-mini', baseURL: 'http://127.0.0.1:9/v1', credentials: { secretRef: { name: 'bench', key: 'api-key' } } }] },
          },
        }),
    );
    const createMs = performance.now() - t1;
    // Settled when the operator has written status for every route (bounded).
    let statused = 0;
    const settleStart = performance.now();
    while (performance.now() - settleStart < 90_000) {
      const list = (await custom.listNamespacedCustomObject({ group: 'paygo.dev', version: 'v1alpha1', namespace: SCALE_NS, plural: 'modelroutes' })) as { items: Array<{ metadata: { generation?: number }; status?: { observedGeneration?: number } }> };
      statused = list.items.filter((r) => r.status?.observedGeneration === r.metadata.generation).length;
      if (statused >= ROUTES) break;
      await sleep(1000);
    }
    const settledMs = performance.now() - t1;
    // …and quiet: the operator's CPU below 10% over one second (bounded).
    let quietMs = NaN;
    for (const q0 = performance.now(); performance.now() - q0 < 60_000; ) {
      const c0 = cpuUs(opPid);
      await sleep(1000);
      if (cpuUs(opPid) - c0 < 100_000) {
        quietMs = performance.now() - t1;
        break;
      }
    }
    const with1000 = procMem(opPid);
    const peakDuring = mem.stop();
    plog(`${ROUTES} ModelRoutes created in ${Math.round(createMs)} ms, status on ${statused} after ${Math.round(settledMs)} ms, operator quiet after ${Math.round(quietMs)} ms; operator RSS ${mb(with1000.rss)} MB (peak ${mb(with1000.hwm)} MB)`);
    const changesWithRoutes = await runChanges(Math.max(2, Math.ceil(CHANGES / 2)), 3000);

    const all = changes.flatMap((c) => c.ackMs);
    const allWith = changesWithRoutes.flatMap((c) => c.ackMs);
    return {
      measured: true,
      clients: CLIENTS,
      changes: CHANGES,
      method: 'ms from the start of `kubectl apply` of a changed ModelRoute until each client’s ACK of the new snapshot version was answered 204 by the operator',
      ackMs: stats(all),
      afterApplyReturnedMs: stats(changes.flatMap((c) => c.ackMs.map((x) => x - c.applyMs))),
      allAckedMs: stats(changes.map((c) => c.allAckedMs)),
      kubectlApplyMs: stats(changes.map((c) => c.applyMs)),
      perChange: changes.map((c) => ({ applyMs: Math.round(c.applyMs), p50: Math.round(percentile(c.ackMs, 0.5)), p99: Math.round(percentile(c.ackMs, 0.99)), allMs: Math.round(c.allAckedMs) })),
      with1000Routes: { ackMs: stats(allWith), allAckedMs: stats(changesWithRoutes.map((c) => c.allAckedMs)), changes: changesWithRoutes.length },
      routes: { count: ROUTES, namespace: SCALE_NS, createMs: Math.round(createMs), statusWrittenOn: statused, statusWrittenMs: Math.round(settledMs), operatorQuietMs: Math.round(quietMs) },
      operatorRss: { start: opStart, idle: opIdle, with1000Routes: with1000, sampledPeak: peakDuring },
      initialConnectAndAckMs: Math.round(initial),
      elapsedMs: Math.round(performance.now() - t),
    };
  } finally {
    for (const c of clients) c.stop();
    await agent.destroy().catch(() => undefined);
    await env.stop().catch((e: Error) => plog(`stopping the cluster env: ${e.message}`));
  }
}

/** Set once the cluster is up, so a hard stop can still stop it. */
let current: ClusterEnv | undefined;
runBenchPart({ name: 'propagation', limitMs: LIMIT_MS, stopGraceMs: 20_000, main, cluster: () => current, stop: (env) => env.cp.stop(), log: plog });

