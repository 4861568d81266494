import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, freePort } from './sidecar-process.js';

export const OPERATOR_BIN = join(ROOT, 'dist/operator/main.js');

export interface OperatorProcess {
  url: string;
  healthUrl: string;
  identity: string;
  child: ChildProcess;
  lines: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts the built operator as a real process against a kubeconfig, on free 127.0.0.1 ports. */
export async function startOperator(kubeconfig: string, opts: { identity?: string; namespace?: string; port?: number; args?: string[] } = {}): Promise<OperatorProcess> {
  const port = opts.port ?? (await freePort());
  const healthPort = await freePort();
  const identity = opts.identity ?? `op-${port}`;
  const child = spawn(
    process.execPath,
    [OPERATOR_BIN, '--kubeconfig', kubeconfig, '--namespace', opts.namespace ?? 'paygo-system', '--listen', `127.0.0.1:${port}`, '--health', `127.0.0.1:${healthPort}`, '--identity', identity, ...(opts.args ?? [])],
    { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const lines: string[] = [];
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const healthUrl = `http://127.0.0.1:${healthPort}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`operator exited with ${child.exitCode}: ${stderr}\n${lines.join('\n')}`);
    try {
      if ((await fetch(`${healthUrl}/readyz`)).ok) break;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`operator not ready after 30 s: ${stderr}\n${lines.slice(-20).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: `https://127.0.0.1:${port}`,
    healthUrl,
    identity,
    child,
    lines,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null) child.kill(signal);
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(killer);
      return code;
    },
  };
}
