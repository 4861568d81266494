/**
 * c=1 latency client, in its own process: one keep-alive connection (undici Pool, 1 connection),
 * requests strictly one after another, each timed with process.hrtime.bigint(): time to the
 * first body byte (TTFB) and to the end of the body (total). Warm-up requests are not counted.
 * Bounded by a request count and a time budget, whichever comes first.
 *
 * Usage: node hrtime-client.js '{"url":…,"body":…,"headers":{…},"n":2000,"warmup":200,"timeMs":8000}'
 * Prints one JSON line: { n, failures, statuses, totalUs: {p50,p90,p99,max,mean}, ttfbUs: {…}, bytes }.
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

async function main(): Promise<void> {
  const a = JSON.parse(process.argv[2] ?? '{}') as Args;
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
