import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProgram } from '../support/run-program.js';
import { postChat, ROOT, startSidecar, type SidecarProcess } from '../support/sidecar-process.js';

/**
 * The documented CLI, run as the README says: `npx paygo-sidecar` in a clone, and the
 * `paygo-sidecar` / `paygo-operator` commands of a packed tarball installed with `npm install -g`.
 */
const NPM_ENV = {
  HOME: process.env.HOME ?? tmpdir(),
  // Never reach for the registry to find a bin: a missing local bin must fail, not download something.
  npm_config_offline: 'true',
  npm_config_update_notifier: 'false',
  npm_config_fund: 'false',
  npm_config_audit: 'false',
};
const env = { ...process.env, ...NPM_ENV };

/** The rows of the README's "Running the sidecar" options table: option and env names. */
function readmeOptionRows(): Array<{ option: string; env: string | undefined }> {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Running the sidecar'));
  const table = section.slice(0, section.indexOf('\n\n', section.indexOf('| option |')));
  return [...table.matchAll(/^\| `(--[a-z-]+)[^`]*` \| (?:`(PAYGO_[A-Z_]+)`)?/gm)].map((m) => ({ option: m[1]!, env: m[2] }));
}

async function chatWorks(sidecar: SidecarProcess): Promise<void> {
  const res = await postChat(sidecar, { model: 'demo', messages: [{ role: 'user', content: 'Hello' }] });
  expect(res.status).toBe(200);
  expect(res.headers.get('x-paygo-provider')).toBe('simulate');
  const body = (await res.json()) as { object: string; choices: unknown[] };
  expect(body.object).toBe('chat.completion');
  expect(body.choices).toHaveLength(1);
}

describe('npx paygo-sidecar in a clone', () => {
  it('--help prints every option of the README table, and nothing the table lacks', async () => {
    const r = await runProgram('npx', ['paygo-sidecar', '--help'], { cwd: ROOT, env, timeoutMs: 60_000 });
    expect(r.stderr).not.toMatch(/ERR!/);
    expect(r.code).toBe(0);
    const rows = readmeOptionRows();
    expect(rows.length).toBeGreaterThanOrEqual(15);
    for (const row of rows) {
      expect(r.stdout, row.option).toContain(row.option);
      if (row.env) expect(r.stdout, row.env).toContain(row.env);
    }
    const helpOptions = [...r.stdout.matchAll(/^ {2}(--[a-z-]+)/gm)].map((m) => m[1]);
    expect(helpOptions.sort()).toEqual(rows.map((row) => row.option).sort());
  });

  it('starts on examples/standalone.yaml as the README shows and serves the demo route', async () => {
    const sidecar = await startSidecar(null, {
      env: NPM_ENV,
      launcher: { command: 'npx', args: ['paygo-sidecar', '--config', 'examples/standalone.yaml'], cwd: ROOT },
    });
    try {
      await chatWorks(sidecar);
    } finally {
      await sidecar.stop();
    }
  });

  it('a bad option exits 2 with the usage on stderr', async () => {
    const r = await runProgram('npx', ['paygo-sidecar', '--no-such-option'], { cwd: ROOT, env, timeoutMs: 60_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Unknown option '--no-such-option'");
    expect(r.stderr).toContain('Usage: paygo-sidecar [options]');
  });
});

describe('a packed tarball installed with npm install -g', () => {
  let dir: string;
  let prefix: string;
  let bin: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'paygo-pack-'));
    prefix = join(dir, 'global');
    // dist/ is built by the test run already; prepack (the same tsc build) is not repeated here.
    const pack = await runProgram('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, env, timeoutMs: 120_000 });
    expect(pack.code, pack.stderr).toBe(0);
    const [info] = JSON.parse(pack.stdout) as Array<{ filename: string }>;
    // Dependencies resolve from the registry as a user's install would (tarballs mostly from the cache `npm ci` filled).
    const install = await runProgram('npm', ['install', '-g', '--prefer-offline', '--prefix', prefix, join(dir, info!.filename)], {
      env: { ...env, npm_config_offline: 'false' },
      timeoutMs: 300_000,
    });
    expect(install.code, install.stderr).toBe(0);
    bin = join(prefix, 'bin');
  }, 420_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('paygo-sidecar --help and paygo-operator --help print their usage', async () => {
    const sidecar = await runProgram(join(bin, 'paygo-sidecar'), ['--help'], { env, timeoutMs: 30_000 });
    expect(sidecar.code, sidecar.stderr).toBe(0);
    expect(sidecar.stdout).toContain('Usage: paygo-sidecar [options]');
    const operator = await runProgram(join(bin, 'paygo-operator'), ['--help'], { env, timeoutMs: 30_000 });
    expect(operator.code, operator.stderr).toBe(0);
    expect(operator.stdout).toContain('Usage: paygo-operator');
  });

  it('paygo-sidecar with no config serves the embedded default config (simulate provider)', async () => {
    const sidecar = await startSidecar(null, { launcher: { command: join(bin, 'paygo-sidecar'), args: [], cwd: dir } });
    try {
      await chatWorks(sidecar);
    } finally {
      await sidecar.stop();
    }
  });
});
