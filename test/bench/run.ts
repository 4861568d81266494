/**
 * `make bench`: what the paygo sidecar costs on the request path, next to peers, on one machine.
 *
 * Every process runs on 127.0.0.1: the fake upstream (upstream.ts), the proxies (nginx, Portkey,
 * a bare Node.js proxy as the floor, the paygo sidecar), autocannon (c=32) and the hrtime client
 * (c=1) each in their own process. Targets are measured interleaved (A B C D …, A B C D …) and
 * medians over rounds are reported, so drift and noise from other load show up as spread
 * between rounds instead of as a bias against one target. Then the config-propagation bench
 * (propagation.ts) and the rate-limit bench (ratelimit.ts) run against a real kube-apiserver
 * when its binaries are available.
 *
 * Writes test/bench/results/latest.json and latest.md. Bounded: every loop has a count and a
 * time limit, the whole run a hard limit; every process started is stopped, also on failure.
 *
 * Environment (all optional): BENCH_ROUNDS (3), BENCH_DURATION_S (5, autocannon per target and
 * round), BENCH_C1_N (2000), BENCH_STREAM_N (500), BENCH_TARGETS (comma list, default all),
 * BENCH_PROPAGATION (auto | 0 | 1), BENCH_OUT (results file stem, default "latest"),
 * BENCH_SIDECAR_NODE_FLAGS (default: the flags of the sidecar image's ENTRYPOINT; a baseline's
 * are those of its own Dockerfile),
 * BENCH_BASELINE (a checkout with dist/ built, e.g. by `make bench BASELINE=<git ref>`: its sidecar
 * runs beside this one as target "paygo-baseline", for before/after in the same run) and
 * BENCH_BASELINE_REF (what to call it in the results), BENCH_PACED_GAPS (1,5,20,100: the stream
 * TTFB rows at a model's pace, ms between events; empty: none), BENCH_PACED_N (30 streams per
 * target, gap and round), BENCH_PACED_ONLY (1: only those rows, after the warm-up),
 * BENCH_RATELIMIT (auto | 0 | 1), BENCH_RATELIMIT_ONLY (1: only the rate-limit bench).
 */
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { freePort } from '../support/sidecar-process.js';
import type { HrtimeResult, PacedArgs, PacedResult } from './hrtime-client.js';
import { FLAKY_EVERY, PACED_WRITES, ROOT, childPids, cpuUs, killAll, log, mb, median, memSampler, procMem, run, sleep, spawnTracked, stopAll, waitForStdout, waitHttp, type ProcMem } from './lib.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 5);
const C1_N = Number(process.env.BENCH_C1_N ?? 2000);
const STREAM_N = Number(process.env.BENCH_STREAM_N ?? 500);
const ONLY = process.env.BENCH_TARGETS ? new Set(process.env.BENCH_TARGETS.split(',')) : undefined;
const PROPAGATION = process.env.BENCH_PROPAGATION ?? 'auto';
const OUT = process.env.BENCH_OUT ?? 'latest';
const BASELINE = process.env.BENCH_BASELINE;
const BASELINE_REF = process.env.BENCH_BASELINE_REF ?? BASELINE;
/** Stream TTFB at a model's pace: the upstream's first event at once, the next ones this many ms apart. */
const PACED_GAPS_MS = (process.env.BENCH_PACED_GAPS ?? '1,5,20,100').split(',').filter(Boolean).map(Number);
const PACED_N = Number(process.env.BENCH_PACED_N ?? 30);
const PACED_ONLY = process.env.BENCH_PACED_ONLY === '1';
const RATELIMIT = process.env.BENCH_RATELIMIT ?? 'auto';
const RATELIMIT_ONLY = process.env.BENCH_RATELIMIT_ONLY === '1';
/** Per gap and round, all paced targets together: at most 4 × 15 s per round. */
const PACED_TIME_MS_PER_GAP = 15_000;
/** c=1 phases: count-bounded, and at most this long each (Portkey's streams take >25 ms each). */
const C1_TIME_MS = 6_000;
const HARD_LIMIT_MS = 9.5 * 60_000;
const PROPAGATION_LIMIT_MS = 4.5 * 60_000;
/**
 * The rate-limit bench takes ≈ 45 s and runs last: its own limit is what is left before the hard
 * limit less 15 s (at most RATELIMIT_LIMIT_MS), and it is skipped when that is under RATELIMIT_MIN_MS.
 */
const RATELIMIT_LIMIT_MS = 90_000;
const RATELIMIT_MIN_MS = 45_000;

const HERE = join(ROOT, 'test/bench');
const DIST = join(ROOT, 'dist/test/bench');
const AUTOCANNON = join(ROOT, 'node_modules/autocannon/autocannon.js');
const PORTKEY = join(ROOT, 'node_modules/@portkey-ai/gateway/build/start-server.js');
const SIDECAR = join(ROOT, 'dist/sidecar/main.js');
const NODE = process.execPath;
/** vite-node (vitest's runner) runs propagation.ts from source, as vitest runs the tests (see propagation.ts). */
const VITE_NODE = join(ROOT, 'node_modules/vite-node/vite-node.mjs');

const chatBody = (model: string, stream = false) =>
  JSON.stringify({ model, messages: [{ role: 'user', content: 'hello from the bench' }], max_tokens: 16, ...(stream ? { stream: true } : {}) });

/** The client APIs a target is called with: the same question in each API's request shape. */
type Api = 'chat' | 'responses' | 'messages';
const API_PATH: Record<Api, string> = { chat: '/v1/chat/completions', responses: '/v1/responses', messages: '/v1/messages' };
/** What a complete stream of each API ends with. */
const STREAM_END: Record<Api, string> = { chat: '[DONE]', responses: 'response.completed', messages: 'message_stop' };
function requestBody(api: Api, model: string, stream = false): string {
  if (api === 'responses') return JSON.stringify({ model, input: 'hello from the bench', max_output_tokens: 16, ...(stream ? { stream: true } : {}) });
  if (api === 'messages') return JSON.stringify({ model, max_tokens: 16, messages: [{ role: 'user', content: 'hello from the bench' }], ...(stream ? { stream: true } : {}) });
  return chatBody(model, stream);
}
const urlOf = (t: Target) => `${t.url}${API_PATH[t.api ?? 'chat']}`;
const bodyOf = (t: Target, stream = false) => requestBody(t.api ?? 'chat', t.model, stream);

// ------------------------------------------------------------------ the processes under test
async function startUpstream(): Promise<{ port: number; child: ChildProcess }> {
  const child = spawnTracked(NODE, [join(DIST, 'upstream.js')]);
  const m = await waitForStdout(child, /\{"port":(\d+)\}/, 10_000, 'upstream');
  return { port: Number(m[1]), child };
}

async function upstreamCount(port: number): Promise<{ count: number; byPrefix: Record<string, number> }> {
  const r = await fetch(`http://127.0.0.1:${port}/__count`, { signal: AbortSignal.timeout(5000) });
  return (await r.json()) as { count: number; byPrefix: Record<string, number> };
}

function nginxBin(): string | undefined {
  return ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx', '/usr/local/bin/nginx'].find((p) => existsSync(p));
}

async function startNginx(upPort: number): Promise<{ port: number; child: ChildProcess; version: string }> {
  const bin = nginxBin();
  if (!bin) throw new Error('nginx is not installed (test/bench/install-tools.sh installs it)');
  const dir = mkdtempSync(join(tmpdir(), 'paygo-bench-nginx-'));
  const port = await freePort();
  const conf = readFileSync(join(HERE, 'nginx.conf.tmpl'), 'utf8').replaceAll('{{DIR}}', dir).replaceAll('{{PORT}}', String(port)).replaceAll('{{UPSTREAM_PORT}}', String(upPort));
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child = spawnTracked(bin, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')]);
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  await waitHttp(`http://127.0.0.1:${port}/__count`, 10_000).catch((e: Error) => {
    throw new Error(`${e.message}; nginx: ${err}`);
  });
  const v = await run(bin, ['-v'], 5000);
  return { port, child, version: (v.stderr.trim().split('/')[1] ?? '?').trim() };
}

async function startPortkey(upPort: number): Promise<{ port: number; child: ChildProcess; headers: Record<string, string>; version: string }> {
  if (!existsSync(PORTKEY)) throw new Error('@portkey-ai/gateway is not installed (npm ci)');
  const port = await freePort();
  const child = spawnTracked(NODE, [PORTKEY, `--port=${port}`, '--headless'], { env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production' } });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
  child.stdout!.resume();
  await waitHttp(`http://127.0.0.1:${port}/`, 20_000).catch((e: Error) => {
    throw new Error(`${e.message}; portkey: ${err}`);
  });
  const version = (JSON.parse(readFileSync(join(ROOT, 'node_modules/@portkey-ai/gateway/package.json'), 'utf8')) as { version: string }).version;
  // Portkey's OpenAI provider with a custom host: the same upstream, the same OpenAI wire.
  const headers = { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `http://127.0.0.1:${upPort}/v1`, authorization: 'Bearer sk-bench' };
  return { port, child, headers, version };
}

async function startNodeProxy(upPort: number): Promise<{ port: number; child: ChildProcess }> {
  const child = spawnTracked(NODE, [join(DIST, 'node-proxy.js'), String(upPort)]);
  const m = await waitForStdout(child, /\{"port":(\d+)\}/, 10_000, 'node-proxy');
  return { port: Number(m[1]), child };
}

/**
 * Node flags of the sidecar image's ENTRYPOINT (sidecar/Dockerfile of the checkout at `root`), so
 * the bench runs what ships, and a baseline what shipped then.
 */
function imageNodeFlags(root: string): string[] {
  if (process.env.BENCH_SIDECAR_NODE_FLAGS !== undefined) return process.env.BENCH_SIDECAR_NODE_FLAGS.split(/\s+/).filter(Boolean);
  try {
    const m = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(readFileSync(join(root, 'sidecar/Dockerfile'), 'utf8'));
    const argv = m ? (JSON.parse(m[1]!) as string[]) : [];
    return argv.slice(1).filter((a) => a.startsWith('--'));
  } catch {
    return [];
  }
}

function sidecarConfig(upPort: number): string {
  const up = `http://127.0.0.1:${upPort}`;
  const secret = `credentials: { secretRef: { name: bench, key: api-key } }`;
  return `apiVersion: v1
kind: Secret
metadata: { name: bench }
stringData: { api-key: sk-bench }
---
# The main route: one OpenAI-compatible target, priced from the catalog (gpt-4o-mini).
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: bench }
spec:
  model: bench
  targets:
    - { name: up, provider: openai-compatible, model: gpt-4o-mini, baseURL: ${up}/v1, ${secret} }
---
# Translation cost: OpenAI wire in, Anthropic Messages API out and back.
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: bench-anthropic }
spec:
  model: bench-anthropic
  targets:
    - { name: claude, provider: anthropic, model: claude-3-5-haiku-latest, baseURL: ${up}, ${secret} }
---
# Failover cost: the first of three targets answers 500 (${FLAKY_EVERY - 1} of every ${FLAKY_EVERY} requests, so its
# circuit breaker never opens and every request really tries it first); one attempt per target, no backoff.
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: bench-failover }
spec:
  model: bench-failover
  strategy: fallback
  targets:
    - { name: first, provider: openai-compatible, model: gpt-4o-mini, baseURL: ${up}/flaky/v1, ${secret} }
    - { name: second, provider: openai-compatible, model: gpt-4o-mini, baseURL: ${up}/v1, ${secret} }
    - { name: third, provider: openai-compatible, model: gpt-4o-mini, baseURL: ${up}/v1, ${secret} }
  retry: { attempts: 1 }
  circuitBreaker: { consecutiveFailures: 1000, cooldownMs: 1000 }
${PACED_GAPS_MS.map(
  (g) => `---
# Stream TTFB at a model's pace: the same two targets, the upstream's events ${g} ms apart after the first.
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: bench-paced-${g} }
spec:
  model: bench-paced-${g}
  targets:
    - { name: up, provider: openai-compatible, model: gpt-4o-mini, baseURL: ${up}/paced/${g}/v1, ${secret} }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: bench-anthropic-paced-${g} }
spec:
  model: bench-anthropic-paced-${g}
  targets:
    - { name: claude, provider: anthropic, model: claude-3-5-haiku-latest, baseURL: ${up}/paced/${g}, ${secret} }
`,
).join('')}`;
}

interface Sidecar {
  url: string;
  metricsUrl: string;
  child: ChildProcess;
  logPath: string;
  flags: string[];
}
async function startOtlpSink(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawnTracked(NODE, [join(DIST, 'otlp-sink.js')]);
  const m = await waitForStdout(child, /\{"port":(\d+)\}/, 10_000, 'otlp-sink');
  return { url: `http://127.0.0.1:${m[1]}`, child };
}

/** The built sidecar as a pod runs it: default log level (usage lines on stdout, here a file), metrics on; `args` adds options (e.g. --otlp-endpoint). */
async function startSidecar(upPort: number, root = ROOT, args: string[] = []): Promise<Sidecar> {
  const sidecarMain = root === ROOT ? SIDECAR : join(root, 'dist/sidecar/main.js');
  const dir = mkdtempSync(join(tmpdir(), 'paygo-bench-sidecar-'));
  // The config in a directory of its own, as a mounted ConfigMap is: the sidecar watches the
  // config's directory, and a log file written next to it would wake it on every write.
  mkdirSync(join(dir, 'config'));
  writeFileSync(join(dir, 'config/config.yaml'), sidecarConfig(upPort));
  const port = await freePort();
  const metricsPort = await freePort();
  const logPath = join(dir, 'stdout.log');
  const fd = openSync(logPath, 'w');
  const flags = imageNodeFlags(root);
  const child = spawnTracked(
    NODE,
    [...flags, sidecarMain, '--config', join(dir, 'config/config.yaml'), '--port', String(port), '--metrics-port', String(metricsPort), '--metrics-host', '127.0.0.1', '--state-dir', join(dir, 'state'), ...args],
    { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', fd, 'pipe'] },
  );
  closeSync(fd);
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`sidecar exited with ${child.exitCode}: ${err} ${readFileSync(logPath, 'utf8').slice(-2000)}`);
    const ok = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`sidecar not ready after 20 s: ${err}`);
    await sleep(50);
  }
  return { url, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, child, logPath, flags };
}

// ------------------------------------------------------------------ load generators
interface C32 {
  rps: number;
  requests: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
}
/** autocannon in its own process, c=32 keep-alive connections for durationS (hard-bounded). */
async function autocannon(url: string, body: string, headers: Record<string, string>, durationS: number, connections = 32): Promise<C32> {
  const args = [AUTOCANNON, '-c', String(connections), '-d', String(durationS), '-m', 'POST', '-b', body, '-j', '-H', 'content-type=application/json'];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}=${v}`);
  args.push(url);
  const r = await run(NODE, args, durationS * 1000 + 30_000);
  if (r.code !== 0) throw new Error(`autocannon failed (${r.code}${r.timedOut ? ', timed out' : ''}): ${r.stderr.slice(-500)}`);
  const j = JSON.parse(r.stdout) as { requests: { average: number; total: number }; latency: { p50: number; p99: number }; non2xx: number; errors: number };
  return { rps: j.requests.average, requests: j.requests.total, p50Ms: j.latency.p50, p99Ms: j.latency.p99, non2xx: j.non2xx, errors: j.errors };
}

async function hrtime(url: string, body: string, headers: Record<string, string>, n: number): Promise<HrtimeResult> {
  const arg = JSON.stringify({ url, body, headers, n, warmup: Math.min(200, Math.ceil(n / 10)), timeMs: C1_TIME_MS });
  const r = await run(NODE, [join(DIST, 'hrtime-client.js'), arg], C1_TIME_MS + 20_000);
  if (r.code !== 0) throw new Error(`hrtime-client failed (${r.code}): ${r.stderr.slice(-500)}`);
  return JSON.parse(r.stdout) as HrtimeResult;
}

// ------------------------------------------------------------------ measurement
interface Target {
  name: string;
  /** What it is, for the table. */
  what: string;
  url: string;
  model: string;
  headers: Record<string, string>;
  /** Processes whose CPU time is the cost of this target (the proxy; the upstream itself for direct). */
  pids(): number[];
  /** Upstream requests expected per client request. */
  expectedHits: number;
  /** The API the target is called with (default chat). */
  api?: Api;
  /** The stream paced at gapMs (the stream TTFB rows at a model's pace); absent: not in those rows. */
  paced?: (gapMs: number) => { url: string; body: string };
}
/** Paced by the upstream's URL (/paced/<ms>/…): direct and the plain proxies, which pass the path on. */
const pacedPath = (base: string) => (g: number) => ({ url: `${base}/paced/${g}/v1/chat/completions`, body: chatBody('gpt-4o-mini', true) });
/** Paced by the sidecar's route (bench-paced-<ms>, bench-anthropic-paced-<ms>). */
const pacedRoute = (base: string, prefix: string, api: Api = 'chat') => (g: number) => ({ url: `${base}${API_PATH[api]}`, body: requestBody(api, `${prefix}-paced-${g}`, true) });
interface Sample {
  round: number;
  c32: C32;
  cpuUsPerReq: number;
  upstreamHitsPerReq: number;
  c1: HrtimeResult;
  stream: HrtimeResult;
}

/**
 * Stream TTFB at a model's pace, every paced target in one client process (hrtime-client.ts,
 * paced mode): per gap, each target in turn streams one stream after another, in an order that
 * turns every round. Bounded per gap by PACED_TIME_MS_PER_GAP.
 */
async function pacedRound(targets: Target[], round: number): Promise<PacedResult & { round: number }> {
  // The order turns by one target per round: no target (direct included) is always the first block.
  const turned = targets.map((_, i) => targets[(i + round - 1) % targets.length]!);
  const args: PacedArgs = {
    targets: turned.map((t) => ({ name: t.name, headers: t.headers, requests: Object.fromEntries(PACED_GAPS_MS.map((g) => [String(g), t.paced!(g)])) })),
    gapsMs: PACED_GAPS_MS,
    n: PACED_N,
    writes: PACED_WRITES,
    timeMsPerGap: PACED_TIME_MS_PER_GAP,
    maxLanes: 5,
  };
  const r = await run(NODE, [join(DIST, 'hrtime-client.js'), JSON.stringify({ paced: args })], PACED_GAPS_MS.length * (PACED_TIME_MS_PER_GAP + 15_000));
  if (r.code !== 0) throw new Error(`hrtime-client (paced) failed (${r.code}): ${r.stderr.slice(-500)}`);
  const res = JSON.parse(r.stdout) as PacedResult;
  for (const g of PACED_GAPS_MS) {
    const d = res.byGap[g]?.direct;
    log(
      `paced ${String(g).padStart(3)} ms r${round} (${res.lanes[g]} lanes): direct ttfb ${d?.ttfbUs.p50} µs;` +
        Object.entries(res.byGap[g] ?? {})
          .filter(([k]) => k !== 'direct')
          .map(([k, v]) => ` ${k} ${sign(v.ttfbUs.p50 - (d?.ttfbUs.p50 ?? NaN))}${v.failures ? ` (${v.failures} failed)` : ''}`)
          .join(','),
    );
  }
  return { ...res, round };
}

async function measure(t: Target, upPort: number, round: number): Promise<Sample> {
  const url = urlOf(t);
  const before = (await upstreamCount(upPort)).count;
  const pids = t.pids();
  const cpu0 = pids.reduce((s, p) => s + cpuUs(p), 0);
  const c32 = await autocannon(url, bodyOf(t), t.headers, DURATION_S);
  const cpu1 = pids.reduce((s, p) => s + cpuUs(p), 0);
  const hits = (await upstreamCount(upPort)).count - before;
  const c1 = await hrtime(url, bodyOf(t), t.headers, C1_N);
  const stream = await hrtime(url, bodyOf(t, true), t.headers, STREAM_N);
  const s: Sample = { round, c32, cpuUsPerReq: c32.requests ? (cpu1 - cpu0) / c32.requests : NaN, upstreamHitsPerReq: c32.requests ? hits / c32.requests : NaN, c1, stream };
  log(
    `${t.name.padEnd(16)} r${round}: ${c32.rps.toFixed(0).padStart(6)} rps@32 (p50 ${c32.p50Ms} ms, non-2xx ${c32.non2xx + c32.errors}, upstream hits/req ${s.upstreamHitsPerReq.toFixed(2)}, cpu ${s.cpuUsPerReq.toFixed(0)} µs/req)` +
      ` | c=1 p50 ${c1.totalUs.p50} p99 ${c1.totalUs.p99} µs (n ${c1.n}) | stream ttfb ${stream.ttfbUs.p50} total ${stream.totalUs.p50} µs (n ${stream.n}, failed ${stream.failures})`,
  );
  return s;
}

interface Summary {
  what: string;
  rounds: number;
  rps32: number;
  p50c32Ms: number;
  p99c32Ms: number;
  p50c1Us: number;
  p99c1Us: number;
  addedP50c1Us: number;
  addedP99c1Us: number;
  streamTtfbP50Us: number;
  streamTtfbP99Us: number;
  streamTotalP50Us: number;
  streamTotalP99Us: number;
  addedStreamTtfbP50Us: number;
  cpuUsPerReq: number;
  upstreamHitsPerReq: number;
  failures: number;
  streamSamples: number;
}

function summarise(t: Target, samples: Sample[], direct: Sample[]): Summary {
  const d = new Map(direct.map((s) => [s.round, s]));
  // Added latency: paired with direct in the same round, then the median over rounds.
  const added = (f: (s: Sample) => number) => median(samples.map((s) => (d.has(s.round) ? f(s) - f(d.get(s.round)!) : NaN)));
  const round1 = (x: number) => Math.round(x * 10) / 10;
  return {
    what: t.what,
    rounds: samples.length,
    rps32: Math.round(median(samples.map((s) => s.c32.rps))),
    p50c32Ms: median(samples.map((s) => s.c32.p50Ms)),
    p99c32Ms: median(samples.map((s) => s.c32.p99Ms)),
    p50c1Us: round1(median(samples.map((s) => s.c1.totalUs.p50))),
    p99c1Us: round1(median(samples.map((s) => s.c1.totalUs.p99))),
    addedP50c1Us: round1(added((s) => s.c1.totalUs.p50)),
    addedP99c1Us: round1(added((s) => s.c1.totalUs.p99)),
    streamTtfbP50Us: round1(median(samples.map((s) => (s.stream.n ? s.stream.ttfbUs.p50 : NaN)))),
    streamTtfbP99Us: round1(median(samples.map((s) => (s.stream.n ? s.stream.ttfbUs.p99 : NaN)))),
    streamTotalP50Us: round1(median(samples.map((s) => (s.stream.n ? s.stream.totalUs.p50 : NaN)))),
    streamTotalP99Us: round1(median(samples.map((s) => (s.stream.n ? s.stream.totalUs.p99 : NaN)))),
    addedStreamTtfbP50Us: round1(added((s) => (s.stream.n ? s.stream.ttfbUs.p50 : NaN))),
    cpuUsPerReq: Math.round(median(samples.map((s) => s.cpuUsPerReq))),
    upstreamHitsPerReq: Math.round(median(samples.map((s) => s.upstreamHitsPerReq)) * 100) / 100,
    failures: samples.reduce((n, s) => n + s.c32.non2xx + s.c32.errors + s.c1.failures + s.stream.failures, 0),
    streamSamples: samples.reduce((n, s) => n + s.stream.n, 0),
  };
}

interface PacedSummary {
  gapsMs: number[];
  writes: number;
  lanes: Record<string, number>;
  /** target → gap → medians over rounds: TTFB p50, and p50 minus direct's in the same round. */
  byTarget: Record<string, Record<string, { ttfbP50Us: number; addedTtfbP50Us: number; addedPerRound: number[]; totalP50Us: number; n: number; failures: number }>>;
}

function summarisePaced(rounds: Array<PacedResult & { round: number }>): PacedSummary {
  const round1 = (x: number) => Math.round(x * 10) / 10;
  const byTarget: PacedSummary['byTarget'] = {};
  const names = new Set(rounds.flatMap((r) => Object.values(r.byGap).flatMap((m) => Object.keys(m))));
  for (const name of names) {
    byTarget[name] = {};
    for (const g of PACED_GAPS_MS) {
      const cells = rounds.map((r) => ({ t: r.byGap[g]?.[name], d: r.byGap[g]?.direct }));
      const addedPerRound = cells.map(({ t, d }) => (t?.n && d?.n ? round1(t.ttfbUs.p50 - d.ttfbUs.p50) : NaN));
      byTarget[name]![g] = {
        ttfbP50Us: round1(median(cells.map(({ t }) => (t?.n ? t.ttfbUs.p50 : NaN)))),
        addedTtfbP50Us: round1(median(addedPerRound)),
        addedPerRound,
        totalP50Us: round1(median(cells.map(({ t }) => (t?.n ? t.totalUs.p50 : NaN)))),
        n: cells.reduce((n, { t }) => n + (t?.n ?? 0), 0),
        failures: cells.reduce((n, { t }) => n + (t?.failures ?? 0), 0),
      };
    }
  }
  return { gapsMs: PACED_GAPS_MS, writes: PACED_WRITES, lanes: rounds[0]?.lanes ?? {}, byTarget };
}

/** A probe request (stream and not): 200, a body from our upstream, and the upstream counted it. */
async function probe(t: Target, upPort: number): Promise<{ headers: Record<string, string> }> {
  const before = (await upstreamCount(upPort)).count;
  const url = urlOf(t);
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...t.headers }, body: bodyOf(t), signal: AbortSignal.timeout(10_000) });
  const text = await r.text();
  const s = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...t.headers }, body: bodyOf(t, true), signal: AbortSignal.timeout(10_000) });
  const stext = await s.text();
  const hits = (await upstreamCount(upPort)).count - before;
  const problems: string[] = [];
  if (r.status !== 200 || !text.includes('echo: hello from the bench')) problems.push(`non-stream: ${r.status} ${text.slice(0, 200)}`);
  if (s.status !== 200 || !stext.includes('bench') || !stext.includes(STREAM_END[t.api ?? 'chat'])) problems.push(`stream: ${s.status} ${stext.slice(0, 200)}`);
  if (hits < 2) problems.push(`the upstream saw ${hits} of 2 requests`);
  if (problems.length) throw new Error(`${t.name} probe failed: ${problems.join('; ')}`);
  return { headers: Object.fromEntries([...r.headers].filter(([k]) => k.startsWith('x-paygo') || k.startsWith('x-portkey'))) };
}

// ------------------------------------------------------------------ report
interface Check {
  target: string;
  value: string;
  met: boolean | null;
}
const fmt = (n: number | undefined, digits = 0) => (n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(digits));
const sign = (n: number) => (Number.isFinite(n) ? (n >= 0 ? `+${fmt(n)}` : fmt(n)) : 'n/a');

function pacedMarkdown(p: PacedSummary | undefined): string[] {
  if (!p || !p.gapsMs.length || !p.byTarget.direct) return [];
  const gaps = p.gapsMs;
  const n = Object.values(p.byTarget.direct).reduce((a, c) => Math.max(a, c.n), 0);
  return [
    `Stream TTFB at a model's pace: the upstream sends a stream's first event with the headers at once (OpenAI: the role chunk; Anthropic: message_start, content_block_start and the first text delta), then ${p.writes - 1} more writes the given time apart. Per gap and round, each target in turn (the order turns every round) gets its streams one after another (after 2 warm-up streams), so a proxy idles the gap before every event; ${gaps
      .filter((g) => (p.lanes[g] ?? 1) > 1)
      .map((g) => `at ${g} ms, ${p.lanes[g]} such lanes at once, staggered (an event every ~${Math.round(g / p.lanes[g]!)} ms)`)
      .join('; ') || 'one lane'}; up to ${n} streams per target and gap. Added TTFB p50 vs direct in the same round (µs), median over rounds (direct: its TTFB p50):`,
    '',
    `| target | ${gaps.map((g) => `${g} ms apart`).join(' | ')} |`,
    `|---|${gaps.map(() => '---').join('|')}|`,
    ...Object.entries(p.byTarget).map(
      ([k, v]) => `| ${k} | ${gaps.map((g) => (k === 'direct' ? `${fmt(v[g]?.ttfbP50Us)} µs` : `${sign(v[g]?.addedTtfbP50Us ?? NaN)}${v[g]?.failures ? ` (${v[g]!.failures} failed)` : ''}`)).join(' | ')} |`,
    ),
    '',
    `Per round (added TTFB p50, µs): ${Object.entries(p.byTarget)
      .filter(([k]) => k.startsWith('paygo'))
      .map(([k, v]) => `${k} ${gaps.map((g) => `${g} ms: ${(v[g]?.addedPerRound ?? []).map((x) => sign(x)).join(' / ')}`).join('; ')}`)
      .join('. ')}.`,
    '',
  ];
}

function markdown(results: Record<string, any>): string {
  const s = results.summary as Record<string, Summary>;
  const m = results.machine;
  const sc = results.sidecar;
  const rows = Object.entries(s).map(
    ([k, v]) =>
      `| ${k} | ${fmt(v.rps32)} | ${fmt(v.p50c1Us)} / ${fmt(v.p99c1Us)} | ${k === 'direct' ? '—' : `${sign(v.addedP50c1Us)} / ${sign(v.addedP99c1Us)}`} | ${fmt(v.p50c32Ms)} / ${fmt(v.p99c32Ms)} | ${fmt(v.streamTtfbP50Us)} / ${fmt(v.streamTotalP50Us)} | ${fmt(v.cpuUsPerReq)} | ${fmt(v.upstreamHitsPerReq, 2)} |`,
  );
  const p = results.propagation;
  const lines = [
    `Machine: ${m.cpus} cores (${m.cpuModel}), ${m.memGb} GB, Linux, Node ${m.node}, nginx ${m.nginx}, Portkey gateway ${m.portkey}; everything on 127.0.0.1 on the same ${m.cpus} cores. Load average ${m.loadBefore.join(' ')} before, ${m.loadAfter.join(' ')} after. ${results.settings.rounds} interleaved rounds, medians shown; c=32: autocannon, ${results.settings.durationS} s per target and round; c=1: hrtime client, ${results.settings.c1Requests} requests (${results.settings.streamRequests} for streams) after a warm-up. Sidecar node flags: ${sc.nodeFlags.length ? `${sc.nodeFlags.join(' ')} (as the image runs it)` : '(none, as the image runs it)'}.`,
    '',
    '| target | RPS @32 | p50 / p99 @1 (µs) | added p50 / p99 @1 vs direct (µs) | p50 / p99 @32 (ms, 1 ms resolution) | stream TTFB / total p50 @1 (µs) | CPU µs/req | upstream req/req |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    `paygo sidecar RSS: idle ${fmt(mb(sc.idle.rss), 1)} MB (private ${fmt(mb(sc.idle.anon), 1)} MB), peak ${fmt(mb(sc.peak.hwm), 1)} MB (private ${fmt(mb(sc.peak.anon), 1)} MB; the rest is mapped files, mostly the node binary). The bare Node.js proxy: idle ${fmt(mb(results.nodeProxy.idle.rss), 1)} MB, peak ${fmt(mb(results.nodeProxy.peak.hwm), 1)} MB.`,
    results.baseline ? `Baseline sidecar (${results.baseline.ref}; node flags: ${results.baseline.nodeFlags.length ? results.baseline.nodeFlags.join(' ') : 'none'}) RSS: idle ${fmt(mb(results.baseline.idle.rss), 1)} MB (private ${fmt(mb(results.baseline.idle.anon), 1)} MB), peak ${fmt(mb(results.baseline.peak.hwm), 1)} MB (private ${fmt(mb(results.baseline.peak.anon), 1)} MB).` : '',
    s.paygo && s['paygo-traced']
      ? `Tracing (paygo-traced vs paygo, same rounds; every request sampled, ${fmt(results.tracing?.otlpRequests)} OTLP exports, ${fmt(mb((results.tracing?.otlpBytes ?? NaN) / 1024), 1)} MB): CPU ${sign(s['paygo-traced'].cpuUsPerReq - s.paygo.cpuUsPerReq)} µs per request (${fmt(s['paygo-traced'].cpuUsPerReq)} vs ${fmt(s.paygo.cpuUsPerReq)}), added p50 at c=1 ${sign(s['paygo-traced'].addedP50c1Us - s.paygo.addedP50c1Us)} µs, RPS @32 ${fmt(s['paygo-traced'].rps32)} vs ${fmt(s.paygo.rps32)}; RSS idle ${fmt(mb(results.tracing.idle.rss), 1)} MB, peak ${fmt(mb(results.tracing.peak.hwm), 1)} MB (private ${fmt(mb(results.tracing.peak.anon), 1)} MB).`
      : '',
    s.paygo && (s['paygo-responses'] || s['paygo-messages'])
      ? `Front doors (the same sidecar and route, same rounds), added to chat: ${(['paygo-responses', 'paygo-messages'] as const)
          .filter((k) => s[k])
          .map((k) => `${k.slice('paygo-'.length)} p50 @1 ${sign(s[k]!.addedP50c1Us - s.paygo!.addedP50c1Us)} µs, stream TTFB ${sign(s[k]!.streamTtfbP50Us - s.paygo!.streamTtfbP50Us)} µs, CPU ${sign(s[k]!.cpuUsPerReq - s.paygo!.cpuUsPerReq)} µs/req`)
          .join('; ')}.`
      : '',
    s['node-proxy'] && s.nginx ? `Floor: the bare Node.js proxy reaches ${fmt((100 * s['node-proxy'].rps32) / s.nginx.rps32)}% of nginx's RPS and adds ${sign(s['node-proxy'].addedP50c1Us)} µs at p50 (c=1); paygo spends ${fmt(s.paygo ? s.paygo.cpuUsPerReq / s['node-proxy'].cpuUsPerReq : NaN, 1)}× its CPU per request.` : '',
    p?.measured
      ? `Config propagation (${p.clients} sidecar streams, ${p.changes} ModelRoute changes by \`kubectl apply\`): ACK latency p50 ${fmt(p.ackMs.p50)} ms, p99 ${fmt(p.ackMs.p99)} ms, all ACKed after ${fmt(p.allAckedMs.p50)} ms (median change; worst ${fmt(p.allAckedMs.max)} ms). Operator RSS: ${fmt(mb(p.operatorRss.idle.rss), 1)} MB idle with the streams, ${fmt(mb(p.operatorRss.with1000Routes.rss), 1)} MB with 1,000 ModelRoutes (peak ${fmt(mb(p.operatorRss.with1000Routes.hwm), 1)} MB).`
      : `Config propagation: not measured (${p?.reason ?? 'skipped'}).`,
    '',
    ...rateLimitMarkdown(results.ratelimit),
    '| target (issue) | measured | |',
    '|---|---|---|',
    ...(results.checks as Check[]).map((c) => `| ${c.target} | ${c.value} | ${c.met === null ? 'not measured' : c.met ? 'met' : 'not met'} |`),
    '',
    ...pacedMarkdown(results.paced as PacedSummary | undefined),
    'Per round (RPS @32; c=1 p50 µs), to show the noise:',
    '',
    '| target | RPS @32 per round | c=1 p50 per round |',
    '|---|---|---|',
    ...Object.entries(results.rounds as Record<string, Sample[]>).map(([k, rs]) => `| ${k} | ${rs.map((r) => fmt(r.c32.rps)).join(' / ')} | ${rs.map((r) => fmt(r.c1.totalUs.p50)).join(' / ')} |`),
    '',
  ];
  return lines.join('\n');
}

// ------------------------------------------------------------------ rate limits (own process)
/** ratelimit.ts under vite-node, bounded by what is left before the hard limit. */
async function rateLimitBench(started: number): Promise<Record<string, unknown>> {
  if (RATELIMIT === '0') return { measured: false, reason: 'BENCH_RATELIMIT=0' };
  // Its own hard limit stops the cluster it started (≤ 10 s more); this one stops the process.
  const limitMs = Math.min(RATELIMIT_LIMIT_MS, HARD_LIMIT_MS - (Date.now() - started) - 15_000);
  if (limitMs < RATELIMIT_MIN_MS) return { measured: false, reason: `not enough time left before the ${HARD_LIMIT_MS / 60_000} min hard limit (${Math.round(limitMs / 1000)} s for ≈ 45 s)` };
  const r = await run(NODE, [VITE_NODE, join(HERE, 'ratelimit.ts')], limitMs + 10_000, { cwd: ROOT, env: { ...process.env, BENCH_RATELIMIT: RATELIMIT, BENCH_RL_LIMIT_MS: String(limitMs) } });
  process.stderr.write(r.stderr.split('\n').filter((l) => l.startsWith('[ratelimit')).map((l) => l + '\n').join(''));
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as Record<string, unknown>;
  } catch {
    return { measured: false, reason: `rate-limit bench failed (exit ${r.code}${r.timedOut ? ', timed out' : ''}): ${r.stderr.slice(-600)}` };
  }
}

interface RateLimitRun {
  ms: number;
  ok: number;
  upstream: { served: number; refused429: number; refused429Steady: number };
  paygoRefused: Record<string, number>;
  steadyFromMs: number | null;
  goodput: { allowed: number; percentOfAllowed: number; steadyPerS: number | null; refillPerS: number; steadyPercentOfRefill: number | null };
  latencyMs: { steady: { n: number; p50: number; p99: number } };
}

function rateLimitMarkdown(r: Record<string, any> | undefined): string[] {
  if (!r?.measured) return [`Rate limits: not measured (${r?.reason ?? 'skipped'}).`, ''];
  const row = (name: string, x: RateLimitRun) => {
    const refused = Object.entries(x.paygoRefused)
      .map(([k, v]) => `${fmt(v)} × ${k}`)
      .join(', ');
    return `| ${name} | ${fmt(x.upstream.refused429)} (${fmt(x.upstream.refused429Steady)}) | ${fmt(x.ok)} of ${fmt(x.goodput.allowed)} = ${fmt(x.goodput.percentOfAllowed)}% | ${x.goodput.steadyPerS === null ? 'n/a' : `${fmt(x.goodput.steadyPerS, 1)}/s = ${fmt(x.goodput.steadyPercentOfRefill!)}% (from ${fmt((x.steadyFromMs ?? NaN) / 1000, 1)} s)`} | ${fmt(x.latencyMs.steady.p50)} / ${fmt(x.latencyMs.steady.p99)} (n=${x.latencyMs.steady.n}) | ${refused || 'none'} |`;
  };
  const { noQuota, withQuota } = r.runs as { noQuota: RateLimitRun; withQuota: RateLimitRun };
  return [
    `Rate limits (${r.sidecars} sidecars in operator mode × ${r.clientsPerSidecar} clients, ${fmt(r.runMs / 1000)} s per run; a fake provider enforcing ${r.limits.requestsPerMinute} RPM / ${r.limits.tokensPerMinute} TPM per model, ${r.tokensPerRequest} tokens a request, answers after ${r.providerDelayMs} ms; steady state = from 1 s after the first 429, the provider's or paygo's, to the end; refill ${fmt(withQuota.goodput.refillPerS, 1)}/s). The quota run started with the fleet's buckets at ${fmt(r.quotaFleetBucketAtStart.requests)} of ${fmt(r.quotaFleetBucketAtStart.of)} requests (shares come empty after an operator start), the provider's full:`,
    '',
    '| run | upstream 429s (steady state) | served, of the provider’s full bucket + refill over the run | steady-state goodput, of the refill | latency p50 / p99 of successes, steady state (ms) | answered by paygo instead |',
    '|---|---|---|---|---|---|',
    row('no quota', noQuota),
    row('ProviderQuota = provider limits', withQuota),
    '',
    `Added latency with the quota (steady state): p50 ${sign(r.addedLatencySteadyMs.p50)} ms, p99 ${sign(r.addedLatencySteadyMs.p99)} ms.`,
    '',
  ];
}

async function rateLimitOnly(): Promise<void> {
  const started = Date.now();
  const loadBefore = loadavg().map((x) => +x.toFixed(2));
  const ratelimit = await rateLimitBench(started);
  const git = await run('git', ['-C', ROOT, 'describe', '--always', '--dirty'], 5000).catch(() => undefined);
  const machine = { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '?', memGb: +(totalmem() / 2 ** 30).toFixed(1), node: process.version, loadBefore, loadAfter: loadavg().map((x) => +x.toFixed(2)) };
  const results = { at: new Date().toISOString(), commit: git?.code === 0 ? git.stdout.trim() : 'unknown', machine, ratelimit, elapsedS: Math.round((Date.now() - started) / 1000) };
  const md = [
    `Machine: ${machine.cpus} cores (${machine.cpuModel}), ${machine.memGb} GB, Linux, Node ${machine.node}; everything on 127.0.0.1. Load average ${machine.loadBefore.join(' ')} before, ${machine.loadAfter.join(' ')} after. Commit ${results.commit}.`,
    '',
    ...rateLimitMarkdown(ratelimit),
  ].join('\n');
  mkdirSync(join(HERE, 'results'), { recursive: true });
  writeFileSync(join(HERE, 'results', `${OUT}.json`), JSON.stringify(results, null, 2) + '\n');
  writeFileSync(join(HERE, 'results', `${OUT}.md`), md);
  console.log(md);
  log(`done in ${results.elapsedS} s; wrote test/bench/results/${OUT}.json and ${OUT}.md`);
}

// ------------------------------------------------------------------ main
async function main(): Promise<void> {
  if (RATELIMIT_ONLY) return rateLimitOnly();
  const started = Date.now();
  const loadBefore = loadavg().map((x) => +x.toFixed(2));
  const notMeasured: Record<string, string> = {};
  const up = await startUpstream();
  log(`upstream on :${up.port}`);
  const targets: Target[] = [
    { name: 'direct', what: 'the fake upstream itself (the floor)', url: `http://127.0.0.1:${up.port}`, model: 'gpt-4o-mini', headers: {}, pids: () => [up.child.pid!], expectedHits: 1, paced: pacedPath(`http://127.0.0.1:${up.port}`) },
  ];
  let nginxVersion = 'missing';
  try {
    const ng = await startNginx(up.port);
    nginxVersion = ng.version;
    targets.push({ name: 'nginx', what: 'nginx reverse proxy, 1 worker, upstream keep-alive', url: `http://127.0.0.1:${ng.port}`, model: 'gpt-4o-mini', headers: {}, pids: () => [ng.child.pid!, ...childPids(ng.child.pid!)], expectedHits: 1, paced: pacedPath(`http://127.0.0.1:${ng.port}`) });
  } catch (e) {
    notMeasured.nginx = (e as Error).message;
  }
  let portkeyVersion = 'missing';
  try {
    const pk = await startPortkey(up.port);
    portkeyVersion = pk.version;
    targets.push({ name: 'portkey', what: 'Portkey AI gateway (npm), OpenAI provider with custom host', url: `http://127.0.0.1:${pk.port}`, model: 'gpt-4o-mini', headers: pk.headers, pids: () => [pk.child.pid!], expectedHits: 1 });
  } catch (e) {
    notMeasured.portkey = (e as Error).message;
  }
  const np = await startNodeProxy(up.port);
  const npIdle = procMem(np.child.pid!);
  const npMem = memSampler(np.child.pid!);
  targets.push({ name: 'node-proxy', what: 'bare Node.js proxy (node:http + undici, no work): the Node floor', url: `http://127.0.0.1:${np.port}`, model: 'gpt-4o-mini', headers: {}, pids: () => [np.child.pid!], expectedHits: 1, paced: pacedPath(`http://127.0.0.1:${np.port}`) });

  const sc = await startSidecar(up.port);
  await sleep(1000);
  const idle = procMem(sc.child.pid!);
  const mem = memSampler(sc.child.pid!);
  const scPid = () => [sc.child.pid!];
  targets.push(
    { name: 'paygo', what: 'paygo sidecar, openai-compatible route (metering + metrics on)', url: sc.url, model: 'bench', headers: {}, pids: scPid, expectedHits: 1, paced: pacedRoute(sc.url, 'bench') },
    { name: 'paygo-anthropic', what: 'paygo, Anthropic-translating route', url: sc.url, model: 'bench-anthropic', headers: {}, pids: scPid, expectedHits: 1, paced: pacedRoute(sc.url, 'bench-anthropic') },
    { name: 'paygo-failover', what: 'paygo, 3-target fallback route, first target fails (500)', url: sc.url, model: 'bench-failover', headers: {}, pids: scPid, expectedHits: 2 },
    // The same route through the other front doors: what the Responses and Messages APIs add to chat.
    { name: 'paygo-responses', what: 'paygo, the same route through POST /v1/responses', url: sc.url, model: 'bench', headers: {}, pids: scPid, expectedHits: 1, api: 'responses', paced: pacedRoute(sc.url, 'bench', 'responses') },
    { name: 'paygo-messages', what: 'paygo, the same route through POST /v1/messages', url: sc.url, model: 'bench', headers: {}, pids: scPid, expectedHits: 1, api: 'messages', paced: pacedRoute(sc.url, 'bench', 'messages') },
  );

  // The same sidecar with tracing on (every request sampled: a span per request and per attempt),
  // exporting over OTLP/HTTP to a sink that discards: what tracing costs, in the same rounds.
  let traced: { sc: Sidecar; sink: { url: string; child: ChildProcess }; idle: ProcMem; mem: ReturnType<typeof memSampler> } | undefined;
  if (!ONLY || ONLY.has('paygo-traced')) {
    const sink = await startOtlpSink();
    const tsc = await startSidecar(up.port, ROOT, ['--otlp-endpoint', sink.url]);
    await sleep(1000);
    traced = { sc: tsc, sink, idle: procMem(tsc.child.pid!), mem: memSampler(tsc.child.pid!) };
    targets.push({ name: 'paygo-traced', what: 'paygo sidecar with OpenTelemetry tracing on (all sampled, OTLP/HTTP to a local sink), the same route', url: tsc.url, model: 'bench', headers: {}, pids: () => [tsc.child.pid!], expectedHits: 1 });
  }

  // The same sidecar built from another commit, measured beside this one (before/after, same run).
  let baseline: { sc: Sidecar; idle: ProcMem; mem: ReturnType<typeof memSampler> } | undefined;
  if (BASELINE && (!ONLY || ONLY.has('paygo-baseline'))) {
    const bs = await startSidecar(up.port, BASELINE);
    await sleep(1000);
    baseline = { sc: bs, idle: procMem(bs.child.pid!), mem: memSampler(bs.child.pid!) };
    targets.push({ name: 'paygo-baseline', what: `paygo sidecar built from ${BASELINE_REF}, the same route`, url: bs.url, model: 'bench', headers: {}, pids: () => [bs.child.pid!], expectedHits: 1, paced: pacedRoute(bs.url, 'bench') });
  }

  const active: Target[] = [];
  const probes: Record<string, Record<string, string>> = {};
  for (const t of targets) {
    if (ONLY && t.name !== 'direct' && !ONLY.has(t.name)) continue;
    try {
      probes[t.name] = (await probe(t, up.port)).headers;
      active.push(t);
    } catch (e) {
      notMeasured[t.name] = (e as Error).message;
      log(`not measured: ${(e as Error).message}`);
    }
  }
  // Warm-up (JIT, connection pools): not measured. 4 s lets V8 optimise the sidecar's whole path.
  for (const t of active) await autocannon(urlOf(t), bodyOf(t), t.headers, t.name === 'portkey' ? 2 : 4);
  log(`warm; measuring ${active.map((t) => t.name).join(', ')}: ${ROUNDS} rounds`);

  const pacedTargets = PACED_GAPS_MS.length ? active.filter((t) => t.paced) : [];
  if (PACED_ONLY) {
    // The stream path warm too (the full run's stream phase does that before the paced rows).
    for (const t of pacedTargets) await hrtime(urlOf(t), bodyOf(t, true), t.headers, 300);
  }
  const rounds: Record<string, Sample[]> = {};
  const pacedRounds: Array<PacedResult & { round: number }> = [];
  for (let round = 1; round <= ROUNDS; round++) {
    if (!PACED_ONLY) for (const t of active) (rounds[t.name] ??= []).push(await measure(t, up.port, round));
    if (pacedTargets.length > 1) pacedRounds.push(await pacedRound(pacedTargets, round));
  }
  const paced = pacedRounds.length ? summarisePaced(pacedRounds) : undefined;
  const peak: ProcMem = mem.stop();
  const npPeak: ProcMem = npMem.stop();
  const baselinePeak = baseline?.mem.stop();
  const metricsText = await (await fetch(sc.metricsUrl, { signal: AbortSignal.timeout(5000) })).text();
  const metered = metricsText.split('\n').filter((l) => l.startsWith('paygo_requests_total{') || l.startsWith('paygo_cost_usd_total{'));
  const usageLines = readFileSync(sc.logPath, 'utf8').split('\n').filter((l) => l.includes('"msg":"usage"')).length;
  const upstreamTotals = await upstreamCount(up.port);
  const tracedPeak = traced?.mem.stop();
  const spansExported = traced ? ((await (await fetch(`${traced.sink.url}/stats`, { signal: AbortSignal.timeout(5000) })).json()) as { requests: number; bytes: number }) : undefined;
  await stopAll(); // the data-plane processes; nothing may compete with the propagation bench

  const direct = rounds.direct ?? [];
  const summary: Record<string, Summary> = {};
  for (const t of active) summary[t.name] = summarise(t, rounds[t.name] ?? [], direct);

  // ---------------------------------------------------------------- propagation (own process)
  let propagation: Record<string, unknown> = { measured: false, reason: 'BENCH_PROPAGATION=0' };
  if (PROPAGATION !== '0') {
    const r = await run(NODE, [VITE_NODE, join(HERE, 'propagation.ts')], PROPAGATION_LIMIT_MS, { cwd: ROOT, env: { ...process.env, BENCH_PROPAGATION: PROPAGATION } });
    process.stderr.write(r.stderr.split('\n').filter((l) => l.startsWith('[prop')).map((l) => l + '\n').join(''));
    try {
      propagation = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as Record<string, unknown>;
    } catch {
      propagation = { measured: false, reason: `propagation bench failed (exit ${r.code}${r.timedOut ? ', timed out' : ''}): ${r.stderr.slice(-600)}` };
    }
  }

  // ---------------------------------------------------------------- rate limits (own process)
  const ratelimit = await rateLimitBench(started);

  // ---------------------------------------------------------------- targets of the issue
  const p = summary.paygo;
  const ng = summary.nginx;
  const pk = summary.portkey;
  const dr = summary.direct;
  const checks: Check[] = [];
  // A comparison with a number that was not measured (NaN: BENCH_PACED_ONLY, a target left out) says nothing.
  const check = (target: string, value: string, met: boolean | null, ...inputs: Array<number | undefined>) =>
    checks.push({ target, value, met: inputs.every((x) => x !== undefined && Number.isFinite(x)) ? met : null });
  check('paygo RPS ≥ 40% of nginx’s (same run)', p && ng ? `${fmt(p.rps32)} vs ${fmt(ng.rps32)} RPS = ${fmt((100 * p.rps32) / ng.rps32)}%` : `not measured: ${notMeasured.nginx ?? notMeasured.paygo}`, p && ng ? p.rps32 >= 0.4 * ng.rps32 : null, p?.rps32, ng?.rps32);
  check('paygo RPS ≥ 10× Portkey’s', p && pk ? `${fmt(p.rps32)} vs ${fmt(pk.rps32)} RPS = ${fmt(p.rps32 / pk.rps32, 1)}×` : `not measured: ${notMeasured.portkey ?? notMeasured.paygo}`, p && pk ? p.rps32 >= 10 * pk.rps32 : null, p?.rps32, pk?.rps32);
  check('added p50 ≤ 300 µs at c=1', p ? `${sign(p.addedP50c1Us)} µs` : 'n/a', p ? p.addedP50c1Us <= 300 : null, p?.addedP50c1Us);
  check('added p99 ≤ 1 ms at c=1', p ? `${sign(p.addedP99c1Us)} µs` : 'n/a', p ? p.addedP99c1Us <= 1000 : null, p?.addedP99c1Us);
  check('stream TTFB ≤ direct + 0.5 ms (p50)', p && dr ? `${fmt(p.streamTtfbP50Us)} vs ${fmt(dr.streamTtfbP50Us)} µs = ${sign(p.addedStreamTtfbP50Us)} µs` : 'n/a', p && dr ? p.addedStreamTtfbP50Us <= 500 : null, p?.addedStreamTtfbP50Us);
  const pacedPaygo = paced?.byTarget.paygo;
  check(
    `stream TTFB ≤ direct + 0.5 ms at every spacing (p50; events ${PACED_GAPS_MS.join(' / ')} ms apart after the first)`,
    pacedPaygo ? PACED_GAPS_MS.map((g) => `${g} ms: ${sign(pacedPaygo[g]?.addedTtfbP50Us ?? NaN)} µs`).join(', ') : 'not measured',
    pacedPaygo ? PACED_GAPS_MS.every((g) => (pacedPaygo[g]?.addedTtfbP50Us ?? Infinity) <= 500) : null,
  );
  // The same target as a ratio to its floor (the bare Node.js proxy in the same round): a Node.js
  // sidecar pays that proxy's cost before doing any work of its own, and it varies with the machine.
  const pacedFloor = paced?.byTarget['node-proxy'];
  const floorRatio = (target: string, g: number) => {
    const ratios = (paced?.byTarget[target]?.[g]?.addedPerRound ?? []).map((a, i) => a / (pacedFloor?.[g]?.addedPerRound[i] ?? NaN)).filter((r) => Number.isFinite(r) && r > 0);
    return ratios.length ? median(ratios) : NaN;
  };
  check(
    `stream TTFB at every spacing: paygo's added p50 ≤ 2× the bare Node.js proxy's (same round; median over rounds)`,
    pacedPaygo && pacedFloor ? PACED_GAPS_MS.map((g) => `${g} ms: ${fmt(floorRatio('paygo', g), 1)}×`).join(', ') : 'not measured (needs paygo and node-proxy in the paced rows)',
    pacedPaygo && pacedFloor ? PACED_GAPS_MS.every((g) => floorRatio('paygo', g) <= 2) : null,
  );
  // Every API: the same route through /v1/responses and /v1/messages.
  const doors = ['paygo-responses', 'paygo-messages'].filter((t) => paced?.byTarget[t]);
  check(
    `stream TTFB at every spacing, /v1/responses and /v1/messages: added p50 ≤ 2× the bare Node.js proxy's`,
    doors.length === 2 && pacedFloor ? doors.map((t) => `${t.slice('paygo-'.length)} ${PACED_GAPS_MS.map((g) => `${fmt(floorRatio(t, g), 1)}×`).join(' / ')}`).join('; ') : 'not measured (needs paygo-responses, paygo-messages and node-proxy in the paced rows)',
    doors.length === 2 && pacedFloor ? doors.every((t) => PACED_GAPS_MS.every((g) => floorRatio(t, g) <= 2)) : null,
  );
  check('sidecar peak RSS ≤ 70 MB', `${fmt(mb(peak.hwm), 1)} MB (VmHWM; private ${fmt(mb(peak.anon), 1)} MB)`, Number.isFinite(peak.hwm) ? peak.hwm / 1024 <= 70 : null);
  check('sidecar private (anonymous) peak RSS ≤ 70 MB', `${fmt(mb(peak.anon), 1)} MB (the rest of VmHWM is mapped files, mostly the node binary)`, Number.isFinite(peak.anon) ? peak.anon / 1024 <= 70 : null);
  check('sidecar CPU ≤ 150 µs per request (c=32)', p ? `${fmt(p.cpuUsPerReq)} µs` : 'n/a', p ? p.cpuUsPerReq <= 150 : null, p?.cpuUsPerReq);
  const pp = propagation as { measured?: boolean; ackMs?: { p99: number }; reason?: string };
  check('propagation p99 ≤ 1 s', pp.measured && pp.ackMs ? `${fmt(pp.ackMs.p99)} ms` : `not measured: ${pp.reason ?? '?'}`, pp.measured && pp.ackMs ? pp.ackMs.p99 <= 1000 : null);
  const rl = ratelimit as { measured?: boolean; reason?: string; sidecars?: number; runs?: { withQuota: RateLimitRun } };
  const rq = rl.measured ? rl.runs!.withQuota : undefined;
  check('rate limits: upstream 429s with a ProviderQuota ≤ 1 per sidecar', rq ? `${rq.upstream.refused429} (${rl.sidecars} sidecars)` : `not measured: ${rl.reason ?? '?'}`, rq ? rq.upstream.refused429 <= rl.sidecars! : null);
  check('rate limits: steady goodput with a ProviderQuota ≥ 90% of the provider’s refill', rq?.goodput.steadyPercentOfRefill != null ? `${fmt(rq.goodput.steadyPercentOfRefill)}%` : `not measured: ${rl.reason ?? 'no steady state'}`, rq?.goodput.steadyPercentOfRefill != null ? rq.goodput.steadyPercentOfRefill >= 90 : null);

  const git = await run('git', ['-C', ROOT, 'describe', '--always', '--dirty'], 5000).catch(() => undefined);
  const results = {
    at: new Date().toISOString(),
    commit: git?.code === 0 ? git.stdout.trim() : 'unknown',
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? '?',
      memGb: +(totalmem() / 2 ** 30).toFixed(1),
      node: process.version,
      nginx: nginxVersion,
      portkey: portkeyVersion,
      loadBefore,
      loadAfter: loadavg().map((x) => +x.toFixed(2)),
    },
    settings: { rounds: ROUNDS, durationS: DURATION_S, c1Requests: C1_N, streamRequests: STREAM_N, c1TimeLimitMs: C1_TIME_MS, flakyEvery: FLAKY_EVERY, pacedGapsMs: PACED_GAPS_MS, pacedStreams: PACED_N, pacedOnly: PACED_ONLY },
    summary,
    paced,
    checks,
    sidecar: {
      nodeFlags: sc.flags,
      idle,
      peak,
      probeHeaders: probes.paygo,
      meteredSeries: metered,
      usageLogLines: usageLines,
    },
    nodeProxy: { idle: npIdle, peak: npPeak },
    ...(traced ? { tracing: { otlpRequests: spansExported?.requests, otlpBytes: spansExported?.bytes, idle: traced.idle, peak: tracedPeak } } : {}),
    ...(baseline ? { baseline: { ref: BASELINE_REF, nodeFlags: baseline.sc.flags, idle: baseline.idle, peak: baselinePeak } } : {}),
    probes,
    upstreamTotals,
    propagation,
    ratelimit,
    notMeasured,
    rounds,
    pacedRounds,
    elapsedS: Math.round((Date.now() - started) / 1000),
  };
  const md = markdown(results);
  mkdirSync(join(HERE, 'results'), { recursive: true });
  writeFileSync(join(HERE, 'results', `${OUT}.json`), JSON.stringify(results, null, 2) + '\n');
  writeFileSync(join(HERE, 'results', `${OUT}.md`), md);
  console.log(md);
  log(`done in ${results.elapsedS} s; wrote test/bench/results/${OUT}.json and ${OUT}.md`);
}

const hard = setTimeout(() => {
  log(`hard limit (${HARD_LIMIT_MS / 60_000} min) reached; stopping everything`);
  killAll();
  process.exit(2);
}, HARD_LIMIT_MS);
hard.unref();
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => {
    killAll();
    process.exit(130);
  });
main()
  .then(
    () => 0,
    (e: Error) => {
      log('failed:', e.stack ?? e);
      return 1;
    },
  )
  .then(async (code) => {
    await stopAll();
    process.exit(code);
  });
