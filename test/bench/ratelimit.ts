/**
 * Rate-limit bench (run by run.ts in its own process; prints one JSON line on stdout): a fleet
 * against a provider that enforces its own limits, without and with a ProviderQuota equal to
 * them, side by side.
 *
 * A real kube-apiserver + etcd + the paygo operator (test/support/cluster-env.ts), 4 sidecar
 * processes in operator mode, 16 concurrent clients per sidecar (test/support/fleet-load.ts:
 * each backs off on a 429 as the OpenAI SDKs do, at most 1 s), and the fake provider of the e2e
 * test (test/support/fake-rate-limited-provider.ts: per model, requests and tokens per minute as
 * token buckets, full at the start, 429 in OpenAI's wire format beyond them), here in this
 * process. Two routes to two models with the same limits, each with its own fresh buckets:
 * `free` (no quota) and `quota` (a ProviderQuota on its key equal to the provider's limits).
 * `free` runs first, during the operator's quiet period (a started operator grants no share for
 * 20 s; `free` needs none); `quota` runs once shares are granted, which come empty, so the
 * fleet starts `quota` with what refilled since (reported) while the provider's bucket is full.
 *
 * Per run: the provider's 429s; goodput = 200s to the clients, over the whole run (against what
 * the provider allowed: its full bucket plus the refill over the run) and in the steady state
 * (from 1 s after the first 429 on: successes per second against the refill rate); latency of
 * the successes (p50/p99, steady state), and what paygo answered instead.
 *
 * Runs from source with vite-node (vitest's runner), like the tests, because test/support
 * resolves the repository (CRDs, control-plane scripts, dist/) relative to its own source file.
 * BENCH_RATELIMIT=auto (default) skips when the control-plane binaries are not built.
 */
import { performance } from 'node:perf_hooks';
import { startClusterEnv, until, type ClusterEnv } from '../support/cluster-env.js';
import { openaiRequestTokens, startRateLimitedProvider, type ModelStats } from '../support/fake-rate-limited-provider.js';
import { allowedRequests, driveFleet, fleetRemaining, percentileOf, shareProbe, type FleetRun } from '../support/fleet-load.js';
import type { SidecarProcess } from '../support/sidecar-process.js';
import { controlPlaneBinariesAvailable, runBenchPart } from './lib.js';

const SIDECARS = Number(process.env.BENCH_RL_SIDECARS ?? 4);
const CLIENTS = Number(process.env.BENCH_RL_CLIENTS ?? 16);
const RUN_MS = Number(process.env.BENCH_RL_RUN_S ?? 12) * 1000;
const LIMITS = { requestsPerMinute: 600, tokensPerMinute: 40_000 };
/** Hard limit (run.ts passes what is left of its own). */
const LIMIT_MS = Number(process.env.BENCH_RL_LIMIT_MS ?? 90_000);
const NS = 'bench-rl';
const MODELS = { free: 'gpt-4o-mini', quota: 'gpt-4.1-mini' } as const;
const PROMPT = 'Summarise the quarterly report for the board in three short bullet points, please.';
const body = (route: string) => JSON.stringify({ model: route, messages: [{ role: 'user', content: PROMPT }], max_tokens: 20 });

const rlog = (...a: unknown[]) => console.error(`[ratelimit ${new Date().toISOString().slice(11, 19)}]`, ...a);
const r1 = (x: number) => Math.round(x * 10) / 10;

/**
 * The steady state of a run: from 1 s after the first 429 (the provider's, or paygo's for its
 * quota: the bucket that binds was empty, and the clients want more than it refills) to the end.
 */
function summarise(run: FleetRun, st: ModelStats, tokens: number) {
  const first429 = Math.min(run.first429At ?? Infinity, st.refusedAt[0] ?? Infinity);
  const steadyTo = run.startedAt + RUN_MS;
  const steadyFrom = first429 + 1000;
  const steadyS = Math.max(0, steadyTo - steadyFrom) / 1000;
  const steady = run.successes.filter((s) => s.at >= steadyFrom && s.at < steadyTo);
  const refillPerS = Math.min(LIMITS.requestsPerMinute, LIMITS.tokensPerMinute / tokens) / 60;
  const allowed = allowedRequests(LIMITS, tokens, run.ms);
  const lat = (xs: number[]) => ({ n: xs.length, p50: r1(percentileOf(xs, 0.5)), p99: r1(percentileOf(xs, 0.99)) });
  return {
    ms: run.ms,
    ok: run.ok,
    upstream: { served: st.served, refused429: st.refused, refusedBy: st.refusedBy, refused429Steady: st.refusedAt.filter((t) => t >= steadyFrom && t < steadyTo).length },
    paygoRefused: run.refused,
    steadyFromMs: Number.isFinite(steadyFrom) ? steadyFrom - run.startedAt : null,
    goodput: {
      allowed: r1(allowed),
      percentOfAllowed: r1((100 * run.ok) / allowed),
      steadyPerS: steadyS > 0 ? r1(steady.length / steadyS) : null,
      refillPerS: r1(refillPerS),
      steadyPercentOfRefill: steadyS > 0 ? r1((100 * steady.length) / steadyS / refillPerS) : null,
    },
    latencyMs: { steady: lat(steady.map((s) => s.ms)), all: lat(run.successes.map((s) => s.ms)) },
  };
}

async function main(): Promise<Record<string, unknown>> {
  const mode = process.env.BENCH_RATELIMIT ?? 'auto';
  if (mode === 'auto' && !controlPlaneBinariesAvailable()) {
    return { measured: false, reason: 'the control-plane binaries are not built (run `make controlplane` once, ~15 min on 2 cores, or set KUBEBUILDER_ASSETS)' };
  }
  const t = performance.now();
  const provider = await startRateLimitedProvider({ delayMs: 20 });
  const tokens = openaiRequestTokens(JSON.parse(body('x')));
  provider.limit(MODELS.free, LIMITS);
  provider.limit(MODELS.quota, LIMITS);
  const env = await startClusterEnv([NS]);
  current = env;
  const sidecars: SidecarProcess[] = [];
  let probe: ReturnType<typeof shareProbe> | undefined;
  try {
    rlog(`control plane + operator up in ${Math.round(performance.now() - t)} ms`);
    const target = (route: keyof typeof MODELS) => `[{ provider: openai-compatible, model: ${MODELS[route]}, baseURL: ${provider.url}/v1, credentials: { secretRef: { name: openai, key: ${route}-key } } }]`;
    await env.apply(`
apiVersion: v1
kind: Secret
metadata: { name: openai, namespace: ${NS} }
stringData: { free-key: sk-bench-free, quota-key: sk-bench-quota }
---
apiVersion: paygo.dev/v1alpha1
kind: ProviderQuota
metadata: { name: openai-quota, namespace: ${NS} }
spec:
  credentials: { secretRef: { name: openai, key: quota-key } }
  limits: { requestsPerMinute: ${LIMITS.requestsPerMinute}, tokensPerMinute: ${LIMITS.tokensPerMinute} }
---
apiVersion: paygo.dev/v1alpha1
kind: RateLimit
metadata: { name: probe, namespace: ${NS} }
spec: { scope: { podSelector: { matchLabels: { role: probe } } }, limits: { requestsPerMinute: 1 } }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: free, namespace: ${NS} }
spec: { model: free, targets: ${target('free')} }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: quota, namespace: ${NS} }
spec: { model: quota, targets: ${target('quota')} }
`);
    probe = shareProbe(env, await env.podWithToken(NS, 'probe', { role: 'probe' }), `rl/${NS}/probe`);
    const tokenFiles = await Promise.all(Array.from({ length: SIDECARS }, (_, i) => env.podWithToken(NS, `app-${i + 1}`, { app: 'bench' })));
    sidecars.push(...(await Promise.all(tokenFiles.map((f) => env.sidecarFor(f)))));
    await until(
      'both routes on every sidecar',
      () => Promise.all(sidecars.map((s) => fetch(`${s.url}/v1/models`).then((r) => r.json() as Promise<{ data: Array<{ id: string }> }>).catch(() => ({ data: [] })))),
      (all) => all.every((m) => m.data.some((d) => d.id === 'free') && m.data.some((d) => d.id === 'quota')),
      30_000,
    );
    rlog(`${SIDECARS} sidecars serving after ${Math.round(performance.now() - t)} ms; no quota: ${CLIENTS} clients each for ${RUN_MS} ms`);
    const free = await driveFleet(sidecars, { body: body('free'), ms: RUN_MS, clients: CLIENTS });
    const { ms: quietLeftMs } = await until('the operator grants shares (quiet period over)', () => probe!.share(), (share) => share > 0, 30_000);
    const atStart = await fleetRemaining(sidecars, 'provider', `${NS}/openai-quota`, 'requests');
    rlog(`quiet period over ${quietLeftMs} ms after the first run; the fleet's quota buckets hold ${atStart} requests; with the quota for ${RUN_MS} ms`);
    const quota = await driveFleet(sidecars, { body: body('quota'), ms: RUN_MS, clients: CLIENTS });
    const noQuota = summarise(free, provider.stats(MODELS.free), tokens);
    const withQuota = summarise(quota, provider.stats(MODELS.quota), tokens);
    return {
      measured: true,
      sidecars: SIDECARS,
      clientsPerSidecar: CLIENTS,
      runMs: RUN_MS,
      limits: LIMITS,
      tokensPerRequest: tokens,
      providerDelayMs: 20,
      quotaFleetBucketAtStart: { requests: atStart, of: LIMITS.requestsPerMinute },
      runs: { noQuota, withQuota },
      addedLatencySteadyMs: { p50: r1(withQuota.latencyMs.steady.p50 - noQuota.latencyMs.steady.p50), p99: r1(withQuota.latencyMs.steady.p99 - noQuota.latencyMs.steady.p99) },
      elapsedMs: Math.round(performance.now() - t),
    };
  } finally {
    await probe?.close().catch(() => undefined);
    await env.stop().catch((e: Error) => rlog(`stopping the cluster env: ${e.message}`));
    await provider.close();
  }
}

/** Set once the cluster is up, so a hard stop can still stop it. */
let current: ClusterEnv | undefined;
runBenchPart({ name: 'rate-limit', limitMs: LIMIT_MS, stopGraceMs: 10_000, main, cluster: () => current, stop: (env) => env.stop(), log: rlog });

