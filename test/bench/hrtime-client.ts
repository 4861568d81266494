/**
 * c=1 latency client, in its own process: one keep-alive connection (undici Pool, 1 connection),
 * requests strictly one after another, each timed with process.hrtime.bigint(): time to the
 * first body byte (TTFB) and to the end of the body (total). Warm-up requests are not counted.
 * Bounded by a request count and a time budget, whichever comes first.
 *
 * Usage: node hrtime-client.js '{"url":…,"body":…,"headers":{…},"n":2000,"warmup":200,"timeMs":8000}'
 * Prints one JSON line: { n, failures, statuses, totalUs: {p50,p90,p99,max,mean}, ttfbUs: {…}, bytes }.
 *
 * Paced mode ({"paced":{…}}, see PacedArgs): stream TTFB at a model's pace. The upstream sends a
 * stream's first event at once and the next ones gapMs apart. Per gap, each target in turn gets
 * its streams one after another (as a client streaming from one model does: the proxy idles
 * gapMs before every event, which is what the gap is about; interleaving request by request would
 * let the other targets' streams set that idle time instead), after 2 warm-up streams. A stream
 * lasts (writes - 1) × gapMs, so long gaps run lanes (concurrent streams, each on its own
 * connection) to bound the time: at 100 ms, 5 of them (pacedLanes), started so that the proxy still
 * sees an event only every 20 ms and never two at once (from 20 ms apart on the added TTFB no longer
 * grew: measured 2026-12-05). Prints one JSON line: PacedResult.
 */
import { Pool } from 'undici';
import { percentile } from './lib.js';

interface Args {
  url: string;
  body: string;
  headers?: Record<string, string>;
  n: number;
  warmup: number;
  timeMs: number;
}

export interface Dist {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}
export interface HrtimeResult {
  n: number;
  failures: number;
  statuses: Record<string, number>;
  totalUs: Dist;
  ttfbUs: Dist;
  bytes: number;
  elapsedMs: number;
}

export function dist(xs: number[]): Dist {
  const r = (x: number) => Math.round(x * 10) / 10;
  const q = (p: number) => r(percentile(xs, p));
  return { p50: q(0.5), p90: q(0.9), p99: q(0.99), max: q(1), mean: r(xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN) };
}

export interface PacedTarget {
  name: string;
  /** Per gap (ms, as a string key): the URL and body of a stream paced at that gap. */
  requests: Record<string, { url: string; body: string }>;
  headers?: Record<string, string>;
}
export interface PacedArgs {
  targets: PacedTarget[];
  gapsMs: number[];
  /** Streams per target and gap (fewer if timeMsPerGap runs out), after 2 warm-up streams. */
  n: number;
  /** Writes of one paced stream (lib.ts PACED_WRITES): the stream lasts (writes - 1) × gap. */
  writes: number;
  /** Time per gap, all targets together (each target gets its share). */
  timeMsPerGap: number;
  /** Lanes at most. */
  maxLanes: number;
}
export interface PacedResult {
  /** gap (ms) → target → TTFB and total distributions. */
  byGap: Record<string, Record<string, { n: number; failures: number; ttfbUs: Dist; totalUs: Dist }>>;
  lanes: Record<string, number>;
  elapsedMs: number;
}

const gcd = (x: number, y: number): number => (y ? gcd(y, x % y) : x);

/**
 * Lanes for a gap: one per 20 ms of gap, coprime with the gaps in a stream (writes - 1), so that
 * lanes started (writes - 1) × gap / L apart never put two events at once (they fall ≥ 20 ms apart).
 */
export function pacedLanes(gapMs: number, writes: number, maxLanes: number): number {
  let L = Math.max(1, Math.min(maxLanes, Math.floor(gapMs / 20)));
  while (L > 1 && gcd(L, writes - 1) !== 1) L--;
  return L;
}

async function paced(a: PacedArgs): Promise<PacedResult> {
  const started = Date.now();
  const one = async (pool: Pool, t: PacedTarget, gap: number) => {
    const r = t.requests[String(gap)]!;
    const u = new URL(r.url);
    const t0 = process.hrtime.bigint();
    let first = 0n;
    const res = await pool.request({ path: u.pathname + u.search, method: 'POST', headers: { 'content-type': 'application/json', ...t.headers }, body: r.body, headersTimeout: 10_000, bodyTimeout: 10_000 });
    for await (const c of res.body) if (first === 0n && (c as Buffer).length > 0) first = process.hrtime.bigint();
    const t1 = process.hrtime.bigint();
    return { status: res.statusCode, ttfbUs: Number((first || t1) - t0) / 1000, totalUs: Number(t1 - t0) / 1000 };
  };
  // Settle: the processes measured before (c=32 load) may still be collecting garbage; then a few
  // streams per target (not measured) so that whichever block comes first is not the one that pays.
  await new Promise((r) => setTimeout(r, 1000));
  const shortest = Math.min(...a.gapsMs);
  for (const t of a.targets) {
    const pool = new Pool(new URL(t.requests[String(shortest)]!.url).origin, { connections: 1 });
    for (let w = 0; w < 5; w++) await one(pool, t, shortest).catch(() => undefined);
    await pool.close();
  }
  const byGap: PacedResult['byGap'] = {};
  const lanes: Record<string, number> = {};
  for (const gap of a.gapsMs) {
    const L = pacedLanes(gap, a.writes, a.maxLanes);
    lanes[gap] = L;
    byGap[gap] = {};
    for (const t of a.targets) {
      const deadline = Date.now() + a.timeMsPerGap / a.targets.length;
      const pools = Array.from({ length: L }, () => new Pool(new URL(t.requests[String(gap)]!.url).origin, { connections: 1, pipelining: 1, keepAliveTimeout: 60_000 }));
      const ttfb: number[] = [];
      const total: number[] = [];
      let failures = 0;
      let next = 0;
      const lane = async (l: number) => {
        await new Promise((r) => setTimeout(r, (l * (a.writes - 1) * gap) / L));
        // Warm-up: the connection, and the proxy's code after this target's idle time.
        for (let w = 0; w < 2; w++) await one(pools[l]!, t, gap).catch(() => undefined);
        while (Date.now() < deadline && next < a.n) {
          next++;
          try {
            const r = await one(pools[l]!, t, gap);
            if (r.status !== 200) failures++;
            else {
              ttfb.push(r.ttfbUs);
              total.push(r.totalUs);
            }
          } catch {
            failures++;
          }
        }
      };
      await Promise.all(pools.map((_, l) => lane(l)));
      await Promise.all(pools.map((p) => p.close()));
      byGap[gap]![t.name] = { n: ttfb.length, failures, ttfbUs: dist(ttfb), totalUs: dist(total) };
    }
  }
  return { byGap, lanes, elapsedMs: Date.now() - started };
}

async function main(): Promise<void> {
  const parsed = JSON.parse(process.argv[2] ?? '{}') as Args | { paced: PacedArgs };
  if ('paced' in parsed) {
    process.stdout.write(JSON.stringify(await paced(parsed.paced)) + '\n');
    return;
  }
  const a = parsed;
  const u = new URL(a.url);
  const pool = new Pool(u.origin, { connections: 1, pipelining: 1, keepAliveTimeout: 60_000 });
  const body = Buffer.from(a.body);
  const headers = { 'content-type': 'application/json', ...a.headers };
  const total: number[] = [];
  const ttfb: number[] = [];
  const statuses: Record<string, number> = {};
  let failures = 0;
  let bytes = 0;
  const one = async (record: boolean) => {
    const t0 = process.hrtime.bigint();
    let first = 0n;
    try {
      const res = await pool.request({ path: u.pathname + u.search, method: 'POST', headers, body, headersTimeout: 10_000, bodyTimeout: 10_000 });
      let n = 0;
      for await (const c of res.body) {
        if (first === 0n) first = process.hrtime.bigint();
        n += (c as Buffer).length;
      }
      const t1 = process.hrtime.bigint();
      if (!record) return;
      statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
      if (res.statusCode !== 200) {
        failures++;
        return;
      }
      bytes += n;
      total.push(Number(t1 - t0) / 1000);
      ttfb.push(Number((first || t1) - t0) / 1000);
    } catch (err) {
      if (record) {
        failures++;
        statuses[(err as { code?: string }).code ?? 'error'] = (statuses[(err as { code?: string }).code ?? 'error'] ?? 0) + 1;
      }
    }
  };
  const start = Date.now();
  const deadline = start + a.timeMs;
  for (let i = 0; i < a.warmup && Date.now() < deadline; i++) await one(false);
  for (let i = 0; i < a.n && Date.now() < deadline; i++) await one(true);
  await pool.close();
  const out: HrtimeResult = { n: total.length, failures, statuses, totalUs: dist(total), ttfbUs: dist(ttfb), bytes, elapsedMs: Date.now() - start };
  process.stdout.write(JSON.stringify(out) + '\n');
}

if (process.argv[1]?.endsWith('hrtime-client.js')) {
  main().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`hrtime-client: ${(err as Error).stack}\n`);
      process.exit(1);
    },
  );
}
