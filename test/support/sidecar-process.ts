import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildSnapshot, parseConfigDocuments } from '../../crds/src/index.js';

/** Repository root (this file is test/support/sidecar-process.ts). */
export const ROOT = resolve(import.meta.dirname, '../..');
export const SIDECAR_BIN = join(ROOT, 'dist/sidecar/main.js');

/** The Secret reference of `botRouteConfig`'s key, for its targets. */
export const BOT_KEY_REF = 'credentials: { secretRef: { name: key, key: api-key } }';

/** A standalone config: Secret "key" (api-key sk-test) and route "r" serving model "bot" by the given targets (YAML flow maps). */
export function botRouteConfig(targets: string[], o: { apiKey?: string; spec?: string[] } = {}): string {
  return `
apiVersion: v1
kind: Secret
metadata: { name: key }
stringData: { api-key: ${o.apiKey ?? 'sk-test'} }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: r }
spec:
  model: bot
  targets:
${targets.map((t) => `    - ${t}`).join('\n')}
${(o.spec ?? []).map((line) => `  ${line}\n`).join('')}`;
}

/**
 * A ModelRoute whose model name is its name, with one target (a YAML flow mapping; several,
 * comma-separated, are its failover order) and one attempt.
 */
export function singleTargetRoute(name: string, target: string): string {
  return `
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: ${name} }
spec:
  model: ${name}
  retry: { attempts: 1 }
  targets: [${target}]
`;
}

/**
 * A sidecar in operator mode whose operator is out of reach (https://127.0.0.1:1, a token it
 * would refuse), serving `configYaml` as the last good snapshot on disk — what a restarted
 * sidecar serves from while the operator is away.
 */
export function startSidecarOperatorAway(configYaml: string): Promise<SidecarProcess> {
  const state = mkdtempSync(join(tmpdir(), 'paygo-state-'));
  const token = join(state, 'token');
  writeFileSync(token, 'not-a-real-token');
  writeFileSync(join(state, 'snapshot.json'), JSON.stringify(buildSnapshot({ ...parseConfigDocuments(configYaml) })));
  return startSidecar(null, { args: ['--operator', 'https://127.0.0.1:1', '--token-file', token, '--state-dir', state] });
}

/** POST /v1/chat/completions on a sidecar with a JSON body (as an app does). */
export function postChat(sidecar: { url: string }, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(`${sidecar.url}/v1/chat/completions`, { ...init, method: 'POST', headers: { 'content-type': 'application/json', ...(init.headers as Record<string, string> | undefined) }, body: JSON.stringify(body) });
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolvePort(port));
    });
  });
}

export interface SidecarProcess {
  url: string;
  metricsUrl: string;
  port: number;
  configPath: string;
  child: ChildProcess;
  /** Every stdout line (pino JSON) so far. */
  lines: string[];
  /** Parsed usage log records so far. */
  usage(): Array<Record<string, unknown>>;
  /** Waits for the usage log line of one request (send an x-request-id to know it). */
  usageLine(requestId: string): Promise<Record<string, unknown>>;
  /** Waits until a log line (from line index `since` on) matches. */
  waitForLog(pred: (rec: Record<string, unknown>) => boolean, opts?: { timeoutMs?: number; since?: number }): Promise<Record<string, unknown>>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts the built sidecar (dist/) as a real process on free 127.0.0.1 ports with the given
 * config YAML, or, with configYaml null, in operator mode (pass --operator … in args).
 */
export async function startSidecar(
  configYaml: string | null,
  opts: {
    env?: Record<string, string>;
    args?: string[];
    waitReady?: boolean;
    /** Start it another way than `node dist/sidecar/main.js` (e.g. `npx paygo-sidecar`); signals then go to its process group. */
    launcher?: { command: string; args: string[]; cwd?: string };
  } = {},
): Promise<SidecarProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'paygo-sidecar-'));
  const configPath = join(dir, 'config.yaml');
  if (configYaml !== null) writeFileSync(configPath, configYaml);
  const port = await freePort();
  const metricsPort = await freePort();
  const launcher = opts.launcher ?? { command: process.execPath, args: [SIDECAR_BIN] };
  const child = spawn(
    launcher.command,
    [...launcher.args, ...(configYaml !== null ? ['--config', configPath] : []), '--port', String(port), '--metrics-port', String(metricsPort), '--metrics-host', '127.0.0.1', ...(opts.args?.includes('--state-dir') ? [] : ['--state-dir', join(dir, 'state')]), ...(opts.args ?? [])],
    { env: { PATH: process.env.PATH ?? '', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'], ...(opts.launcher ? { detached: true, cwd: opts.launcher.cwd } : {}) },
  );
  // A launcher (npx → sh → node) may not pass signals on: signal the whole process group.
  const signal = (sig: NodeJS.Signals): void => {
    if (!opts.launcher || !child.pid) return void child.kill(sig);
    try {
      process.kill(-child.pid, sig);
    } catch {
      /* the group is gone already */
    }
  };
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    for (const w of waiters) w();
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));

  const parsed = (since = 0) =>
    lines.slice(since).flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  const waitForLog = (pred: (rec: Record<string, unknown>) => boolean, { timeoutMs = 10_000, since = 0 } = {}) =>
    new Promise<Record<string, unknown>>((resolveLog, reject) => {
      const check = () => {
        const hit = parsed(since).find(pred);
        if (hit) {
          waiters.delete(check);
          clearTimeout(timer);
          resolveLog(hit);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${stderr}\nlast lines:\n${lines.slice(-5).join('\n')}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });

  const url = `http://127.0.0.1:${port}`;
  // Ready when /readyz answers 200 (bounded); in operator mode optionally only listening.
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (opts.waitReady === false && lines.some((l) => l.includes('Server listening'))) break;
    if (child.exitCode !== null) throw new Error(`sidecar exited with ${child.exitCode}: ${stderr}\n${lines.join('\n')}`);
    try {
      const r = await fetch(`${url}/readyz`);
      if (r.ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      signal('SIGKILL');
      throw new Error(`sidecar not ready after 15 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    port,
    configPath,
    child,
    lines,
    usage: () => parsed().filter((r) => r.msg === 'usage'),
    usageLine: (requestId) => waitForLog((r) => r.msg === 'usage' && r.requestId === requestId),
    waitForLog,
    stop: async (sig = 'SIGTERM') => {
      if (child.exitCode === null) signal(sig);
      const killer = setTimeout(() => signal('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(killer);
      return code;
    },
  };
}
