/**
 * Helpers shared by the bench scripts: tracked child processes (all stopped at the end, also on
 * failure), /proc readings (RSS, CPU time), bounded waits.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { runProgram, type RunResult } from '../support/run-program.js';
import type { ClusterEnv } from '../support/cluster-env.js';

/** Repository root: these files run as dist/test/bench/*.js. */
export const ROOT = resolve(import.meta.dirname, '../../..');
/** The failover route's first target fails all but every FLAKY_EVERY-th request (upstream.ts). */
export const FLAKY_EVERY = 500;
/** A paced stream (upstream.ts /paced/<ms>/…) comes in this many writes: the first at once, the others <ms> apart. */
export const PACED_WRITES = 5;
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const log = (...a: unknown[]) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);

const tracked = new Set<ChildProcess>();

/** Spawns a child that stopAll() ends (SIGTERM, then SIGKILL after 5 s). */
export function spawnTracked(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  return track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts }));
}

function track(c: ChildProcess): ChildProcess {
  tracked.add(c);
  c.once('exit', () => tracked.delete(c));
  return c;
}

export async function stopChild(c: ChildProcess, graceMs = 5000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const done = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), graceMs);
  await done;
  clearTimeout(t);
}

export async function stopAll(): Promise<void> {
  await Promise.all([...tracked].map((c) => stopChild(c).catch(() => undefined)));
}

/** Kills every tracked child at once (signal handlers, hard timeouts). */
export function killAll(): void {
  for (const c of tracked) c.kill('SIGKILL');
}

/** Runs a program to completion with a hard timeout (a tracked child); never rejects on a non-zero exit. */
export function run(cmd: string, args: string[], timeoutMs: number, opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return runProgram(cmd, args, { timeoutMs, ...opts, onSpawn: track });
}

/** Waits for a line matching re on a child's stdout (bounded). */
export function waitForStdout(c: ChildProcess, re: RegExp, timeoutMs: number, what: string): Promise<RegExpExecArray> {
  return new Promise((resolvePromise, reject) => {
    let buf = '';
    let err = '';
    c.stderr?.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-2000)));
    const t = setTimeout(() => reject(new Error(`${what} did not start within ${timeoutMs} ms: ${err}`)), timeoutMs);
    c.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`${what} exited with ${code}: ${err}`));
    });
    c.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      const m = re.exec(buf);
      if (m) {
        clearTimeout(t);
        resolvePromise(m);
      }
    });
  });
}

/** Polls url until it answers (any status), bounded. */
export async function waitHttp(url: string, timeoutMs: number, init: RequestInit = {}): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await fetch(url, { ...init, signal: AbortSignal.timeout(2000) });
      return r;
    } catch {
      if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
      await sleep(100);
    }
  }
}

export interface ProcMem {
  /** VmRSS, VmHWM (peak RSS), RssAnon (private), RssFile (mapped files: the node binary…), in kB. */
  rss: number;
  hwm: number;
  anon: number;
  file: number;
}
export function procMem(pid: number): ProcMem {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const get = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? NaN);
    return { rss: get('VmRSS'), hwm: get('VmHWM'), anon: get('RssAnon'), file: get('RssFile') };
  } catch {
    return { rss: NaN, hwm: NaN, anon: NaN, file: NaN };
  }
}

/** user + system CPU time of a process in µs (USER_HZ = 100 on Linux: 10 ms resolution). */
export function cpuUs(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10_000;
  } catch {
    return NaN;
  }
}

export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Samples a process's memory every intervalMs and keeps the maxima (VmHWM is the kernel's own peak). */
export function memSampler(pid: number, intervalMs = 100): { peak: ProcMem; stop(): ProcMem } {
  const peak: ProcMem = { rss: 0, hwm: 0, anon: 0, file: 0 };
  const take = () => {
    const m = procMem(pid);
    if (!Number.isFinite(m.rss)) return;
    peak.rss = Math.max(peak.rss, m.rss);
    peak.hwm = Math.max(peak.hwm, m.hwm);
    peak.anon = Math.max(peak.anon, m.anon);
    peak.file = Math.max(peak.file, m.file);
  };
  take();
  const t = setInterval(take, intervalMs);
  t.unref();
  return {
    peak,
    stop() {
      take();
      clearInterval(t);
      return peak;
    },
  };
}

export const median = (xs: number[]): number => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
}

export const mb = (kb: number) => Math.round((kb / 1024) * 10) / 10;

/** Whether the control-plane binaries the cluster benches need are built (`make controlplane`) or given (KUBEBUILDER_ASSETS). */
export function controlPlaneBinariesAvailable(): boolean {
  if (process.env.KUBEBUILDER_ASSETS && existsSync(join(process.env.KUBEBUILDER_ASSETS, 'kube-apiserver'))) return true;
  const cache = process.env.PAYGO_CACHE_DIR ?? join(homedir(), '.cache/paygo');
  return ['kube-apiserver', 'etcd', 'kubectl'].every((b) => existsSync(join(cache, 'bin/current', b)));
}

/**
 * Runs a bench part that is its own process (propagation.ts, ratelimit.ts): `main`'s result goes
 * to stdout as one JSON line, exit 0. A failure, SIGINT/SIGTERM or `limitMs` passing prints
 * `{"measured":false,"reason":…}` instead, SIGKILLs the operator of the cluster it started and
 * stops that cluster (waiting at most `stopGraceMs`), and exits non-zero — so run.ts always gets a line.
 */
export function runBenchPart<R>(o: {
  name: string;
  limitMs: number;
  stopGraceMs: number;
  main(): Promise<R>;
  /** The cluster once it is up (undefined before). */
  cluster(): ClusterEnv | undefined;
  stop(env: ClusterEnv): Promise<unknown>;
  log(...a: unknown[]): void;
}): void {
  async function abandon(reason: string, code: number): Promise<never> {
    process.stdout.write(JSON.stringify({ measured: false, reason }) + '\n');
    const env = o.cluster();
    env?.operator.child.kill('SIGKILL');
    await Promise.race([env ? o.stop(env) : undefined, sleep(o.stopGraceMs)]).catch(() => undefined);
    process.exit(code);
  }
  const hard = setTimeout(() => void abandon(`${o.name} bench exceeded ${o.limitMs / 1000} s`, 2), o.limitMs);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void abandon(`stopped by ${sig}`, 130));
  hard.unref();
  o.main().then(
    (r) => {
      process.stdout.write(JSON.stringify(r) + '\n');
      process.exit(0);
    },
    (e: Error) => {
      o.log('failed:', e.stack ?? e);
      process.stdout.write(JSON.stringify({ measured: false, reason: `failed: ${e.message}` }) + '\n');
      process.exit(1);
    },
  );
}

