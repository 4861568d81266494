import { spawn, type ChildProcess } from 'node:child_process';

export interface RunResult {
  /** Exit code; -1 after a timeout or a spawn error. */
  code: number;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface RunOptions {
  timeoutMs: number;
  stdin?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Copy the child's stderr to ours as it comes (progress of long builds). */
  teeStderr?: boolean;
  /** Sees the child once spawned (e.g. to stop it with everything else on failure). */
  onSpawn?: (child: ChildProcess) => void;
}

/** Runs a program to completion with a hard timeout; never rejects on a non-zero exit. */
export function runProgram(cmd: string, args: string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    opts.onSpawn?.(child);
    let stdout = '';
    let stderr = '';
    let done = false;
    let timedOut = false;
    const finish = (code: number, extra = ''): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ code, stdout, stderr: stderr + extra, timedOut });
    };
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
      finish(-1, `\n${cmd} timed out after ${opts.timeoutMs} ms`);
    }, opts.timeoutMs);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (opts.teeStderr) process.stderr.write(d);
    });
    child.on('error', (err) => finish(-1, `\n${cmd}: ${err.message}`));
    child.on('close', (code, signal) => finish(code ?? (signal ? 128 : -1)));
    if (opts.stdin !== undefined && child.stdin) {
      child.stdin.on('error', () => {}); // the child may exit before reading it all
      child.stdin.end(opts.stdin);
    }
  });
}
