import { readFileSync } from 'node:fs';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startClusterEnv, until, type ClusterEnv } from '../support/cluster-env.js';
import { kubectl } from '../support/controlplane/controlplane.js';
import { fakePromptTokens, fakeReplyWords, openaiResponder } from '../support/fake-openai.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import type { SidecarProcess } from '../support/sidecar-process.js';

/**
 * Hard budgets across a fleet: 4 sidecar processes × 32 concurrent clients against one $1.00
 * budget. The spend is recorded independently on the upstream side (what the fake provider
 * served, priced here) and must never exceed the limit.
 */
const IN_PER_M = 2_500_000_000n; // nano-USD per million input tokens ("2.50")
const OUT_PER_M = 10_000_000_000n; // "10.00"
const LIMIT = 1_000_000_000n; // $1.00
const NS = 'shop';

let env: ClusterEnv;
let upstream: FakeUpstream;
const sidecars: SidecarProcess[] = [];
/** Spend the upstream served, by route model name, in nano-USD (independent of paygo). */
const served = new Map<string, bigint>();

function upstreamCost(body: Parameters<typeof fakePromptTokens>[0] & { max_tokens?: number }): bigint {
  const prompt = BigInt(fakePromptTokens(body));
  const completion = BigInt(Math.min(fakeReplyWords(body).length, body.max_tokens ?? Infinity));
  // rounded half up once, as any biller would
  return (prompt * IN_PER_M + completion * OUT_PER_M + 500_000n) / 1_000_000n;
}

const routeAndBudget = (run: string) => `
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: ${run}, namespace: ${NS} }
spec:
  model: ${run}
  targets: [{ provider: openai-compatible, model: ${run}-upstream, baseURL: ${upstream.url}/v1, pricing: { input: "2.50", output: "10.00" } }]
---
apiVersion: paygo.dev/v1alpha1
kind: Budget
metadata: { name: ${run}, namespace: ${NS} }
spec:
  scope: { routes: [${run}] }
  period: monthly
  limit: "1.00"
  action: block
  maxOutputTokensPerRequest: 40
  alertThresholds: [50, 90]
`;

const PROMPT = Array.from({ length: 30 }, (_, i) => `word${i}`).join(' ');

interface RunResult {
  run: string;
  servedNano: bigint;
  atFirstRefusalNano: bigint | undefined;
  refusals: number;
  ok: number;
}

/** 32 clients per sidecar, each until it is refused (bounded). */
async function drive(run: string, during?: (spentNano: () => bigint) => Promise<void>): Promise<RunResult> {
  served.set(run, 0n);
  let atFirstRefusal: bigint | undefined;
  let refusals = 0;
  let ok = 0;
  const deadline = Date.now() + 120_000;
  const client = async (s: SidecarProcess) => {
    let refusedInRow = 0;
    while (refusedInRow < 1 && Date.now() < deadline) {
      const res = await fetch(`${s.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: run, messages: [{ role: 'user', content: PROMPT }] }),
      }).catch(() => undefined);
      if (!res) continue;
      await res.arrayBuffer();
      if (res.status === 200) {
        ok++;
        refusedInRow = 0;
      } else if (res.status === 429) {
        atFirstRefusal ??= served.get(run)!;
        refusals++;
        refusedInRow++;
        await new Promise((r) => setTimeout(r, 20));
      } else {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  const load = Promise.all(sidecars.flatMap((s) => Array.from({ length: 32 }, () => client(s))));
  if (during) await during(() => served.get(run)!);
  await load;
  return { run, servedNano: served.get(run)!, atFirstRefusalNano: atFirstRefusal, refusals, ok };
}

const usd = (n: bigint | undefined) => (n === undefined ? 'n/a' : (Number(n) / 1e9).toFixed(6));

beforeAll(async () => {
  upstream = await startFakeUpstream((req) => {
    const body = req.body as Parameters<typeof upstreamCost>[0] & { model: string };
    const run = body.model.replace(/-upstream$/, '');
    served.set(run, (served.get(run) ?? 0n) + upstreamCost(body));
    return openaiResponder()(req);
  });
  env = await startClusterEnv([NS]);
  for (let i = 1; i <= 4; i++) sidecars.push(await env.sidecarFor(await env.podWithToken(NS, `shop-${i}`, { app: 'shop' })));
});

afterAll(async () => {
  await Promise.allSettled(sidecars.map((s) => s.stop()));
  await env?.stop();
  await upstream?.close();
});

/**
 * The Budget goes in first, and the load starts only once every sidecar knows it: spend before
 * a sidecar has the budget is not covered by it.
 */
async function ready(run: string) {
  const [route, budget] = routeAndBudget(run).split('\n---\n') as [string, string];
  await env.apply(budget);
  await env.apply(route);
  await until(
    `${run} and its budget on every sidecar`,
    () => Promise.all(sidecars.map((s) => fetch(s.metricsUrl).then((r) => r.text()).catch(() => ''))),
    (all) => all.every((m) => m.includes(`paygo_budget_limit_usd{namespace="${NS}",budget="${run}"`)),
    15_000,
  );
  await until(
    `${run} on every sidecar`,
    () => Promise.all(sidecars.map((s) => fetch(`${s.url}/v1/models`).then((r) => r.json() as Promise<{ data: Array<{ id: string }> }>).catch(() => ({ data: [] })))),
    (all) => all.every((m) => m.data.some((d) => d.id === run)),
    15_000,
  );
}

describe('fleet-wide hard budget', () => {
  const results: RunResult[] = [];

  for (let i = 1; i <= 5; i++) {
    it(`run ${i}: 4 sidecars × 32 clients never overspend $1.00 and use at least $0.95 before refusing`, async () => {
      const run = `run-${i}`;
      await ready(run);
      const r = await drive(run);
      results.push(r);
      console.log(`[budget] ${run}: served $${usd(r.servedNano)} (${r.ok} ok), first refusal at $${usd(r.atFirstRefusalNano)}, ${r.refusals} refusals`);
      expect(r.servedNano).toBeLessThanOrEqual(LIMIT);
      expect(r.atFirstRefusalNano).toBeDefined();
      expect(r.atFirstRefusalNano!).toBeGreaterThanOrEqual(950_000_000n);
      const status = JSON.parse(await env.k(['get', 'budget', run, '-n', NS, '-o', 'json'])) as { status: { spent: string; state: string } };
      await until('status settles', async () => JSON.parse(await env.k(['get', 'budget', run, '-n', NS, '-o', 'json'])) as { status: { spent: string; state: string } }, (b) => Number(b.status.spent) * 1e9 >= Number(r.servedNano) - 1, 10_000);
      expect(Number(status.status.spent)).toBeLessThanOrEqual(1);
      // The book a new leader restores from: one allowance per sidecar pod, never more than the limit in all.
      const book = JSON.parse(await env.k(['get', 'budget', run, '-n', NS, '-o', 'json'])) as { status: { allowances: Array<{ pod: string; granted: string }> } };
      expect(book.status.allowances.map((a) => a.pod).sort()).toEqual(['shop-1', 'shop-2', 'shop-3', 'shop-4']);
      expect(book.status.allowances.reduce((sum, a) => sum + BigInt(a.granted), 0n)).toBeLessThanOrEqual(LIMIT);
    }, 180_000);
  }

  it('operator killed and restarted mid-run: nothing lost, still no overspend', async () => {
    const run = 'restart';
    await ready(run);
    const r = await drive(run, async (spent) => {
      await until('half spent', async () => spent(), (s) => s >= 400_000_000n, 60_000);
      await env.operator.stop('SIGKILL');
      await new Promise((res) => setTimeout(res, 1500));
      await env.restartOperator();
    });
    console.log(`[budget] ${run}: served $${usd(r.servedNano)}, first refusal at $${usd(r.atFirstRefusalNano)}`);
    expect(r.servedNano).toBeLessThanOrEqual(LIMIT);
    expect(r.servedNano).toBeGreaterThanOrEqual(950_000_000n);
    const { value } = await until(
      'spend recorded after the restart',
      async () => JSON.parse(await env.k(['get', 'budget', run, '-n', NS, '-o', 'json'])) as { status: { spent: string } },
      (b) => Math.round(Number(b.status.spent) * 1e9) === Number(r.servedNano),
      20_000,
    );
    expect(Number(value.status.spent)).toBeLessThanOrEqual(1);
  }, 240_000);

  it('a duplicated usage report is not double counted', async () => {
    const run = 'dup';
    await ready(run);
    const token = readFileSync(await env.podWithToken(NS, 'reporter', { app: 'shop' }), 'utf8').trim();
    const periodStart = (JSON.parse(await env.k(['get', 'budget', run, '-n', NS, '-o', 'json'])) as { status?: { periodStart?: string } }).status?.periodStart;
    const start = periodStart ?? new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 1)).toISOString();
    const agent = new Agent({ connect: { ca: readFileSync(env.caFile, 'utf8') } });
    const sync = (seq: number, spent: string, want: string) =>
      undiciFetch(`https://127.0.0.1:${env.operatorPort}/v1/budget/sync`, {
        method: 'POST',
        dispatcher: agent,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ seq, entries: [{ name: run, periodStart: start, spent, keep: spent, want }] }),
      }).then(async (res) => ({ status: res.status, body: (await res.json()) as { entries: Array<{ granted: string }> } }));
    expect((await sync(1, '0', '5000000')).body.entries[0]!.granted).toBe('5000000');
    const first = await sync(2, '3000000', '0');
    const dup = await sync(2, '3000000', '0');
    expect(first.status).toBe(200);
    expect(dup.body).toEqual(first.body);
    const { value } = await until('status', async () => JSON.parse(await env.k(['get', 'budget', run, '-n', NS, '-o', 'json'])) as { status?: { spent?: string } }, (b) => b.status?.spent === '0.003000000');
    expect(value.status!.spent).toBe('0.003000000');
  });

  it('downgrade and alert budgets work across the fleet', async () => {
    const target = (name: string) => `targets: [{ provider: openai-compatible, model: ${name}-upstream, baseURL: ${upstream.url}/v1, pricing: { input: "2.50", output: "10.00" } }]`;
    await env.apply(`
apiVersion: paygo.dev/v1alpha1
kind: Budget
metadata: { name: premium-cap, namespace: ${NS} }
spec: { scope: { routes: [premium] }, period: daily, limit: "0.01", action: downgrade, downgradeTo: economy, maxOutputTokensPerRequest: 40 }
---
apiVersion: paygo.dev/v1alpha1
kind: Budget
metadata: { name: watch, namespace: ${NS} }
spec: { scope: { routes: [watched] }, period: daily, limit: "0.002", action: alert, alertThresholds: [100] }
`);
    await env.apply(`
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: premium, namespace: ${NS} }
spec: { model: premium, ${target('premium')} }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: economy, namespace: ${NS} }
spec: { model: economy, ${target('economy')} }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: watched, namespace: ${NS} }
spec: { model: watched, ${target('watched')} }
`);
    const s = sidecars[0]!;
    await until('routes and budgets on the sidecar', () => fetch(s.metricsUrl).then((r) => r.text()), (m) => m.includes('budget="premium-cap"') && m.includes('budget="watch"'), 15_000);
    await until('routes on the sidecar', () => fetch(`${s.url}/v1/models`).then((r) => r.text()), (t) => t.includes('"watched"') && t.includes('"premium"'), 15_000);
    const chat = (model: string) =>
      fetch(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'user', content: PROMPT }] }) });
    let downgraded: Response | undefined;
    for (let i = 0; i < 60 && !downgraded; i++) {
      const res = await chat('premium');
      expect(res.status).toBe(200);
      if (res.headers.get('x-paygo-downgraded')) downgraded = res;
      else await res.arrayBuffer();
    }
    expect(downgraded?.headers.get('x-paygo-downgraded')).toBe('premium');
    expect(downgraded?.headers.get('x-paygo-route')).toBe('economy');
    await downgraded?.arrayBuffer();
    for (let i = 0; i < 10; i++) expect((await chat('watched')).status).toBe(200); // ~$0.004 against $0.002: served anyway
    await until(
      'alert Event',
      async () => JSON.parse(await env.k(['get', 'events', '-n', NS, '--field-selector', 'reason=BudgetThreshold', '-o', 'json'])) as { items: Array<{ message: string }> },
      (e) => e.items.some((x) => x.message.includes('budget watch reached 100%')),
      15_000,
    );
  });

  it('invalid Budgets are rejected by the API server with a message naming the field', async () => {
    const bad = await kubectl(env.cp, ['apply', '-f', '-'], `apiVersion: paygo.dev/v1alpha1\nkind: Budget\nmetadata: { name: bad, namespace: ${NS} }\nspec: { period: daily, limit: "5", action: downgrade }\n`);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/downgradeTo/);
    const badLimit = await kubectl(env.cp, ['apply', '-f', '-'], `apiVersion: paygo.dev/v1alpha1\nkind: Budget\nmetadata: { name: bad2, namespace: ${NS} }\nspec: { period: daily, limit: "1.5e3" }\n`);
    expect(badLimit.code).not.toBe(0);
    expect(badLimit.stderr).toMatch(/spec\.limit/);
  });

  it('a Budget only the operator can find invalid (unknown time zone) says so in its status and is not enforced; fixed, it is', async () => {
    const budget = (timeZone: string) => `apiVersion: paygo.dev/v1alpha1\nkind: Budget\nmetadata: { name: tz, namespace: ${NS} }\nspec: { period: daily, limit: "5", timeZone: ${timeZone} }\n`;
    await env.apply(budget('Mars/Olympus_Mons'));
    const ready = async () =>
      (JSON.parse(await env.k(['get', 'budget', 'tz', '-n', NS, '-o', 'json'])) as { status?: { periodStart?: string; conditions?: Array<{ type: string; status: string; reason: string; message: string }> } }).status;
    const { value: invalid } = await until('Invalid condition', ready, (st) => st?.conditions?.some((c) => c.type === 'Ready' && c.reason === 'Invalid') ?? false);
    const cond = invalid!.conditions!.find((c) => c.type === 'Ready')!;
    expect(cond.status).toBe('False');
    expect(cond.message).toMatch(/spec\.timeZone.*Mars\/Olympus_Mons.*not enforced/);
    expect(await fetch(sidecars[0]!.metricsUrl).then((r) => r.text())).not.toMatch(/paygo_budget_limit_usd\{[^}]*budget="tz"/);

    await env.apply(budget('Europe/Berlin'));
    const { value: fixed } = await until('Ready again', ready, (st) => st?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false);
    expect(fixed!.periodStart).toMatch(/^\d{4}-\d{2}-\d{2}T2[23]:00:00\.000Z$/); // midnight in Berlin, before any spend
    await until('tz on the sidecars', () => fetch(sidecars[0]!.metricsUrl).then((r) => r.text()), (m) => m.includes(`paygo_budget_limit_usd{namespace="${NS}",budget="tz"`), 15_000);
    await env.k(['delete', 'budget', 'tz', '-n', NS]);
  });

  it('threshold Events were recorded and kubectl get budgets shows the numbers', async () => {
    const events = await env.k(['get', 'events', '-n', NS, '--field-selector', 'reason=BudgetThreshold', '-o', 'json']);
    const messages = (JSON.parse(events) as { items: Array<{ message: string }> }).items.map((e) => e.message);
    expect(messages.some((m) => m.includes('run-1 reached 90%'))).toBe(true);
    const table = await env.k(['get', 'budgets', '-n', NS]);
    expect(table).toMatch(/run-1\s+monthly\s+1\.00\s+0\.9\d+\s+0\.0\d+\s+(Exceeded|Warning)/);
  });
});
