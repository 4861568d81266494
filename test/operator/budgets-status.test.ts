import { AuthenticationV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import Fastify, { type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { Gauge, Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BUDGET_SYNC_PATH, type BudgetStatus, type BudgetSyncResponse } from '../../crds/src/index.js';
import { TokenAuthenticator } from '../../operator/auth.js';
import { BudgetService } from '../../operator/budgets.js';
import { ClusterCache } from '../../operator/cache.js';
import { BUDGETS, EVENTS, FakeKube, PODS, until, type KubeObject } from '../support/fake-kube.js';
import { TestClock, budget, pod, post } from '../support/operator-fixtures.js';

const PERIOD = '2026-03-10T00:00:00.000Z';
const USD = 1_000_000_000n;

let kube: FakeKube;
let clock: TestClock;
let cache: ClusterCache;
let leader: boolean;
let services: BudgetService[];
let apps: FastifyInstance[];
let logs: Array<Record<string, unknown>>;
let registry: Registry;

beforeEach(async () => {
  kube = await new FakeKube().start();
  clock = new TestClock();
  kube.put(PODS, pod('a', 'a-1', 'uid-a1'));
  kube.put(PODS, pod('a', 'a-2', 'uid-a2'));
  kube.registerToken('tok-a1', { namespace: 'a', podName: 'a-1', podUid: 'uid-a1' });
  kube.registerToken('tok-a2', { namespace: 'a', podName: 'a-2', podUid: 'uid-a2' });
  kube.registerToken('tok-gone', { namespace: 'a', podName: 'a-9', podUid: 'uid-a9' });
  cache = new ClusterCache(kube.kubeConfig(), pino({ level: 'silent' }));
  leader = true;
  services = [];
  apps = [];
  logs = [];
  await cache.start();
});

afterEach(async () => {
  vi.useRealTimers();
  for (const s of services) s.stop();
  await Promise.all(apps.map((a) => a.close()));
  await cache.stop();
  await kube.stop();
});

async function service(o: { tickMs?: number } = {}): Promise<{ svc: BudgetService; base: string }> {
  const kc = kube.kubeConfig();
  registry = new Registry();
  const gauge = (name: string) => new Gauge({ name, help: name, labelNames: ['namespace', 'budget', 'period'], registers: [registry] });
  const svc = new BudgetService({
    cache,
    custom: kc.makeApiClient(CustomObjectsApi),
    core: kc.makeApiClient(CoreV1Api),
    authenticator: new TokenAuthenticator(kc.makeApiClient(AuthenticationV1Api), kc.makeApiClient(CoreV1Api), { now: clock.nowMs }),
    isLeader: () => leader,
    now: clock.now,
    logger: pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) }),
    fieldManager: 'fm-test',
    gauges: { limit: gauge('limit'), spent: gauge('spent'), reserved: gauge('reserved'), remaining: gauge('remaining') },
    ttlMs: 30_000,
    graceMs: 600_000,
    ...o,
  });
  services.push(svc);
  const app = Fastify();
  svc.register(app);
  apps.push(app);
  return { svc, base: await app.listen({ host: '127.0.0.1', port: 0 }) };
}

/** Puts a Budget and waits until the cache has it. */
async function putBudget(obj: KubeObject): Promise<KubeObject> {
  const stored = kube.put(BUDGETS, obj);
  await until(() => cache.budgets.get(obj.metadata.name!, obj.metadata.namespace)?.metadata?.resourceVersion === stored.metadata.resourceVersion, 'the cache');
  return stored;
}

interface Entry {
  spent?: bigint;
  keep?: bigint;
  want?: bigint;
  need?: bigint;
  name?: string;
}
async function sync(base: string, token: string, seq: number, e: Entry, o: { final?: boolean } = {}) {
  const body = {
    seq,
    boot: 'boot-1',
    ...(o.final ? { final: true } : {}),
    entries: [{ name: e.name ?? 'daily', periodStart: PERIOD, spent: String(e.spent ?? 0n), keep: String(e.keep ?? 0n), want: String(e.want ?? 0n), ...(e.need !== undefined ? { need: String(e.need) } : {}) }],
  };
  const r = await post(base, BUDGET_SYNC_PATH, token, body);
  return { status: r.status, entry: (r.json as BudgetSyncResponse | undefined)?.entries?.[0], json: r.json };
}

const budgetStatus = (name = 'daily') => kube.get(BUDGETS, 'a', name)?.status as (BudgetStatus & Record<string, unknown>) | undefined;
const statusWrites = (name?: string) => kube.calls({ verb: 'update', resource: BUDGETS, subresource: 'status' }).filter((w) => name === undefined || w.name === name);
const ready = () => budgetStatus()!.conditions!.find((c) => c.type === 'Ready')!;
async function gauges(): Promise<Record<string, number | undefined>> {
  const out: Record<string, number | undefined> = {};
  for (const m of await registry.getMetricsAsJSON()) out[m.name] = (m.values as Array<{ value: number }>)[0]?.value;
  return out;
}
describe('BudgetService: the status it writes', () => {
  it('Ok below the lowest alert threshold; the gauges show limit, spent, reserved and the remaining fraction', async () => {
    await putBudget(budget('a', 'daily', { limit: '10.00', alertThresholds: [50, 90] }));
    const { base } = await service();
    await sync(base, 'tok-a1', 1, { want: 4n * USD });
    await sync(base, 'tok-a1', 2, { spent: USD + USD / 2n, keep: 4n * USD });
    const { svc } = { svc: services[0]! };
    await svc.persist('a/daily');
    expect(budgetStatus()).toMatchObject({ state: 'Ok', spent: '1.500000000', reserved: '2.500000000', remaining: '6.000000000', unreported: '0.000000000', observedGeneration: 1, periodStart: PERIOD });
    expect(ready()).toMatchObject({ status: 'True', reason: 'Enforcing', message: '1.500000000 of 10.00 USD spent this daily period (15.00%)' });
    expect(await gauges()).toEqual({ limit: 10, spent: 1.5, reserved: 2.5, remaining: 0.6 });
    const labels = (await registry.getMetricsAsJSON())[0]!.values[0]!.labels;
    expect(labels).toEqual({ namespace: 'a', budget: 'daily', period: 'daily' });
  });

  it('Warning from the lowest alert threshold on (exactly at it), with the percentage to two decimals', async () => {
    await putBudget(budget('a', 'daily', { limit: '30.00', alertThresholds: [90, 40] }));
    const { svc, base } = await service();
    await sync(base, 'tok-a1', 1, { want: 20n * USD });
    await sync(base, 'tok-a1', 2, { spent: 12n * USD - 1n, keep: 20n * USD });
    await svc.persist('a/daily');
    expect(budgetStatus()!.state).toBe('Ok');
    expect(ready().message).toBe('11.999999999 of 30.00 USD spent this daily period (39.99%)');
    await sync(base, 'tok-a1', 3, { spent: 12n * USD, keep: 20n * USD });
    await svc.persist('a/daily');
    expect(budgetStatus()!.state).toBe('Warning');
    expect(ready()).toMatchObject({ reason: 'Enforcing', message: '12.000000000 of 30.00 USD spent this daily period (40.00%)' });
  });

  it('without alert thresholds, Warning starts at 100 %, where the budget is Exceeded anyway', async () => {
    await putBudget(budget('a', 'daily', { limit: '10.00', alertThresholds: [] }));
    const { svc, base } = await service();
    await sync(base, 'tok-a1', 1, { want: 10n * USD });
    await sync(base, 'tok-a1', 2, { spent: 9n * USD, keep: 10n * USD });
    await svc.persist('a/daily');
    expect(budgetStatus()!.state).toBe('Ok');
    await sync(base, 'tok-a1', 3, { spent: 10n * USD, keep: 10n * USD });
    await svc.persist('a/daily');
    expect(budgetStatus()).toMatchObject({ state: 'Exceeded', remaining: '0.000000000' });
    expect(ready()).toMatchObject({ status: 'True', reason: 'LimitReached', message: '10.000000000 of 10.00 USD spent this daily period (100.00%)' });
    expect(await gauges()).toEqual({ limit: 10, spent: 10, reserved: 0, remaining: 0 });
    expect(kube.list(EVENTS, 'a')).toEqual([]);
  });

  it('Exceeded also when everything is handed out and a request could not be granted; not while some is left', async () => {
    await putBudget(budget('a', 'daily', { limit: '10.00', alertThresholds: [100] }));
    const { svc, base } = await service();
    await sync(base, 'tok-a1', 1, { want: 9n * USD });
    expect((await sync(base, 'tok-a2', 1, { want: 2n * USD, need: 2n * USD })).entry!.granted).toBe('0'); // 1 USD left, 2 needed
    await svc.persist('a/daily');
    expect(budgetStatus()).toMatchObject({ state: 'Ok', remaining: '1.000000000', spent: '0.000000000' });
    await sync(base, 'tok-a2', 2, { want: USD }); // the last dollar
    await sync(base, 'tok-a2', 3, { keep: USD, want: USD }); // nothing left
    await svc.persist('a/daily');
    expect(budgetStatus()).toMatchObject({ state: 'Exceeded', remaining: '0.000000000', spent: '0.000000000' });
    expect(ready()).toMatchObject({ reason: 'LimitReached', message: '0.000000000 of 10.00 USD spent this daily period (0.00%)' });
  });

  it('one Event per threshold reached (exactly at it), in the order of the spec, on the Budget', async () => {
    const b = await putBudget(budget('a', 'daily', { limit: '10.00', alertThresholds: [80, 50, 100] }));
    const { svc, base } = await service();
    await sync(base, 'tok-a1', 1, { want: 10n * USD });
    await sync(base, 'tok-a1', 2, { spent: 5n * USD - 1n, keep: 10n * USD });
    await svc.persist('a/daily');
    expect(kube.list(EVENTS, 'a')).toEqual([]);
    await sync(base, 'tok-a1', 3, { spent: 8n * USD, keep: 10n * USD });
    await svc.persist('a/daily');
    const events = kube.list(EVENTS, 'a');
    expect(events.map((e) => e.message)).toEqual([
      'budget daily reached 80% of 10.00 USD (8.000000000 spent) this daily period',
      'budget daily reached 50% of 10.00 USD (8.000000000 spent) this daily period',
    ]);
    const stamp = clock.now().toISOString();
    expect(events[0]).toMatchObject({
      metadata: { namespace: 'a' },
      involvedObject: { apiVersion: 'paygo.dev/v1alpha1', kind: 'Budget', name: 'daily', namespace: 'a', uid: b.metadata.uid },
      reason: 'BudgetThreshold',
      type: 'Warning',
      source: { component: 'paygo-operator' },
      firstTimestamp: stamp,
      lastTimestamp: stamp,
      count: 1,
    });
    expect(events[0]!.metadata.name).toMatch(/^daily\./);
    await sync(base, 'tok-a1', 4, { spent: 10n * USD, keep: 10n * USD });
    await svc.persist('a/daily');
    expect(kube.list(EVENTS, 'a').map((e) => e.message)).toHaveLength(3);
    expect(kube.list(EVENTS, 'a')[2]!.message).toBe('budget daily reached 100% of 10.00 USD (10.000000000 spent) this daily period');
  });

  it('thresholds are counted per budget: two budgets crossing the same threshold get an Event each', async () => {
    await putBudget(budget('a', 'daily', { limit: '10.00', alertThresholds: [50] }));
    await putBudget(budget('a', 'other', { limit: '10.00', alertThresholds: [50] }));
    const { svc, base } = await service();
    await sync(base, 'tok-a1', 1, { want: 6n * USD });
    await sync(base, 'tok-a1', 2, { spent: 6n * USD, keep: 6n * USD });
    await sync(base, 'tok-a2', 1, { want: 7n * USD, name: 'other' });
    await sync(base, 'tok-a2', 2, { spent: 7n * USD, keep: 7n * USD, name: 'other' });
    await svc.persist('a/daily');
    await svc.persist('a/other');
    expect(kube.list(EVENTS, 'a').map((e) => e.message)).toEqual([
      'budget daily reached 50% of 10.00 USD (6.000000000 spent) this daily period',
      'budget other reached 50% of 10.00 USD (7.000000000 spent) this daily period',
    ]);
  });

  it('a limit of zero is Exceeded at once (100 %), with a remaining fraction of 0', async () => {
    await putBudget(budget('a', 'daily', { limit: '0.00', alertThresholds: [] }));
    const { svc } = await service();
    await svc.reconcileNamespace('a');
    expect(budgetStatus()).toMatchObject({ state: 'Exceeded', spent: '0.000000000', remaining: '0.000000000', reserved: '0.000000000' });
    expect(ready()).toMatchObject({ status: 'True', reason: 'LimitReached', message: '0.000000000 of 0.00 USD spent this daily period (100.00%)' });
    expect(await gauges()).toEqual({ limit: 0, spent: 0, reserved: 0, remaining: 0 });
  });

  it('a failed Event is logged and retried with the next write; the status is written regardless', async () => {
    await putBudget(budget('a', 'daily', { limit: '10.00', alertThresholds: [50] }));
    const { svc, base } = await service();
    await sync(base, 'tok-a1', 1, { want: 10n * USD });
    await sync(base, 'tok-a1', 2, { spent: 6n * USD, keep: 10n * USD });
    kube.fail({ match: (r) => r.resource === EVENTS, status: 500 });
    await svc.persist('a/daily');
    expect(budgetStatus()!.spent).toBe('6.000000000');
    expect(logs.filter((l) => l.msg === 'could not record a budget Event').map((l) => l.error)).toEqual([expect.stringContaining('500')]);
    expect(kube.list(EVENTS, 'a')).toEqual([]);
  });

  it('a non-conflict error is not retried; a budget gone invalid or unknown is not written', async () => {
    await putBudget(budget('a', 'daily', { limit: '10.00' }));
    const { svc, base } = await service();
    await sync(base, 'tok-a1', 1, { want: USD });
    const before = statusWrites().length;
    kube.fail({ match: (r) => r.subresource === 'status', status: 500 });
    await expect(svc.persist('a/daily')).rejects.toMatchObject({ code: 500 });
    expect(statusWrites().length).toBe(before + 1);
    await putBudget(budget('a', 'daily', { limit: '10.00', timeZone: 'Mars/Olympus_Mons' }));
    await svc.persist('a/daily');
    expect(statusWrites().length).toBe(before + 1);
    const reads = kube.calls({ verb: 'get', resource: BUDGETS }).length;
    await svc.persist('a/unknown');
    expect(kube.calls({ verb: 'get', resource: BUDGETS }).length).toBe(reads);
  });

  it('group commit: persists during a running write share the one next write', async () => {
    await putBudget(budget('a', 'daily', { limit: '10.00' }));
    const { svc, base } = await service();
    await sync(base, 'tok-a1', 1, { want: USD });
    const before = statusWrites().length;
    const gate = kube.hold((r) => r.subresource === 'status');
    const first = svc.persist('a/daily');
    await gate.arrived;
    const second = svc.persist('a/daily');
    const third = svc.persist('a/daily');
    expect(third).toBe(second);
    expect(second).not.toBe(first);
    gate.release();
    await Promise.all([first, second, third]);
    expect(statusWrites().length).toBe(before + 2);
    await svc.persist('a/daily');
    expect(statusWrites().length).toBe(before + 3);
  });

  it('a write that failed does not stop the queued one', async () => {
    await putBudget(budget('a', 'daily', { limit: '10.00' }));
    const { svc, base } = await service();
    await sync(base, 'tok-a1', 1, { want: USD });
    const gate = kube.hold((r) => r.subresource === 'status');
    kube.fail({ match: (r) => r.subresource === 'status', status: 500 });
    const first = svc.persist('a/daily').catch((e: unknown) => e);
    await gate.arrived;
    const second = svc.persist('a/daily');
    gate.release();
    expect(await first).toMatchObject({ code: 500 });
    await second;
    expect(statusWrites().at(-1)!.status).toBe(200);
  });
});

describe('BudgetService: sync answers', () => {
  it('a 401 is "unauthenticated" and a 403 "forbidden" (as on the other sidecar endpoints), each with the reason; the body is checked after', async () => {
    await putBudget(budget('a', 'daily'));
    const { base } = await service();
    const unknown = await sync(base, 'tok-unknown', 1, { want: USD });
    expect(unknown).toEqual({ status: 401, entry: undefined, json: { error: { message: 'token rejected: invalid bearer token', code: 'unauthenticated' } } });
    const r = await sync(base, 'tok-gone', 1, { want: USD });
    expect(r).toEqual({ status: 403, entry: undefined, json: { error: { message: 'pod a/a-9 no longer exists', code: 'forbidden' } } });
    const bad = await post(base, BUDGET_SYNC_PATH, 'tok-a1', { seq: 1, entries: [{ name: 'daily' }] });
    expect(bad.status).toBe(400);
    expect((bad.json as { error: { code: string; message: string } }).error.code).toBe('invalid_sync');
    expect((bad.json as { error: { code: string; message: string } }).error.message).toMatch(/^entries\[0\]\.periodStart: /);
  });

  it('a report that changes only spend is answered at once and written by the next tick', async () => {
    await putBudget(budget('a', 'daily'));
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const { svc, base } = await service({ tickMs: 1000 });
    svc.start();
    await sync(base, 'tok-a1', 1, { want: USD });
    const before = statusWrites().length;
    await sync(base, 'tok-a1', 2, { spent: USD / 2n, keep: USD });
    expect(statusWrites().length).toBe(before);
    leader = false;
    vi.advanceTimersByTime(1000);
    await new Promise((r) => setImmediate(r));
    expect(statusWrites().length).toBe(before);
    leader = true;
    vi.advanceTimersByTime(1000);
    await until(() => budgetStatus()?.spent === '0.500000000', 'the flush');
    expect(statusWrites().length).toBe(before + 1);
    vi.advanceTimersByTime(1000);
    await new Promise((r) => setTimeout(r, 0));
    expect(statusWrites().length).toBe(before + 1); // nothing dirty
  });

  it('a failed TokenReview is a clean 500 naming the API\'s status', async () => {
    await putBudget(budget('a', 'daily'));
    const { base } = await service();
    kube.fail({ match: (r) => r.resource === 'authentication.k8s.io/v1/tokenreviews', status: 500 });
    const r = await sync(base, 'tok-a1', 1, { want: USD });
    expect(r).toEqual({ status: 500, entry: undefined, json: { error: { message: 'internal error: the Kubernetes API answered 500', code: 'internal_error' } } });
    expect(statusWrites()).toEqual([]);
  });

  it('the tick writes nothing while not the leader, nor after stop()', async () => {
    await putBudget(budget('a', 'daily'));
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const { svc, base } = await service({ tickMs: 1000 });
    svc.start();
    await sync(base, 'tok-a1', 1, { want: USD });
    const before = statusWrites().length;
    await sync(base, 'tok-a1', 2, { spent: 1n, keep: USD });
    leader = false;
    vi.advanceTimersByTime(1000);
    leader = true;
    // Still dirty: this one write is the only one (were the tick writing, it would queue a second).
    await svc.persist('a/daily');
    expect(statusWrites().length).toBe(before + 1);
    await sync(base, 'tok-a1', 3, { spent: 2n, keep: USD });
    svc.stop();
    vi.advanceTimersByTime(1000);
    await svc.persist('a/daily');
    expect(statusWrites().length).toBe(before + 2);
    expect(budgetStatus()!.spent).toBe('0.000000002');
  });

  it('an entry for a budget the namespace does not have changes nothing to write', async () => {
    await putBudget(budget('a', 'daily'));
    const { base } = await service();
    const r = await sync(base, 'tok-a1', 1, { want: USD, name: 'nope' });
    expect(r.entry).toMatchObject({ name: 'nope', granted: '0' });
    expect(statusWrites()).toEqual([]);
    expect(services[0]!.ledger.get('a', 'nope')).toBeUndefined();
  });

  it('a failed flush is logged with the budget', async () => {
    await putBudget(budget('a', 'daily'));
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const { svc, base } = await service({ tickMs: 1000 });
    svc.start();
    await sync(base, 'tok-a1', 1, { want: USD });
    await sync(base, 'tok-a1', 2, { spent: 1n, keep: USD });
    kube.fail({ match: (r) => r.subresource === 'status', status: 500 });
    vi.advanceTimersByTime(1000);
    await until(() => logs.some((l) => l.msg === 'budget status write failed'), 'the log');
    expect(logs.find((l) => l.msg === 'budget status write failed')).toMatchObject({ budget: 'a/daily', error: expect.stringContaining('500') });
  });

  it('silent pods are looked up every fifth tick only', async () => {
    await putBudget(budget('a', 'daily'));
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const { svc, base } = await service({ tickMs: 1000 });
    await sync(base, 'tok-a1', 1, { want: USD });
    svc.start();
    clock.advance(31_000);
    const podReads = () => kube.calls({ verb: 'get', resource: PODS, name: 'a-1' }).length;
    const base0 = podReads();
    for (let i = 1; i <= 4; i++) {
      vi.advanceTimersByTime(1000);
      await new Promise((r) => setTimeout(r, 20));
      expect(podReads()).toBe(base0);
    }
    vi.advanceTimersByTime(1000);
    await until(() => podReads() === base0 + 1, 'the fifth tick\'s look-up');
    for (let i = 1; i <= 4; i++) vi.advanceTimersByTime(1000);
    await new Promise((r) => setTimeout(r, 20));
    expect(podReads()).toBe(base0 + 1);
    vi.advanceTimersByTime(1000);
    await until(() => podReads() === base0 + 2, 'the tenth tick\'s look-up');
    expect(budgetStatus()!.allowances![0]!.state).toBe('Active');
  });

  it('an allowance silent past its grace is marked Lost by the tick', async () => {
    await putBudget(budget('a', 'daily'));
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const { svc, base } = await service({ tickMs: 1000 });
    await sync(base, 'tok-a1', 1, { want: USD });
    svc.start();
    clock.advance(30_000 + 600_001);
    vi.advanceTimersByTime(1000);
    await until(() => budgetStatus()?.allowances?.[0]?.state === 'Lost', 'Lost');
  });
});

describe('BudgetService: reconcileNamespace and restore', () => {
  it('an invalid Budget keeps the rest of its status; a new generation rewrites the condition, keeping its transition time', async () => {
    const bad = budget('a', 'mars', { timeZone: 'Mars/Olympus_Mons' });
    kube.put(BUDGETS, { ...bad, status: { spent: '1.000000000', note: 'kept' } });
    const { svc } = await service();
    await until(() => cache.budgets.get('mars', 'a') !== undefined, 'the cache');
    await svc.reconcileNamespace('a');
    expect(budgetStatus('mars')).toMatchObject({ spent: '1.000000000', note: 'kept', observedGeneration: 1 });
    const first = budgetStatus('mars')!.conditions![0]!;
    expect(statusWrites('mars')[0]!.query.get('fieldManager')).toBe('fm-test');
    clock.advance(60_000);
    await putBudget({ ...budget('a', 'mars', { timeZone: 'Mars/Olympus_Mons', limit: '20.00' }), status: budgetStatus('mars') });
    await svc.reconcileNamespace('a');
    expect(statusWrites('mars')).toHaveLength(2);
    expect(budgetStatus('mars')).toMatchObject({ observedGeneration: 2, note: 'kept' });
    expect(budgetStatus('mars')!.conditions![0]).toEqual({ ...first, observedGeneration: 2 });
  });

  it('a valid Budget whose status is of an earlier period is written again, even at its generation', async () => {
    kube.put(BUDGETS, { ...budget('a', 'daily', { limit: '10.00' }), status: { periodStart: '2026-03-09T00:00:00.000Z', observedGeneration: 1, spent: '3.000000000' } });
    const { svc } = await service();
    await until(() => cache.budgets.get('daily', 'a') !== undefined, 'the cache');
    await svc.reconcileNamespace('a');
    expect(statusWrites('daily')).toHaveLength(1);
    expect(budgetStatus()).toMatchObject({ observedGeneration: 1, periodStart: PERIOD, spent: '0.000000000', remaining: '10.000000000' });
  });

  it('an invalid Budget is written again when its Ready message is out of date; conditions of other types are kept and do not count', async () => {
    const bad = budget('a', 'mars', { timeZone: 'Mars/Olympus_Mons' });
    const other = { type: 'Audited', status: 'True', reason: 'Checked', message: 'by someone else', lastTransitionTime: '2026-03-01T00:00:00Z' };
    kube.put(BUDGETS, { ...bad, status: { conditions: [other] } });
    const { svc } = await service();
    await until(() => cache.budgets.get('mars', 'a') !== undefined, 'the cache');
    await svc.reconcileNamespace('a');
    expect(statusWrites('mars')).toHaveLength(1);
    const conditions = budgetStatus('mars')!.conditions!;
    expect(conditions.map((c) => c.type)).toEqual(['Audited', 'Ready']);
    expect(conditions[0]).toEqual(other);
    // Up to date (the other condition first): not written again.
    await putBudget({ ...bad, status: budgetStatus('mars') });
    await svc.reconcileNamespace('a');
    expect(statusWrites('mars')).toHaveLength(1);
    // The same generation with another message (e.g. written by an older operator): rewritten.
    const full = conditions[1]!.message;
    await putBudget({ ...bad, status: { ...budgetStatus('mars'), conditions: [other, { ...conditions[1]!, message: 'an older message (the budget is not enforced)' }] } });
    await svc.reconcileNamespace('a');
    expect(statusWrites('mars')).toHaveLength(2);
    expect(budgetStatus('mars')!.conditions![1]!.message).toBe(full);
  });

  it('a valid Budget whose generation changed is written again; one up to date is not', async () => {
    await putBudget(budget('a', 'daily', { limit: '10.00' }));
    const { svc } = await service();
    await svc.reconcileNamespace('a');
    expect(statusWrites('daily')).toHaveLength(1);
    let stored = kube.get(BUDGETS, 'a', 'daily')!;
    await until(() => cache.budgets.get('daily', 'a')?.metadata?.resourceVersion === stored.metadata.resourceVersion, 'the cache');
    await svc.reconcileNamespace('a');
    expect(statusWrites('daily')).toHaveLength(1);
    stored = await putBudget({ ...budget('a', 'daily', { limit: '20.00' }), status: budgetStatus() });
    expect(stored.metadata.generation).toBe(2);
    await svc.reconcileNamespace('a');
    expect(statusWrites('daily')).toHaveLength(2);
    expect(budgetStatus()).toMatchObject({ observedGeneration: 2, remaining: '20.000000000' });
  });

  it('restore skips invalid Budgets and books of other periods, and restores several', async () => {
    await putBudget(budget('a', 'daily', { limit: '10.00' }));
    await putBudget(budget('a', 'other', { limit: '10.00' }));
    const first = await service();
    await sync(first.base, 'tok-a1', 1, { want: 3n * USD });
    await sync(first.base, 'tok-a1', 2, { want: 4n * USD, name: 'other' });
    kube.put(BUDGETS, { ...budget('a', 'mars', { timeZone: 'Mars/Olympus_Mons' }), status: { periodStart: PERIOD } });
    const second = await service();
    await second.svc.restore();
    expect(second.svc.ledger.get('a', 'daily')!.holders.size).toBe(1);
    expect(second.svc.ledger.get('a', 'other')!.holders.size).toBe(1);
    expect(second.svc.ledger.get('a', 'mars')).toBeUndefined();
  });
});
