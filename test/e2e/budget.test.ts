import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseUsd } from '../../crds/src/money.js';
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

const routeAndBudget = (run: string, limit = '1.00') => `
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
  limit: "${limit}"
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
  let n = 0;
  upstream = await startFakeUpstream((req) => {
    const body = req.body as Parameters<typeof upstreamCost>[0] & { model: string };
    const run = body.model.replace(/-upstream$/, '');
    // A provider bills what it started generating, whether or not the answer reaches anyone.
    served.set(run, (served.get(run) ?? 0n) + upstreamCost(body));
    const reply = openaiResponder()(req);
    // Answers with a realistic long tail: one in ten takes 0.3–1 s.
    if (run.startsWith('tail-') && reply.kind === 'json') reply.delayMs = ++n % 10 === 0 ? 300 + ((n * 7919) % 700) : 5 + ((n * 31) % 35);
    return reply;
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
async function ready(run: string, fleet: SidecarProcess[] = sidecars, limit = '1.00') {
  const [route, budget] = routeAndBudget(run, limit).split('\n---\n') as [string, string];
  await env.apply(budget);
  await env.apply(route);
  await until(
    `${run} and its budget on every sidecar`,
    () => Promise.all(fleet.map((s) => fetch(s.metricsUrl).then((r) => r.text()).catch(() => ''))),
    (all) => all.every((m) => m.includes(`paygo_budget_limit_usd{namespace="${NS}",budget="${run}"`)),
    15_000,
  );
  await until(
    `${run} on every sidecar`,
    () => Promise.all(fleet.map((s) => fetch(`${s.url}/v1/models`).then((r) => r.json() as Promise<{ data: Array<{ id: string }> }>).catch(() => ({ data: [] })))),
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

  it('threshold Events are recorded and kubectl get budgets shows the numbers', async () => {
    const run = 'thresholds';
    await ready(run);
    await drive(run);
    const { value: messages } = await until(
      'threshold Events',
      async () => (JSON.parse(await env.k(['get', 'events', '-n', NS, '--field-selector', 'reason=BudgetThreshold', '-o', 'json'])) as { items: Array<{ message: string }> }).items.map((e) => e.message),
      (m) => m.some((x) => x.includes(`budget ${run} reached 90%`)),
      20_000,
    );
    expect(messages.some((m) => m.includes(`budget ${run} reached 50%`))).toBe(true);
    const table = await env.k(['get', 'budgets', '-n', NS]);
    expect(table).toMatch(new RegExp(`${run}\\s+monthly\\s+1\\.00\\s+0\\.9\\d+\\s+0\\.0\\d+\\s+(Exceeded|Warning)`));
  }, 180_000);
});

/**
 * Hard budgets through what every rolling deploy and every crash does to a fleet: sidecars
 * drained (SIGTERM), restarted in the same pod, replaced by new pods, SIGKILLed, and the operator
 * killed, while 4 × 16 clients spend against one budget and the provider answers with a long
 * tail. What the provider billed (counted when it starts an answer, whether or not anyone reads
 * it) must never exceed the limit.
 */
describe('hard budget through drains, crashes and replacements', () => {
  const TAIL_LIMIT = 2_000_000_000n; // $2.00
  /** Every sidecar process started for these runs (their usage logs outlive them). */
  const processes: SidecarProcess[] = [];

  interface Slot {
    pod: string;
    tokenFile: string;
    stateDir: string;
    current: SidecarProcess;
  }

  async function startProcess(tokenFile: string, stateDir: string): Promise<SidecarProcess> {
    const s = await env.sidecarFor(tokenFile, { stateDir });
    processes.push(s);
    return s;
  }

  async function startSlot(pod: string): Promise<Slot> {
    const tokenFile = await env.podWithToken(NS, pod, { app: 'shop' });
    const stateDir = mkdtempSync(join(env.work, `state-${pod}-`));
    return { pod, tokenFile, stateDir, current: await startProcess(tokenFile, stateDir) };
  }

  /** Waits until a (new) sidecar serves the run's route under its budget. */
  async function serving(s: SidecarProcess, run: string): Promise<void> {
    await until(`${run} and its budget on a new sidecar`, () => fetch(s.metricsUrl).then((r) => r.text()).catch(() => ''), (m) => m.includes(`paygo_budget_limit_usd{namespace="${NS}",budget="${run}"`), 15_000);
    await until(`${run} on a new sidecar`, () => fetch(`${s.url}/v1/models`).then((r) => r.text()).catch(() => ''), (t) => t.includes(`"${run}"`), 15_000);
  }

  /** A container restart: the process drains (or is killed), then the pod's next process starts. */
  async function restartInPod(slot: Slot, run: string, signal: NodeJS.Signals): Promise<number | null> {
    const code = await slot.current.stop(signal);
    const next = await startProcess(slot.tokenFile, slot.stateDir);
    await serving(next, run);
    slot.current = next;
    return code;
  }

  /**
   * A rolling deploy (SIGTERM) or a node lost (SIGKILL): a new pod takes over, the old one's
   * process ends, and its Pod object is deleted, as Kubernetes does once its containers stopped.
   */
  async function replacePod(slot: Slot, run: string, signal: NodeJS.Signals, newPod: string): Promise<number | null> {
    const old = { ...slot };
    const fresh = await startSlot(newPod);
    await serving(fresh.current, run);
    Object.assign(slot, fresh);
    const code = await old.current.stop(signal);
    await env.k(['delete', 'pod', old.pod, '-n', NS, '--wait=false']);
    return code;
  }

  interface TailRun {
    billed: bigint;
    ok: number;
    /** Σ x-paygo-cost-usd of the 200 answers. */
    costHeaders: bigint;
    /** Answers other than 200 and the final 429 budget_exceeded, by status and code. */
    retried: Map<string, number>;
    atFirstRefusal: bigint | undefined;
  }

  async function driveSlots(run: string, slots: Slot[], during: (billed: () => bigint) => Promise<void>): Promise<TailRun> {
    served.set(run, 0n);
    const out: TailRun = { billed: 0n, ok: 0, costHeaders: 0n, retried: new Map(), atFirstRefusal: undefined };
    const count = (k: string) => out.retried.set(k, (out.retried.get(k) ?? 0) + 1);
    const deadline = Date.now() + 150_000;
    const client = async (slot: Slot) => {
      while (Date.now() < deadline) {
        const res = await fetch(`${slot.current.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: run, messages: [{ role: 'user', content: PROMPT }] }),
        }).catch(() => undefined);
        if (!res) {
          count('connect'); // a sidecar being restarted
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        const body = (await res.json().catch(() => ({}))) as { error?: { code?: string } };
        if (res.status === 200) {
          out.ok++;
          out.costHeaders += parseUsd(res.headers.get('x-paygo-cost-usd') ?? 'x');
          continue;
        }
        if (res.status === 429 && body.error?.code === 'budget_exceeded') {
          out.atFirstRefusal ??= served.get(run)!;
          return;
        }
        count(`${res.status} ${body.error?.code}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const load = Promise.all(slots.flatMap((slot) => Array.from({ length: 16 }, () => client(slot))));
    await during(() => served.get(run)!);
    await load;
    out.billed = served.get(run)!;
    return out;
  }

  type Status = { spent: string; unreported: string; allowances: Array<{ pod: string; state: string; granted: string; spent: string }>; retired?: { processes: number } };
  const status = async (run: string) => ((JSON.parse(await env.k(['get', 'budget', run, '-n', NS, '-o', 'json'])) as { status: Status }).status);
  const atLeast = (share: number) => (b: bigint) => b >= (TAIL_LIMIT * BigInt(Math.round(share * 100))) / 100n;

  it('drains (rolling deploy, container restarts): never overspent, ≥ 90% used, and status.spent, the usage logs and the cost headers all equal what the provider billed', async () => {
    const run = 'tail-drain';
    const slots = await Promise.all([1, 2, 3, 4].map((i) => startSlot(`${run}-${i}`)));
    await ready(run, slots.map((s) => s.current), '2.00');
    const events: string[] = [];
    const r = await driveSlots(run, slots, async (billed) => {
      await until('10% billed', async () => billed(), atLeast(0.1), 60_000);
      expect(await replacePod(slots[0]!, run, 'SIGTERM', `${run}-1b`)).toBe(0);
      events.push(`rolling replace at $${usd(billed())}`);
      await until('25% billed', async () => billed(), atLeast(0.25), 60_000);
      expect(await restartInPod(slots[1]!, run, 'SIGTERM')).toBe(0);
      events.push(`container restart at $${usd(billed())}`);
      await until('40% billed', async () => billed(), atLeast(0.4), 60_000);
      expect(await replacePod(slots[2]!, run, 'SIGTERM', `${run}-3b`)).toBe(0);
      events.push(`rolling replace at $${usd(billed())}`);
      expect(billed()).toBeLessThan((TAIL_LIMIT * 9n) / 10n); // every drain happened while the budget still had money
    });
    console.log(`[budget] ${run}: billed $${usd(r.billed)} (${r.ok} ok), first refusal at $${usd(r.atFirstRefusal)}; ${events.join(', ')}; retried: ${JSON.stringify([...r.retried])}`);
    expect(r.billed).toBeLessThanOrEqual(TAIL_LIMIT);
    expect(r.atFirstRefusal!).toBeGreaterThanOrEqual((TAIL_LIMIT * 9n) / 10n);
    // A draining sidecar never says the budget is exhausted: only 503s with a short Retry-After, or a closed port.
    for (const k of r.retried.keys()) expect(k).toMatch(/^(connect|503 shutting_down|503 budget_unavailable)$/);
    expect(r.costHeaders).toBe(r.billed);
    const { value } = await until('status.spent equals what was billed', () => status(run), (st) => parseUsd(st.spent) === r.billed, 20_000);
    expect(value.unreported).toBe('0.000000000');
    expect(value.allowances.filter((a) => a.state === 'Closed').length + (value.retired?.processes ?? 0)).toBe(3);
    expect(value.allowances.every((a) => a.state === 'Active' || a.state === 'Closed')).toBe(true);
    // Every billed answer is in a usage log, drained processes' included.
    const logged = processes.flatMap((p) => p.usage()).filter((u) => u.route === run).reduce((sum, u) => sum + BigInt((u.costNanoUsd as number | null) ?? 0), 0n);
    expect(logged).toBe(r.billed);
    await Promise.all(slots.map((s) => s.current.stop()));
  }, 300_000);

  it('crashes (SIGKILLed sidecars, a pod lost with its node, the operator killed): never overspent; status.spent covers every billed answer, over by at most what the killed processes held', async () => {
    const run = 'tail-crash';
    const slots = await Promise.all([1, 2, 3, 4].map((i) => startSlot(`${run}-${i}`)));
    await ready(run, slots.map((s) => s.current), '2.00');
    const events: string[] = [];
    const r = await driveSlots(run, slots, async (billed) => {
      await until('15% billed', async () => billed(), atLeast(0.15), 60_000);
      await restartInPod(slots[0]!, run, 'SIGKILL');
      events.push(`sidecar SIGKILLed at $${usd(billed())}`);
      await until('30% billed', async () => billed(), atLeast(0.3), 60_000);
      await env.operator.stop('SIGKILL');
      await new Promise((res) => setTimeout(res, 1500));
      await env.restartOperator();
      events.push(`operator killed at $${usd(billed())}`);
      await until('45% billed', async () => billed(), atLeast(0.45), 60_000);
      await replacePod(slots[1]!, run, 'SIGKILL', `${run}-2b`);
      events.push(`pod lost at $${usd(billed())}`);
      await until('60% billed', async () => billed(), atLeast(0.6), 60_000);
      expect(await restartInPod(slots[2]!, run, 'SIGTERM')).toBe(0);
      events.push(`sidecar drained at $${usd(billed())}`);
    });
    console.log(`[budget] ${run}: billed $${usd(r.billed)} (${r.ok} ok), first refusal at $${usd(r.atFirstRefusal)}; ${events.join(', ')}; retried: ${JSON.stringify([...r.retried])}`);
    expect(r.billed).toBeLessThanOrEqual(TAIL_LIMIT);
    for (const k of r.retried.keys()) expect(k).toMatch(/^(connect|503 shutting_down|503 budget_unavailable)$/);
    // Both killed processes are known to have ended: the restarted one's when its pod's next
    // process reported, the lost pod's once its allowance expired unrenewed (30 s) and the
    // operator found its Pod deleted.
    const { value } = await until(
      'both killed processes Lost',
      () => status(run),
      (st) => st.allowances.filter((a) => a.state === 'Lost').length === 2,
      60_000,
    );
    const lost = value.allowances.filter((a) => a.state === 'Lost');
    expect(lost.map((a) => a.pod).sort()).toEqual([`${run}-1`, `${run}-2`]);
    // What was reported never exceeds what was billed, and reported plus what the killed
    // processes held (unreported) covers it.
    expect(parseUsd(value.spent)).toBeGreaterThanOrEqual(r.billed);
    expect(parseUsd(value.spent) - parseUsd(value.unreported)).toBeLessThanOrEqual(r.billed);
    const heldByKilled = lost.reduce((sum, a) => sum + BigInt(a.granted) - BigInt(a.spent), 0n);
    expect(parseUsd(value.unreported)).toBe(heldByKilled);
    expect(parseUsd(value.spent) - r.billed).toBeLessThanOrEqual(heldByKilled);
    console.log(`[budget] ${run}: status.spent $${value.spent} of which unreported $${value.unreported}; billed $${usd(r.billed)}`);
    await Promise.all(slots.map((s) => s.current.stop()));
  }, 300_000);
});
