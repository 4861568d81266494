import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VariableModel } from '@grafana/grafana-foundation-sdk/dashboard';
import { buildDashboards, PERIOD_END_SECONDS, type BudgetPeriod } from '../../charts/paygo/dashboards/generate.js';
import { periodBounds } from '../../crds/src/period.js';
import { openaiResponder } from '../support/fake-openai.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { freePort, startSidecar, type SidecarProcess } from '../support/sidecar-process.js';
import { queriesOf, substitute, variablesIn, variablesOf } from './promql.js';

/**
 * Every PromQL expression of every generated dashboard, run against a real Prometheus (Debian's
 * `prometheus` package) that scrapes two real sidecars after a scripted load on simulate routes:
 * each query must succeed and return data (at least one finite value), as an instant query and,
 * for time-series panels, as a range query.
 */
const PROMETHEUS_BIN = '/usr/bin/prometheus';

// Two namespaces, seven routes, three budgets (one per period), a rate limit and a provider quota. Prices are USD per 1M tokens.
// throttled-chat calls a fake OpenAI whose rate-limit headers say its one request a minute is used (a provider backoff).
const CONFIG = (openaiUrl: string) => `
apiVersion: v1
kind: Secret
metadata: { name: openai, namespace: team-a }
stringData: { api-key: sk-dashboards }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: throttled-chat, namespace: team-a }
spec:
  model: throttled-chat
  retry: { attempts: 1 }
  targets:
    - { name: openai, provider: openai, model: gpt-4o-mini, baseURL: ${openaiUrl}/v1, credentials: { secretRef: { name: openai, key: api-key } }, pricing: { input: "0.15", output: "0.60" } }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: ab-chat, namespace: team-a }
spec:
  model: ab-chat
  strategy: weighted
  targets:
    - name: variant-a
      provider: simulate
      model: sim-large
      weight: 50
      simulate: { latencyMs: 15, ttftMs: 8, tokensPerSecond: 2000, outputTokens: 24 }
      pricing: { input: "2.50", output: "10.00" }
    - name: variant-b
      provider: simulate
      model: sim-small
      weight: 50
      simulate: { latencyMs: 5, ttftMs: 3, tokensPerSecond: 4000, outputTokens: 32 }
      pricing: { input: "0.15", output: "0.60" }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: local-chat, namespace: team-a }
spec:
  model: local-chat
  targets:
    - name: selfhosted
      provider: simulate
      model: sim-local
      simulate: { latencyMs: 5, ttftMs: 2, outputTokens: 8 }
  cache: { ttlSeconds: 600 }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: flaky-chat, namespace: team-b }
spec:
  model: flaky-chat
  strategy: fallback
  targets:
    - name: primary
      provider: simulate
      model: sim-primary
      simulate: { latencyMs: 5, ttftMs: 3, outputTokens: 16, errorRate: 0.5, errorStatus: 503, seed: 7 }
      pricing: { input: "1.00", output: "4.00" }
    - name: overflow
      provider: simulate
      model: sim-overflow
      simulate: { latencyMs: 5, ttftMs: 3, outputTokens: 16, errorRate: 0.3, errorStatus: 429, seed: 8 }
      pricing: { input: "3.00", output: "12.00" }
    - name: steady
      provider: simulate
      model: sim-steady
      simulate: { latencyMs: 10, ttftMs: 5, outputTokens: 16 }
      pricing: { input: "5.00", output: "15.00" }
  retry: { attempts: 2, initialBackoffMs: 1, maxBackoffMs: 5 }
  circuitBreaker: { consecutiveFailures: 100, cooldownMs: 1000 }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: capped-chat, namespace: team-b }
spec:
  model: capped-chat
  targets:
    - name: meter
      provider: simulate
      model: sim-pricey
      simulate: { latencyMs: 5, outputTokens: 16 }
      pricing: { input: "100.00", output: "100.00" }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: broken-chat, namespace: team-b }
spec:
  model: broken-chat
  targets:
    - name: dead
      provider: simulate
      model: sim-dead
      simulate: { latencyMs: 1, errorRate: 1, errorStatus: 500 }
      pricing: { input: "1.00", output: "1.00" }
  retry: { attempts: 1 }
  circuitBreaker: { consecutiveFailures: 2, cooldownMs: 600000 }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: limited-chat, namespace: team-a }
spec:
  model: limited-chat
  targets:
    - { name: first, provider: simulate, model: sim-first, simulate: { latencyMs: 2, outputTokens: 8 }, quota: { requestsPerMinute: 3 } }
    - { name: second, provider: simulate, model: sim-second, simulate: { latencyMs: 2, outputTokens: 8 } }
---
apiVersion: paygo.dev/v1alpha1
kind: RateLimit
metadata: { name: limited-per-minute, namespace: team-a }
spec:
  scope: { routes: [limited-chat] }
  limits: { requestsPerMinute: 5, tokensPerMinute: 100000 }
---
apiVersion: paygo.dev/v1alpha1
kind: Budget
metadata: { name: ab-monthly, namespace: team-a }
spec:
  scope: { routes: [ab-chat] }
  period: monthly
  limit: "50.00"
  action: block
  maxOutputTokensPerRequest: 64
---
apiVersion: paygo.dev/v1alpha1
kind: Budget
metadata: { name: capped-daily, namespace: team-b }
spec:
  scope: { routes: [capped-chat] }
  period: daily
  limit: "0.02"
  action: block
  maxOutputTokensPerRequest: 32
---
apiVersion: paygo.dev/v1alpha1
kind: Budget
metadata: { name: flaky-weekly, namespace: team-b }
spec:
  scope: { routes: [flaky-chat] }
  period: weekly
  limit: "0.0001"
  action: alert
`;

/** One wave per sidecar: [model, requests, of which streamed]. 6 waves × 2 sidecars × 27 = 324 requests. */
const WAVE: Array<[string, number, number]> = [
  ['ab-chat', 10, 5],
  ['flaky-chat', 8, 4],
  ['local-chat', 3, 1],
  ['capped-chat', 2, 1],
  ['broken-chat', 2, 1],
  // 12 per sidecar against 5 a minute: the rest are refused (429); the first target's quota of 3 fails over.
  ['limited-chat', 2, 1],
];
const WAVES = 6;
const WAVE_GAP_MS = 1_500;

/** Values Grafana would give its own variables on a 5-minute range scraped every second. */
const GRAFANA_VARIABLES: Record<string, string> = {
  __rate_interval: '1m',
  __interval: '15s',
  __interval_ms: '15000',
  __range: '5m',
  __range_s: '300',
  __range_ms: '300000',
};

interface Prometheus {
  url: string;
  child: ChildProcess;
  dir: string;
  stderr(): string;
}

interface PromResponse {
  status: string;
  error?: string;
  data?: { resultType: string; result: unknown };
}

let sidecars: SidecarProcess[] = [];
let openai: FakeUpstream | undefined;
let prom: Prometheus | undefined;
/** The evaluation time of every query (seconds), once Prometheus has scraped the whole load. */
let evalTime = 0;
const statuses = new Map<number, number>();

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}${prom ? `\nprometheus stderr:\n${prom.stderr().slice(-2000)}` : ''}`);
    await sleep(250);
  }
}

async function startPrometheus(metricsUrls: string[]): Promise<Prometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'paygo-prometheus-'));
  const targets = metricsUrls.map((u) => `'${new URL(u).host}'`).join(', ');
  writeFileSync(
    join(dir, 'prometheus.yml'),
    `global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: paygo-sidecar
    metrics_path: /metrics
    static_configs: [{ targets: [${targets}] }]
`,
  );
  const port = await freePort();
  const child = spawn(
    PROMETHEUS_BIN,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      '--storage.tsdb.retention.time=1h',
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const p: Prometheus = { url: `http://127.0.0.1:${port}`, child, dir, stderr: () => stderr };
  prom = p;
  await waitFor('prometheus to be ready', 30_000, async () => {
    if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}`);
    return (await fetch(`${p.url}/-/ready`)).ok ? true : undefined;
  });
  return p;
}

/** Queries go as POST forms (long expressions); the label values endpoint takes GET only. */
async function promApi(path: string, params: Record<string, string | string[]>, method: 'GET' | 'POST' = 'POST'): Promise<PromResponse> {
  const form = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const x of Array.isArray(v) ? v : [v]) form.append(k, x);
  const res =
    method === 'POST'
      ? await fetch(`${prom!.url}${path}`, { method, body: form, signal: AbortSignal.timeout(10_000) })
      : await fetch(`${prom!.url}${path}?${form}`, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  try {
    return JSON.parse(text) as PromResponse;
  } catch {
    return { status: 'error', error: `HTTP ${res.status}: ${text.slice(0, 200)}` };
  }
}

const instant = (query: string, time = evalTime) => promApi('/api/v1/query', { query, time: time.toFixed(3) });

/** The sample values of an instant or range result (vector, matrix or scalar). */
function values(r: PromResponse): number[] {
  const result = r.data?.result;
  if (r.data?.resultType === 'scalar') return [Number((result as [number, string])[1])];
  return ((result ?? []) as Array<{ value?: [number, string]; values?: Array<[number, string]> }>).flatMap((s) => (s.value ? [s.value] : (s.values ?? [])).map((v) => Number(v[1])));
}

async function scalarNow(query: string): Promise<number | undefined> {
  const r = await promApi('/api/v1/query', { query });
  const v = values(r);
  return r.status === 'success' && v.length === 1 ? v[0] : undefined;
}

async function chat(s: SidecarProcess, model: string, stream: boolean): Promise<void> {
  const res = await fetch(`${s.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model,
      stream,
      ...(stream ? { stream_options: { include_usage: true } } : {}),
      messages: [{ role: 'user', content: 'Hello, dashboards!' }],
    }),
    signal: AbortSignal.timeout(15_000),
  });
  await res.text();
  statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
}

/** Sum of a counter's samples in a sidecar's own /metrics text. */
async function counterSum(s: SidecarProcess, name: string): Promise<number> {
  const text = await (await fetch(s.metricsUrl)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/** Each custom variable's option values; query variables are "All" (.*). */
function variableChoices(vars: VariableModel[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const v of vars) {
    if (v.type === 'query') out[v.name] = [v.allValue ?? '.*'];
    else if (v.type === 'custom') out[v.name] = (v.options ?? []).map((o) => String(o.value));
  }
  return out;
}

/** Every expansion of an expression over the options of the custom variables it uses. */
function expansions(expr: string, choices: Record<string, string[]>): string[] {
  let variants: Array<Record<string, string>> = [{ ...GRAFANA_VARIABLES }];
  for (const name of variablesIn(expr)) {
    const options = choices[name];
    if (!options) continue;
    variants = variants.flatMap((v) => options.map((o) => ({ ...v, [name]: o })));
  }
  return variants.map((v) => substitute(expr, v));
}

beforeAll(async () => {
  if (!existsSync(PROMETHEUS_BIN)) {
    throw new Error(`${PROMETHEUS_BIN} is missing: install Debian's prometheus package with \`make tools\` (or apt-get install prometheus)`);
  }
  openai = await startFakeUpstream(openaiResponder({ rateLimit: () => ({ requests: { limit: 1, remaining: 0, resetMs: 60_000 }, tokens: { limit: 200_000, remaining: 199_000, resetMs: 300 } }) }));
  const config = CONFIG(openai.url);
  sidecars = await Promise.all([startSidecar(config, { args: ['--seed', '1'] }), startSidecar(config, { args: ['--seed', '2'] })]);
  await startPrometheus(sidecars.map((s) => s.metricsUrl));
  await waitFor('prometheus to scrape both sidecars', 30_000, async () => ((await scalarNow('sum(up{job="paygo-sidecar"})')) === 2 ? true : undefined));

  // Scripted load, in waves so that rates and histograms span several scrapes.
  for (let w = 0; w < WAVES; w++) {
    if (w > 0) await sleep(WAVE_GAP_MS);
    await Promise.all(sidecars.flatMap((s) => WAVE.flatMap(([model, n, streamed]) => Array.from({ length: n }, (_, i) => chat(s, model, i < streamed)))));
  }
  // Last, so the minute the provider asks for outlasts the queries: the answer's headers hold the
  // key back (paygo_ratelimit_provider_backoff_seconds), and the next request is refused here.
  for (const s of sidecars) for (const stream of [true, false]) await chat(s, 'throttled-chat', stream);

  // Wait until Prometheus holds the sidecars' final request totals, then fix the query time.
  // (Requests a budget or a rate limit refuses are not in paygo_requests_total, so this is less than 324.)
  const total = (await Promise.all(sidecars.map((s) => counterSum(s, 'paygo_requests_total')))).reduce((a, b) => a + b, 0);
  expect(total).toBeGreaterThan(200);
  await waitFor(`prometheus to scrape all ${total} requests`, 20_000, async () => ((await scalarNow('sum(paygo_requests_total)')) === total ? true : undefined));
  evalTime = Date.now() / 1000;
}, 150_000);

afterAll(async () => {
  if (prom) {
    const { child, dir } = prom;
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
    rmSync(dir, { recursive: true, force: true });
  }
  await Promise.all(sidecars.map((s) => s.stop()));
  await openai?.close();
}, 30_000);

describe('the scripted load', () => {
  it('produced successes, budget refusals and upstream failures', () => {
    expect(statuses.get(200) ?? 0).toBeGreaterThan(200);
    expect(statuses.get(429) ?? 0, 'capped-daily and limited-per-minute refusals').toBeGreaterThan(0);
    expect((statuses.get(502) ?? 0) + (statuses.get(503) ?? 0), 'broken-chat failures').toBeGreaterThan(0);
  });

  it('PERIOD_END_SECONDS (the forecast horizons) agree with the sidecar\'s own UTC period ends', async () => {
    const t = Math.floor(evalTime);
    for (const period of ['daily', 'weekly', 'monthly'] as BudgetPeriod[]) {
      const r = await instant(PERIOD_END_SECONDS[period], t);
      expect(r.status, `${period}: ${r.error}`).toBe('success');
      const end = periodBounds(period, 'UTC', new Date(t * 1000)).end.getTime() / 1000;
      expect(values(r)[0], period).toBe(end - t);
    }
  });
});

for (const { file, dashboard } of buildDashboards()) {
  const choices = variableChoices(variablesOf(dashboard));

  describe(`${file}: every query returns data from Prometheus`, () => {
    for (const q of queriesOf(dashboard)) {
      it(`${q.panel} [${q.refId}]`, async () => {
        for (const expr of expansions(q.expr, choices)) {
          const r = await instant(expr);
          expect(r.status, `${expr}\n${r.error}`).toBe('success');
          const v = values(r);
          expect(v.length, `no data: ${expr}`).toBeGreaterThan(0);
          expect(v.some(Number.isFinite), `only NaN/Inf: ${expr} → ${JSON.stringify(r.data?.result)}`).toBe(true);
          if (!q.instant) {
            // As Grafana runs a time-series panel: a range query over the last minute.
            const rr = await promApi('/api/v1/query_range', { query: expr, start: (evalTime - 60).toFixed(3), end: evalTime.toFixed(3), step: '5' });
            expect(rr.status, `range: ${expr}\n${rr.error}`).toBe('success');
            expect(values(rr).some(Number.isFinite), `range, no data: ${expr}`).toBe(true);
          }
        }
      });
    }

    it('template variables resolve to values, and queries still evaluate with a real value picked', async () => {
      const picked: Record<string, string> = {};
      for (const v of variablesOf(dashboard)) {
        if (v.type !== 'query') continue;
        const m = /^label_values\((.+),\s*(\w+)\)$/.exec(v.definition ?? '');
        expect(m, `$${v.name}: ${v.definition}`).not.toBeNull();
        const selector = substitute(m![1]!, picked);
        const r = await promApi(`/api/v1/label/${m![2]}/values`, { 'match[]': selector, start: (evalTime - 300).toFixed(3), end: evalTime.toFixed(3) }, 'GET');
        expect(r.status, `$${v.name}: ${r.error}`).toBe('success');
        const found = (r.data ?? []) as unknown as string[]; // this endpoint's data is the list itself
        expect(found.length, `$${v.name}: label_values found nothing`).toBeGreaterThan(0);
        // As Grafana formats a regex value for Prometheus: metacharacters escaped inside a PromQL string.
        picked[v.name] = found[0]!.replace(/[.*+?^${}()|[\]\\]/g, '\\\\$&');
      }
      for (const [name, options] of Object.entries(choices)) if (!(name in picked)) picked[name] = options[0]!;
      for (const q of queriesOf(dashboard)) {
        const r = await instant(substitute(q.expr, { ...GRAFANA_VARIABLES, ...picked }));
        expect(r.status, `${q.panel} with ${JSON.stringify(picked)}: ${r.error}`).toBe('success');
      }
    });
  });
}
