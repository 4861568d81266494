/**
 * `make bench`: data-plane benchmark of the paygo sidecar against direct, nginx and Portkey.
 * Every process on 127.0.0.1; every loop bounded in count and time; everything stopped in
 * `finally`. Writes test/bench/results/latest.{json,md}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from '../support/sidecar-process.js';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const C1_REQUESTS = Number(process.env.BENCH_C1_REQUESTS ?? 3000);
const STREAM_REQUESTS = Number(process.env.BENCH_STREAM_REQUESTS ?? 300);
const PHASE_TIMEOUT_MS = 30_000;
/** Repository root: this file runs as dist/test/bench/run.js. */
const ROOT = resolve(import.meta.dirname, '../../..');
const HERE = join(ROOT, 'test/bench');
const DIST_HERE = join(ROOT, 'dist/test/bench');
const AUTOCANNON = join(ROOT, 'node_modules/autocannon/autocannon.js');
const PORTKEY = join(ROOT, 'node_modules/@portkey-ai/gateway/build/start-server.js');

const CHAT_BODY = JSON.stringify({ model: 'MODEL', messages: [{ role: 'user', content: 'hello from the bench' }], max_tokens: 16 });
const chatBody = (model: string, stream = false) =>
  JSON.stringify({ model, messages: [{ role: 'user', content: 'hello from the bench' }], max_tokens: 16, ...(stream ? { stream: true } : {}) });
void CHAT_BODY;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (...a: unknown[]) => console.error('[bench]', ...a);

// ---------------------------------------------------------------- /proc helpers
function rssKb(pid: number): { rss: number; hwm: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const get = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? NaN);
    return { rss: get('VmRSS'), hwm: get('VmHWM') };
  } catch {
    return { rss: NaN, hwm: NaN };
  }
}
const TICK_US = 1e6 / 100; // USER_HZ is 100 on Linux
function cpuUs(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * TICK_US; // utime, stime (fields 14, 15)
  } catch {
    return NaN;
  }
}
function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------- processes
const children: ChildProcess[] = [];
function spawnTracked(cmd: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const c = spawn(cmd, args, { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(c);
  return c;
}
async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const done = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), 5000);
  await done;
  clearTimeout(t);
}
async function waitHttp(url: string, init: RequestInit = {}, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await fetch(url, init);
      await r.arrayBuffer();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${url} not answering after ${timeoutMs} ms`);
      await sleep(100);
    }
  }
}

async function startUpstream(): Promise<{ port: number; child: ChildProcess }> {
  const child = spawnTracked(process.execPath, [join(DIST_HERE, 'upstream.js')]);
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error('upstream did not start')), 10_000);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      const m = /\{"port":(\d+)\}/.exec(buf);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
  });
  return { port, child };
}

function nginxBin(): string | null {
  for (const p of ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx']) if (existsSync(p)) return p;
  return null;
}
async function startNginx(upPort: number): Promise<{ port: number; child: ChildProcess; dir: string }> {
  const bin = nginxBin();
  if (!bin) throw new Error('nginx not installed (run test/bench/install-tools.sh)');
  const dir = mkdtempSync(join(tmpdir(), 'paygo-bench-nginx-'));
  const port = await freePort();
  // worker_processes 1: same core budget as the single-threaded sidecar.
  writeFileSync(
    join(dir, 'nginx.conf'),
    `daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream up { server 127.0.0.1:${upPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    keepalive_requests 1000000;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`,
  );
  const child = spawnTracked(bin, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')]);
  await waitHttp(`http://127.0.0.1:${port}/__count`);
  return { port, child, dir };
}

async function startPortkey(): Promise<{ port: number; child: ChildProcess }> {
  if (!existsSync(PORTKEY)) throw new Error('@portkey-ai/gateway not installed');
  const port = await freePort();
  const child = spawnTracked(process.execPath, [PORTKEY, `--port=${port}`, '--headless'], { NODE_ENV: 'production' });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-2000)));
  child.stdout!.resume();
  try {
    await waitHttp(`http://127.0.0.1:${port}/`, {}, 20_000);
  } catch (e) {
    throw new Error(`${(e as Error).message}; stderr: ${err}`);
  }
  return { port, child };
}

interface SidecarProcess {
  url: string;
  metricsUrl: string;
  child: ChildProcess;
  logPath: string;
  stop(): Promise<void>;
}
/**
 * Starts the built sidecar (dist/sidecar/main.js) like test/support/sidecar-process.ts does, but
 * from dist/ and with stdout (pino logs, usage records) going to a file, as in a pod.
 */
async function startSidecarBench(configYaml: string): Promise<SidecarProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'paygo-bench-sidecar-'));
  const configPath = join(dir, 'config.yaml');
  writeFileSync(configPath, configYaml);
  const port = await freePort();
  const metricsPort = await freePort();
  const logPath = join(dir, 'sidecar.log');
  const fd = openSync(logPath, 'w');
  const child = spawn(
    process.execPath,
    [join(ROOT, 'dist/sidecar/main.js'), '--config', configPath, '--port', String(port), '--metrics-port', String(metricsPort), '--metrics-host', '127.0.0.1', '--state-dir', join(dir, 'state'), '--log-level', 'info'],
    { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', fd, 'pipe'] },
  );
  closeSync(fd);
  children.push(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`sidecar exited with ${child.exitCode}: ${stderr} ${readFileSync(logPath, 'utf8').slice(-2000)}`);
    try {
      const r = await fetch(`${url}/readyz`);
      await r.arrayBuffer();
      if (r.ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) throw new Error(`sidecar not ready after 15 s: ${stderr}`);
    await sleep(50);
  }
  return { url, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`, child, logPath, stop: () => stopChild(child) };
}

function sidecarConfig(upPort: number): string {
  const up = `http://127.0.0.1:${upPort}`;
  const target = (name: string, provider: string, model: string, baseURL: string, secret: string) =>
    `    - name: ${name}
      provider: ${provider}
      model: ${model}
      baseURL: ${baseURL}
      credentials: { secretRef: { name: ${secret}, key: api-key } }
      pricing: { input: "0.15", output: "0.60" }`;
  const route = (name: string, targets: string[], extra = '') => `apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: ${name} }
spec:
  model: ${name}
  strategy: fallback
  targets:
${targets.join('\n')}
  retry: { attempts: 1, initialBackoffMs: 1, maxBackoffMs: 1 }
${extra}`;
  return [
    `apiVersion: v1
kind: Secret
metadata: { name: bench }
stringData: { api-key: sk-bench }
`,
    route('bench', [target('up', 'openai-compatible', 'gpt-4o-mini', `${up}/v1`, 'bench')]),
    route('bench-anthropic', [target('claude', 'anthropic', 'claude-3-5-haiku-latest', `${up}/v1`, 'bench')]),
    route(
      'bench-failover',
      [
        target('broken', 'openai-compatible', 'gpt-4o-mini', `${up}/fail/v1`, 'bench'),
        target('second', 'openai-compatible', 'gpt-4o-mini', `${up}/v1`, 'bench'),
        target('third', 'openai-compatible', 'gpt-4o-mini', `${up}/v1`, 'bench'),
      ],
      '  circuitBreaker: { consecutiveFailures: 1000, cooldownMs: 1 }\n',
    ),
  ].join('---\n');
}

// ---------------------------------------------------------------- load generators
interface Load {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  non2xx: number;
  errors: number;
}
/** autocannon in its own process, bounded by -d and a hard timeout. */
async function autocannon(url: string, body: string, headers: Record<string, string>, connections: number, durationS = DURATION_S): Promise<Load> {
  const args = [AUTOCANNON, '-c', String(connections), '-d', String(durationS), '-m', 'POST', '-b', body, '-j'];
  for (const [k, v] of Object.entries({ 'content-type': 'application/json', ...headers })) args.push('-H', `${k}=${v}`);
  args.push(url);
  const child = spawnTracked(process.execPath, args);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.resume();
  const t = setTimeout(() => child.kill('SIGKILL'), durationS * 1000 + PHASE_TIMEOUT_MS);
  await new Promise((r) => child.once('exit', r));
  clearTimeout(t);
  const j = JSON.parse(out) as { requests: { average: number; total: number }; latency: { p50: number; p99: number }; non2xx: number; errors: number; '2xx': number };
  return { rps: j.requests.average, p50Ms: j.latency.p50, p99Ms: j.latency.p99, requests: j.requests.total, non2xx: j.non2xx, errors: j.errors };
}

function pct(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Sequential keep-alive client measuring each request with hrtime (µs). */
async function hrtimeClient(
  url: string,
  body: string,
  headers: Record<string, string>,
  n: number,
): Promise<{ p50Us: number; p99Us: number; ttfbP50Us: number; ttfbP99Us: number; n: number; failures: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const u = new URL(url);
  const total: number[] = [];
  const ttfb: number[] = [];
  let failures = 0;
  const deadline = Date.now() + PHASE_TIMEOUT_MS;
  const buf = Buffer.from(body);
  const one = () =>
    new Promise<void>((resolve) => {
      const t0 = process.hrtime.bigint();
      let first = 0n;
      const req = httpRequest(
        { agent, host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': buf.length, ...headers } },
        (res) => {
          res.on('data', () => {
            if (first === 0n) first = process.hrtime.bigint();
          });
          res.on('end', () => {
            const t1 = process.hrtime.bigint();
            if (res.statusCode === 200) {
              total.push(Number(t1 - t0) / 1000);
              ttfb.push(Number((first || t1) - t0) / 1000);
            } else failures++;
            resolve();
          });
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.on('error', () => {
        failures++;
        resolve();
      });
      req.end(buf);
    });
  for (let i = 0; i < Math.min(50, n); i++) await one(); // warm-up
  total.length = 0;
  ttfb.length = 0;
  for (let i = 0; i < n && Date.now() < deadline; i++) await one();
  agent.destroy();
  total.sort((a, b) => a - b);
  ttfb.sort((a, b) => a - b);
  return { p50Us: pct(total, 50), p99Us: pct(total, 99), ttfbP50Us: pct(ttfb, 50), ttfbP99Us: pct(ttfb, 99), n: total.length, failures };
}

// ---------------------------------------------------------------- main
interface Target {
  name: string;
  url: string;
  model: string;
  headers: Record<string, string>;
  pids: () => number[];
}
interface RoundResult {
  round: number;
  c32: Load;
  c1: Awaited<ReturnType<typeof hrtimeClient>>;
  stream: Awaited<ReturnType<typeof hrtimeClient>>;
  cpuUsPerReq: number;
  upstreamHits: number;
}

async function upstreamCount(port: number): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${port}/__count`);
  return ((await r.json()) as { count: number }).count;
}

async function measure(t: Target, upPort: number, round: number, sidecar?: SidecarProcess): Promise<RoundResult> {
  const url = `${t.url}/v1/chat/completions`;
  const body = chatBody(t.model);
  const before = await upstreamCount(upPort);
  const pids = t.pids();
  const cpu0 = pids.reduce((s, p) => s + cpuUs(p), 0);
  const c32 = await autocannon(url, body, t.headers, 32);
  const cpu1 = pids.reduce((s, p) => s + cpuUs(p), 0);
  const upstreamHits = (await upstreamCount(upPort)) - before;
  const c1 = await hrtimeClient(url, body, t.headers, C1_REQUESTS);
  const stream = await hrtimeClient(url, chatBody(t.model, true), t.headers, STREAM_REQUESTS);
  const r: RoundResult = { round, c32, c1, stream, cpuUsPerReq: c32.requests ? (cpu1 - cpu0) / c32.requests : NaN, upstreamHits };
  log(
    `${t.name} r${round}: ${c32.rps.toFixed(0)} rps@32 (non2xx ${c32.non2xx}, err ${c32.errors}, upstream hits ${upstreamHits}/${c32.requests}), c1 p50 ${c1.p50Us.toFixed(0)}µs p99 ${c1.p99Us.toFixed(0)}µs, stream ttfb ${stream.ttfbP50Us.toFixed(0)}µs total ${stream.p50Us.toFixed(0)}µs, cpu ${r.cpuUsPerReq.toFixed(0)}µs/req`,
  );
  return r;
}

const median = (xs: number[]) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  const started = Date.now();
  const results: Record<string, unknown> = {
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memGb: +(totalmem() / 2 ** 30).toFixed(1), node: process.version, nginx: nginxBin() ? 'installed' : 'missing', loadAvgAtStart: loadavg() },
    settings: { durationS: DURATION_S, rounds: ROUNDS, c1Requests: C1_REQUESTS, streamRequests: STREAM_REQUESTS },
  };
  const notMeasured: Record<string, string> = {};
  let sidecar: SidecarProcess | undefined;
  try {
    const up = await startUpstream();
    log('upstream on', up.port);
    const targets: Target[] = [{ name: 'direct', url: `http://127.0.0.1:${up.port}`, model: 'gpt-4o-mini', headers: {}, pids: () => [up.child.pid!] }];
    try {
      const ng = await startNginx(up.port);
      targets.push({ name: 'nginx', url: `http://127.0.0.1:${ng.port}`, model: 'gpt-4o-mini', headers: {}, pids: () => [ng.child.pid!, ...childPids(ng.child.pid!)] });
    } catch (e) {
      notMeasured.nginx = (e as Error).message;
    }
    try {
      const pk = await startPortkey();
      const headers = { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `http://127.0.0.1:${up.port}/v1`, authorization: 'Bearer sk-bench' };
      // Verify requests really reach the upstream.
      const before = await upstreamCount(up.port);
      const r = await fetch(`http://127.0.0.1:${pk.port}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: chatBody('gpt-4o-mini') });
      const text = await r.text();
      const hits = (await upstreamCount(up.port)) - before;
      if (r.status !== 200 || hits !== 1) throw new Error(`portkey probe: status ${r.status}, upstream hits ${hits}: ${text.slice(0, 300)}`);
      targets.push({ name: 'portkey', url: `http://127.0.0.1:${pk.port}`, model: 'gpt-4o-mini', headers, pids: () => [pk.child.pid!] });
    } catch (e) {
      notMeasured.portkey = (e as Error).message;
    }
    sidecar = await startSidecarBench(sidecarConfig(up.port));
    const sc = sidecar;
    await sleep(1000);
    const idle = rssKb(sc.child.pid!);
    const probe = await fetch(`${sc.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chatBody('bench') });
    const probeHeaders = Object.fromEntries([...probe.headers].filter(([k]) => k.startsWith('x-paygo')));
    if (probe.status !== 200) throw new Error(`paygo probe: ${probe.status} ${await probe.text()}`);
    await probe.text();
    targets.push({ name: 'paygo', url: sc.url, model: 'bench', headers: {}, pids: () => [sc.child.pid!] });

    // Warm-up (JIT, connection pools) for every target, not measured.
    for (const t of targets) await autocannon(`${t.url}/v1/chat/completions`, chatBody(t.model), t.headers, 32, 2);
    for (const m of ['bench-anthropic', 'bench-failover']) await autocannon(`${sc.url}/v1/chat/completions`, chatBody(m), {}, 32, 2);
    const rounds: Record<string, RoundResult[]> = {};
    for (let round = 1; round <= ROUNDS; round++) {
      for (const t of targets) (rounds[t.name] ??= []).push(await measure(t, up.port, round, t.name === 'paygo' ? sc : undefined));
    }
    const extra: Record<string, RoundResult> = {};
    extra['paygo-anthropic'] = await measure({ name: 'paygo-anthropic', url: sc.url, model: 'bench-anthropic', headers: {}, pids: () => [sc.child.pid!] }, up.port, 1, sc);
    extra['paygo-failover'] = await measure({ name: 'paygo-failover', url: sc.url, model: 'bench-failover', headers: {}, pids: () => [sc.child.pid!] }, up.port, 1, sc);
    const peak = rssKb(sc.child.pid!);
    const metrics = await (await fetch(sc.metricsUrl)).text();
    const metricLines = metrics.split('\n').filter((l) => /^paygo_requests_total|^paygo_.*cost/.test(l)).slice(0, 10);

    // Summaries (median over rounds).
    const summary: Record<string, Record<string, number>> = {};
    const sum = (rs: RoundResult[]) => ({
      rps32: median(rs.map((r) => r.c32.rps)),
      p50c32Ms: median(rs.map((r) => r.c32.p50Ms)),
      p99c32Ms: median(rs.map((r) => r.c32.p99Ms)),
      upstreamHitsPerReq: median(rs.map((r) => r.upstreamHits / r.c32.requests)),
      streamOk: rs.reduce((n, r) => n + r.stream.n, 0),
      p50c1Us: median(rs.map((r) => r.c1.p50Us)),
      p99c1Us: median(rs.map((r) => r.c1.p99Us)),
      streamTtfbP50Us: median(rs.map((r) => r.stream.ttfbP50Us)),
      streamTtfbP99Us: median(rs.map((r) => r.stream.ttfbP99Us)),
      streamTotalP50Us: median(rs.map((r) => r.stream.p50Us)),
      streamTotalP99Us: median(rs.map((r) => r.stream.p99Us)),
      cpuUsPerReq: median(rs.map((r) => r.cpuUsPerReq)),
      non2xx: rs.reduce((s, r) => s + r.c32.non2xx + r.c32.errors + r.c1.failures + r.stream.failures, 0),
    });
    for (const [k, rs] of Object.entries(rounds)) summary[k] = sum(rs);
    for (const [k, rs] of Object.entries(rounds))
      if (rs.every((r) => r.stream.n === 0)) {
        const t = targets.find((x) => x.name === k)!;
        const r = await fetch(`${t.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...t.headers }, body: chatBody(t.model, true) }).catch((e: Error) => e);
        const why = r instanceof Error ? r.message : `HTTP ${r.status} ${(await r.text()).slice(0, 200)}`;
        notMeasured[`${k}-stream`] = `every stream request failed (${rs.reduce((n, x) => n + x.stream.failures, 0)} failures; probe: ${why})`;
      }
    for (const [k, r] of Object.entries(extra)) summary[k] = sum([r]);
    const d = summary.direct!;
    for (const s of Object.values(summary)) {
      s.addedP50c1Us = s.p50c1Us! - d.p50c1Us!;
      s.addedP99c1Us = s.p99c1Us! - d.p99c1Us!;
      s.addedTtfbP50Us = s.streamTtfbP50Us! - d.streamTtfbP50Us!;
    }
    const p = summary.paygo!;
    const fmt = (n: number | undefined, digits = 0) => (n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(digits));
    const targetsMet: Array<{ target: string; value: string; met: boolean | null }> = [];
    const check = (target: string, value: string, met: boolean | null) => targetsMet.push({ target, value, met });
    check('paygo RPS ≥ 40% of nginx', summary.nginx ? `${fmt((100 * p.rps32!) / summary.nginx.rps32!)}%` : `not measured: ${notMeasured.nginx}`, summary.nginx ? p.rps32! >= 0.4 * summary.nginx.rps32! : null);
    check('paygo RPS ≥ 10× Portkey', summary.portkey ? `${fmt(p.rps32! / summary.portkey.rps32!, 1)}×` : `not measured: ${notMeasured.portkey}`, summary.portkey ? p.rps32! >= 10 * summary.portkey.rps32! : null);
    check('added p50 ≤ 300 µs at c=1', `${fmt(p.addedP50c1Us)} µs`, p.addedP50c1Us! <= 300);
    check('added p99 ≤ 1 ms at c=1', `${fmt(p.addedP99c1Us)} µs`, p.addedP99c1Us! <= 1000);
    check('stream TTFB ≤ direct + 0.5 ms', `+${fmt(p.addedTtfbP50Us)} µs (p50)`, p.addedTtfbP50Us! <= 500);
    check('sidecar peak RSS ≤ 70 MB', `${fmt(peak.hwm / 1024, 1)} MB`, peak.hwm / 1024 <= 70);
    check('propagation p99 ≤ 1 s', 'not measured: no time in this change (needs the kube-apiserver cluster env)', null);

    Object.assign(results, {
      summary,
      rounds,
      extra,
      sidecar: { rssIdleMb: +(idle.rss / 1024).toFixed(1), rssPeakMb: +(peak.hwm / 1024).toFixed(1), probeHeaders, metricSample: metricLines },
      targets: targetsMet,
      notMeasured,
      propagation: { measured: false, reason: 'not measured in this change' },
      operatorRss1000Routes: { measured: false, reason: 'not measured in this change' },
      loadAvgAtEnd: loadavg(),
      elapsedS: Math.round((Date.now() - started) / 1000),
      at: new Date().toISOString(),
    });

    const rows = Object.entries(summary).map(
      ([k, s]) =>
        `| ${k} | ${fmt(s.rps32)} | ${fmt(s.p50c1Us)} / ${fmt(s.p99c1Us)} | ${fmt(s.p50c32Ms)} / ${fmt(s.p99c32Ms)} | ${k === 'direct' ? '—' : `${fmt(s.addedP50c1Us)} / ${fmt(s.addedP99c1Us)}`} | ${fmt(s.streamTtfbP50Us)} / ${fmt(s.streamTotalP50Us)} | ${fmt(s.cpuUsPerReq)} | ${fmt(s.upstreamHitsPerReq, 2)} |`,
    );
    const perRound = Object.entries(rounds).map(([k, rs]) => `| ${k} | ${rs.map((r) => fmt(r.c32.rps)).join(' / ')} | ${rs.map((r) => fmt(r.c1.p50Us)).join(' / ')} |`);
    const md = [
      `Machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), Node ${process.version}; all on 127.0.0.1; ${ROUNDS} interleaved rounds (median shown), ${DURATION_S} s autocannon runs; nginx: 1 worker, upstream keepalive. Load average at start ${(results.machine as { loadAvgAtStart: number[] }).loadAvgAtStart.map((x) => x.toFixed(2)).join(' ')} — other work on the machine shows up as noise between rounds.`,
      '',
      '| target | RPS @32 | p50 / p99 @1 (µs) | p50 / p99 @32 (ms, autocannon) | added p50 / p99 @1 (µs) | stream TTFB / total p50 (µs) | CPU µs/req (proxy) | upstream hits/req |',
      '|---|---|---|---|---|---|---|---|',
      ...rows,
      '',
      `paygo sidecar RSS: idle ${fmt(idle.rss / 1024, 1)} MB, peak ${fmt(peak.hwm / 1024, 1)} MB (VmHWM). CPU for direct = the upstream process itself.`,
      '',
      ...Object.entries(notMeasured).map(([k, v]) => `Not measured — ${k}: ${v.replace(/\s+/g, ' ')}`),
      'Propagation (200 sidecar streams → all ACKed) and operator RSS with 1,000 ModelRoutes: not measured yet.',
      '',
      '| target | value | met |',
      '|---|---|---|',
      ...targetsMet.map((t) => `| ${t.target} | ${t.value} | ${t.met === null ? 'not measured' : t.met ? 'met' : 'not met'} |`),
      '',
      'Noise (per round): RPS @32 and p50 @1 (µs)',
      '',
      '| target | RPS per round | p50 @1 per round |',
      '|---|---|---|',
      ...perRound,
      '',
    ].join('\n');
    mkdirSync(join(HERE, 'results'), { recursive: true });
    writeFileSync(join(HERE, 'results/latest.json'), JSON.stringify(results, null, 2) + '\n');
    writeFileSync(join(HERE, 'results/latest.md'), md);
    console.log(md);
  } finally {
    if (sidecar) await sidecar.stop().catch(() => undefined);
    await Promise.all(children.map((c) => stopChild(c).catch(() => undefined)));
  }
}

const hard = setTimeout(() => {
  console.error('[bench] hard timeout (9 min); stopping');
  for (const c of children) c.kill('SIGKILL');
  process.exit(2);
}, 9 * 60_000);
hard.unref();
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => {
    for (const c of children) c.kill('SIGKILL');
    process.exit(130);
  });
main().then(
  () => process.exit(0),
  (e) => {
    console.error('[bench] failed:', e);
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 100);
  },
);
