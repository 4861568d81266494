import { readFileSync } from 'node:fs';
import { Agent, fetch as undiciFetch } from 'undici';
import type { ClusterEnv } from './cluster-env.js';

/**
 * Load on a fleet of sidecars and what the fleet-wide rate limits look like from outside: the
 * e2e test (test/e2e/ratelimit.test.ts) and the bench (test/bench/ratelimit.ts) share it.
 */

export interface FleetRun {
  /** When the first request was sent (Date.now()). */
  startedAt: number;
  /** Wall time of the run: from the first request sent to the last answer. */
  ms: number;
  ok: number;
  /** Answers other than 200, by `<status> <error.code>` (`connect` when no answer came). */
  refused: Record<string, number>;
  /** Every 200: when it was answered (Date.now()) and how long it took (ms). */
  successes: Array<{ at: number; ms: number }>;
  /** When the first 429 was answered (Date.now()). */
  first429At?: number;
  /** The first 429 answer (headers and body), for the wire format. */
  sample429?: { headers: Record<string, string>; body: { error: { code: string; message: string; type: string } } };
}

/**
 * `clients` concurrent clients per sidecar, each sending `body` to /v1/chat/completions until
 * `ms` have passed (each request bounded to 15 s), backing off on an error as the OpenAI SDKs do
 * on 429: `retry-after-ms` (1 s without), with jitter, at most 1 s, so the load stays on.
 */
export async function driveFleet(sidecars: ReadonlyArray<{ url: string }>, o: { body: string; ms: number; clients: number }): Promise<FleetRun> {
  const start = Date.now();
  const run: FleetRun = { startedAt: start, ms: 0, ok: 0, refused: {}, successes: [] };
  const end = start + o.ms;
  const client = async (s: { url: string }) => {
    while (Date.now() < end) {
      const t0 = performance.now();
      const res = await fetch(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: o.body, signal: AbortSignal.timeout(15_000) }).catch(() => undefined);
      if (!res) {
        run.refused.connect = (run.refused.connect ?? 0) + 1;
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      const body = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string; type?: string } };
      if (res.status === 200) {
        run.ok++;
        run.successes.push({ at: Date.now(), ms: performance.now() - t0 });
        continue;
      }
      const key = `${res.status} ${body.error?.code}`;
      run.refused[key] = (run.refused[key] ?? 0) + 1;
      if (res.status === 429 && !run.sample429) {
        run.first429At = Date.now();
        run.sample429 = { headers: Object.fromEntries(res.headers), body: body as NonNullable<FleetRun['sample429']>['body'] };
      }
      const wait = Number(res.headers.get('retry-after-ms') ?? 1000);
      await new Promise((r) => setTimeout(r, Math.min(1000, Math.max(20, wait)) * (0.5 + Math.random() / 2)));
    }
  };
  await Promise.all(sidecars.flatMap((s) => Array.from({ length: o.clients }, () => client(s))));
  run.ms = Date.now() - start;
  return run;
}

/** Σ over the sidecars of paygo_ratelimit_remaining of one limit and resource; undefined while a sidecar does not have the limit. */
export async function fleetRemaining(sidecars: ReadonlyArray<{ metricsUrl: string }>, kind: 'provider' | 'consumer', limit: string, resource: string): Promise<number | undefined> {
  const series = `paygo_ratelimit_remaining{kind="${kind}",limit="${limit}",resource="${resource}",window="minute"} `;
  const texts = await Promise.all(sidecars.map((s) => fetch(s.metricsUrl).then((r) => r.text()).catch(() => '')));
  let sum = 0;
  for (const t of texts) {
    const line = t.split('\n').find((l) => l.startsWith(series));
    if (line === undefined) return undefined;
    sum += Number(line.slice(series.length));
  }
  return sum;
}

/**
 * A rate-limit share sync as a pod without a sidecar (its own RateLimit `key`, requestsPerMinute):
 * the share the operator answers. A started operator grants nothing for its quiet period (20 s,
 * operator/ratelimits.ts), so the first share > 0 says that it is over.
 */
export function shareProbe(env: ClusterEnv, tokenFile: string, key: string): { share(): Promise<number>; close(): Promise<void> } {
  const agent = new Agent({ connect: { ca: readFileSync(env.caFile, 'utf8') } });
  const token = readFileSync(tokenFile, 'utf8').trim();
  let seq = 0;
  return {
    async share() {
      const res = await undiciFetch(`https://127.0.0.1:${env.operatorPort}/v1/ratelimit/sync`, {
        method: 'POST',
        dispatcher: agent,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ boot: 'probe', seq: ++seq, entries: [{ key, field: 'requestsPerMinute', used: 0, demand: 1, keep: 0 }] }),
      });
      const answer = (await res.json()) as { entries?: Array<{ share: number }> };
      return answer.entries?.[0]?.share ?? 0;
    },
    close: () => agent.close(),
  };
}

/**
 * What per-minute limits allow over `ms` from a full bucket (capacity + refill), in requests that
 * each take 1 request and `tokens` tokens.
 */
export function allowedRequests(l: { requestsPerMinute: number; tokensPerMinute: number }, tokens: number, ms: number): number {
  const f = 1 + ms / 60_000;
  return Math.min(l.requestsPerMinute * f, (l.tokensPerMinute * f) / tokens);
}

export function percentileOf(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
}
