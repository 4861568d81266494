// Journey 5: a real Prometheus (Debian's prometheus) with the scrape configuration README.md
// documents ("Without the Prometheus Operator", kubernetes_sd_configs role pod, here with the
// cluster's kubeconfig; built from its Go module by prometheus/install.sh, as Debian's package
// lacks the Kubernetes discovery) discovers the sidecars, and sum(paygo_cost_usd_total) equals the sum of
// the cost headers the app saw.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProgram } from '../support/run-program.js';
import { parse, stringify } from 'yaml';
import { apply, call, callUntilOk, deleteNamespaces, deployApp, deployProvider, namespace, nano, node, record, route, until, usd } from './lib.js';

let ns: string | undefined;
let upNs: string | undefined;
let prom: ChildProcess | undefined;
let work: string | undefined;
let promBin = '';
beforeAll(async () => {
  // Debian's prometheus has no kubernetes_sd_configs: prometheus/install.sh builds one (cached).
  const r = await runProgram('bash', [join(import.meta.dirname, 'prometheus', 'install.sh')], { timeoutMs: 60 * 60_000, teeStderr: true });
  if (r.code !== 0) throw new Error(`prometheus/install.sh failed: ${r.stderr}`);
  promBin = r.stdout.trim().split('\n').pop()!;
}, 60 * 60_000);
afterAll(async () => {
  if (prom && prom.exitCode === null) {
    prom.kill('SIGTERM');
    await new Promise((r) => prom!.once('exit', r));
  }
  if (work) rmSync(work, { recursive: true, force: true });
  await deleteNamespaces(ns, upNs);
});

/** The scrape_configs block of README.md's "See the cost" section. */
function readmeScrapeConfigs(): any[] {
  const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
  const m = /```yaml\n(scrape_configs:\n[\s\S]*?)```/.exec(readme);
  if (!m) throw new Error('README.md has no scrape_configs block');
  return parse(m[1]!).scrape_configs;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
    s.on('error', reject);
  });
}

describe('journey 5: Prometheus with the documented scrape configuration', () => {
  it('discovers both sidecars; sum(paygo_cost_usd_total) = the sum of the cost headers', async () => {
    upNs = await namespace('up5', { inject: false });
    ns = await namespace('prom');
    const provider = await deployProvider(upNs);
    await apply(ns, route('chat', provider, ['a']));
    const pods = await deployApp(ns, 'app', 2);

    let expected = 0n;
    let calls = 0;
    for (const p of pods) {
      const r = await callUntilOk(p, 'chat');
      expected += nano(r.headers!['x-paygo-cost-usd']!);
      calls++;
    }
    for (let i = 0; i < 20; i++) {
      const r = await call(pods[i % 2]!, 'chat', 1 + (i % 5));
      expect(r.status).toBe(200);
      expected += nano(r.headers!['x-paygo-cost-usd']!);
      calls++;
    }

    const scrape = readmeScrapeConfigs();
    for (const job of scrape) {
      job.scrape_interval = '2s';
      for (const sd of job.kubernetes_sd_configs) sd.kubeconfig_file = node().kubeconfig;
    }
    work = mkdtempSync(join(tmpdir(), 'paygo-e2e-node-prom-'));
    writeFileSync(join(work, 'prometheus.yml'), stringify({ global: { scrape_interval: '2s', evaluation_interval: '2s' }, scrape_configs: scrape }));
    const port = await freePort();
    const t0 = Date.now();
    prom = spawn(promBin, [`--config.file=${join(work, 'prometheus.yml')}`, `--storage.tsdb.path=${join(work, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let promLog = '';
    prom.stderr!.on('data', (d) => (promLog = (promLog + d).slice(-4000)));
    const api = async (path: string) => {
      if (prom!.exitCode !== null) throw new Error(`prometheus exited (${prom!.exitCode}): ${promLog}`);
      const r = await fetch(`http://127.0.0.1:${port}${path}`);
      return (await r.json()) as any;
    };

    try {
      const targets = await until(
        'Prometheus scraping both sidecars of the namespace',
        () => api('/api/v1/targets?state=active'),
        (t) => t.data.activeTargets.filter((x: any) => x.labels.namespace === ns && x.labels.job === 'paygo-sidecars' && x.health === 'up').length === 2,
        120_000,
        1000,
      );
      const mine = targets.value.data.activeTargets.filter((x: any) => x.labels.namespace === ns && x.labels.job === 'paygo-sidecars');
      expect(mine.map((x: any) => x.labels.pod).sort()).toEqual(pods.map((p) => p.name).sort());
      for (const x of mine) expect(x.scrapeUrl).toMatch(/:9464\/metrics$/);

      const q = encodeURIComponent(`sum(paygo_cost_usd_total{namespace="${ns}"})`);
      const want = Number(usd(expected));
      const res = await until(
        `sum(paygo_cost_usd_total) = ${usd(expected)}`,
        () => api(`/api/v1/query?query=${q}`),
        (r) => r.data?.result?.length === 1 && Math.abs(Number(r.data.result[0].value[1]) - want) < 1e-12,
        60_000,
        1000,
      );
      record('5-prometheus', { calls, costHeadersSum: usd(expected), promql: res.value.data.result[0].value[1], discoveredAfterMs: targets.ms, totalSinceStartMs: Date.now() - t0 });
    } catch (e) {
      console.log(promLog);
      throw e;
    }
  });
});
