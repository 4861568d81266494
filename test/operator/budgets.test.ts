import { AuthenticationV1Api, CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import Fastify, { type FastifyInstance } from 'fastify';
import { Gauge, Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BUDGET_SYNC_PATH, type BudgetStatus, type BudgetSyncResponse } from '../../crds/src/index.js';
import { TokenAuthenticator } from '../../operator/auth.js';
import { BudgetService } from '../../operator/budgets.js';
import { ClusterCache } from '../../operator/cache.js';
import { BUDGETS, EVENTS, FakeKube, PODS, until } from '../support/fake-kube.js';
import { TestClock, budget, pod, post, silent } from '../support/operator-fixtures.js';

const PERIOD = '2026-03-10T00:00:00.000Z'; // the test clock's day (daily, UTC)
const USD = 1_000_000_000n;

let kube: FakeKube;
let clock: TestClock;
let cache: ClusterCache;
let leader: boolean;
let services: BudgetService[];
let apps: FastifyInstance[];

beforeEach(async () => {
  kube = await new FakeKube().start();
  clock = new TestClock();
  kube.put(PODS, pod('a', 'a-1', 'uid-a1'));
  kube.put(PODS, pod('a', 'a-2', 'uid-a2'));
  kube.put(PODS, pod('b', 'b-1', 'uid-b1'));
  kube.registerToken('tok-a1', { namespace: 'a', podName: 'a-1', podUid: 'uid-a1' });
  kube.registerToken('tok-a2', { namespace: 'a', podName: 'a-2', podUid: 'uid-a2' });
  kube.registerToken('tok-b1', { namespace: 'b', podName: 'b-1', podUid: 'uid-b1' });
  kube.put(BUDGETS, budget('a', 'daily', { limit: '10.00', alertThresholds: [50] }));
  cache = new ClusterCache(kube.kubeConfig(), silent);
  await cache.start();
  leader = true;
  services = [];
  apps = [];
});

afterEach(async () => {
  for (const s of services) s.stop();
  await Promise.all(apps.map((a) => a.close()));
  await cache.stop();
  await kube.stop();
});

/** A BudgetService (a leader's) serving POST /v1/budget/sync; returns it and its URL. */
async function service(o: { tickMs?: number } = {}): Promise<{ svc: BudgetService; base: string }> {
  const kc = kube.kubeConfig();
  const registry = new Registry();
  const gauge = (name: string) => new Gauge({ name, help: name, labelNames: ['namespace', 'budget', 'period'], registers: [registry] });
  const svc = new BudgetService({
    cache,
    custom: kc.makeApiClient(CustomObjectsApi),
    core: kc.makeApiClient(CoreV1Api),
    authenticator: new TokenAuthenticator(kc.makeApiClient(AuthenticationV1Api), kc.makeApiClient(CoreV1Api), { now: clock.nowMs }),
    isLeader: () => leader,
    now: clock.now,
    logger: silent,
    fieldManager: 'paygo-operator-test',
    gauges: { limit: gauge('l'), spent: gauge('s'), reserved: gauge('r'), remaining: gauge('m') },
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

interface Entry {
  spent?: bigint;
  keep?: bigint;
  want?: bigint;
  name?: string;
}

function syncBody(seq: number, e: Entry, o: { boot?: string; final?: boolean } = {}) {
  return {
    seq,
    boot: o.boot ?? 'boot-1',
    ...(o.final ? { final: true } : {}),
    entries: [{ name: e.name ?? 'daily', periodStart: PERIOD, spent: String(e.spent ?? 0n), keep: String(e.keep ?? 0n), want: String(e.want ?? 0n) }],
  };
}

async function sync(base: string, token: string, seq: number, e: Entry, o: { boot?: string; final?: boolean } = {}) {
  const r = await post(base, BUDGET_SYNC_PATH, token, syncBody(seq, e, o));
  return { status: r.status, entry: (r.json as BudgetSyncResponse | undefined)?.entries?.[0], json: r.json };
}

const budgetStatus = (name = 'daily') => kube.get(BUDGETS, 'a', name)?.status as BudgetStatus | undefined;
const statusWrites = () => kube.calls({ verb: 'update', resource: BUDGETS, subresource: 'status' });

describe('BudgetService', () => {
  it('grants from the ledger and writes the grant to Budget.status before answering', async () => {
    const { base } = await service();
    const gate = kube.hold((r) => r.resource === BUDGETS && r.subresource === 'status');
    let answered = false;
    const pending = sync(base, 'tok-a1', 1, { want: 4n * USD }).then((r) => {
      answered = true;
      return r;
    });
    const write = await gate.arrived;
    await new Promise((r) => setTimeout(r, 50));
    expect(answered).toBe(false); // the sidecar may not spend before the grant is on disk
    expect((write.body as { status: BudgetStatus }).status.allowances).toMatchObject([{ pod: 'a-1', uid: 'uid-a1', boot: 'boot-1', state: 'Active', granted: String(4n * USD), spent: '0', seq: 1 }]);
    gate.release();
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.entry).toMatchObject({ name: 'daily', periodStart: PERIOD, granted: String(4n * USD), spent: '0', available: String(6n * USD) });
    expect(budgetStatus()).toMatchObject({ periodStart: PERIOD, remaining: '6.000000000', reserved: '4.000000000', spent: '0.000000000', state: 'Ok' });
    expect(budgetStatus()!.conditions).toEqual([
      { type: 'Ready', status: 'True', reason: 'Enforcing', message: '0.000000000 of 10.00 USD spent this daily period (0.00%)', observedGeneration: 1, lastTransitionTime: '2026-03-10T12:00:00Z' },
    ]);
    // In the request log too: the status write was answered before the sidecar's answer left.
    expect(write.status).toBe(200);
  });

  it('answers only for budgets of the pod\'s own namespace', async () => {
    const { base } = await service();
    const r = await sync(base, 'tok-b1', 1, { want: 4n * USD });
    expect(r.status).toBe(200);
    expect(r.entry).toMatchObject({ name: 'daily', granted: '0', available: '0' });
    expect(statusWrites()).toEqual([]);
  });

  it('refuses unauthenticated callers (401), invalid bodies (400), and serves nothing unless leader (503)', async () => {
    const { base } = await service();
    expect((await sync(base, 'tok-nobody', 1, { want: USD })).status).toBe(401);
    expect((await post(base, BUDGET_SYNC_PATH, 'tok-a1', { seq: 0, entries: [] })).status).toBe(400);
    leader = false;
    const r = await post(base, BUDGET_SYNC_PATH, 'tok-a1', syncBody(1, { want: USD }));
    expect(r.status).toBe(503);
    expect((r.json as { error: { code: string } }).error.code).toBe('not_leader');
    expect(statusWrites()).toEqual([]);
  });

  it('a sync without a boot id: its allowance names no boot', async () => {
    const { base } = await service();
    const { boot: _, ...body } = syncBody(1, { want: USD });
    const r = await post(base, BUDGET_SYNC_PATH, 'tok-a1', body);
    expect(r.status).toBe(200);
    expect(budgetStatus()!.allowances).toEqual([{ pod: 'a-1', uid: 'uid-a1', state: 'Active', granted: String(USD), spent: '0', seq: 1, expires: new Date(clock.ms + 30_000).toISOString() }]);
  });

  it('retries the status write on 409 with a fresh read, and still answers', async () => {
    const { base } = await service();
    kube.fail({ match: (r) => r.resource === BUDGETS && r.subresource === 'status', status: 409 });
    const r = await sync(base, 'tok-a1', 1, { want: 2n * USD });
    expect(r.status).toBe(200);
    expect(r.entry!.granted).toBe(String(2n * USD));
    expect(statusWrites().map((w) => w.status)).toEqual([409, 200]);
    const reads = kube.calls({ verb: 'get', resource: BUDGETS });
    expect(reads).toHaveLength(2);
    expect(reads[1]!.seq).toBeGreaterThan(statusWrites()[0]!.seq);
    expect(budgetStatus()!.allowances![0]!.granted).toBe(String(2n * USD));
  });

  it('gives up after repeated conflicts: the sync fails rather than answer an unpersisted grant', async () => {
    const { base } = await service();
    kube.fail({ match: (r) => r.resource === BUDGETS && r.subresource === 'status', status: 409, times: 6 });
    const r = await sync(base, 'tok-a1', 1, { want: 2n * USD });
    expect(r.status).toBe(500);
    expect(r.json).toEqual({ error: { message: 'internal error: the Kubernetes API answered 409', code: 'internal_error' } });
    expect(statusWrites().map((w) => w.status)).toEqual([409, 409, 409, 409, 409, 409]);
  });

  it('a failed status write (a long API error, answered chunked) is a clean 500 to the sidecar, no API server internals', async () => {
    const { base } = await service();
    kube.fail({ match: (r) => r.resource === BUDGETS && r.subresource === 'status', status: 422, message: `admission webhook denied the request: ${'x'.repeat(3000)}` });
    const r = await post(base, BUDGET_SYNC_PATH, 'tok-a1', syncBody(1, { want: USD }));
    expect(r.status).toBe(500);
    expect(r.json).toEqual({ error: { message: 'internal error: the Kubernetes API answered 422', code: 'internal_error' } });
    expect(r.headers.get('transfer-encoding')).toBeNull();
    expect(r.headers.get('audit-id')).toBeNull();
  });

  it('a new leader restores the book from Budget.status: what was granted is never granted again', async () => {
    const first = await service();
    expect((await sync(first.base, 'tok-a1', 1, { want: 8n * USD })).entry!.granted).toBe(String(8n * USD));
    first.svc.stop();
    const second = await service();
    await second.svc.restore();
    expect(kube.calls({ verb: 'list', resource: BUDGETS }).length).toBeGreaterThanOrEqual(2); // read fresh, not from the cache
    const r = await sync(second.base, 'tok-a2', 1, { want: 8n * USD });
    expect(r.entry).toMatchObject({ granted: String(2n * USD), available: '0' });
    // The restored holder keeps its seq: a replayed old report is ignored.
    const replay = await sync(second.base, 'tok-a1', 1, { want: 9n * USD, keep: 8n * USD });
    expect(replay.entry!.granted).toBe(String(8n * USD));
    expect(budgetStatus()!.remaining).toBe('0.000000000');
  });

  it('does not restore a book of an earlier period', async () => {
    const first = await service();
    await sync(first.base, 'tok-a1', 1, { want: 8n * USD });
    clock.advance(24 * 3600_000);
    const second = await service();
    await second.svc.restore();
    const book = second.svc.ledger.get('a', 'daily')!;
    expect(book.periodStart).toBe('2026-03-11T00:00:00.000Z');
    expect(book.holders.size).toBe(0);
  });

  it('a final report closes the holder and is persisted before the answer', async () => {
    const { base } = await service();
    await sync(base, 'tok-a1', 1, { want: 3n * USD });
    const r = await sync(base, 'tok-a1', 2, { spent: USD, keep: USD }, { final: true });
    expect(r.entry!.granted).toBe(String(USD));
    expect(budgetStatus()!.allowances).toMatchObject([{ pod: 'a-1', state: 'Closed', granted: String(USD), spent: String(USD), seq: 2, endedAt: '2026-03-10T12:00:00.000Z' }]);
    expect(statusWrites()).toHaveLength(2);
  });

  it('records one BudgetThreshold Event per threshold and period', async () => {
    const { svc, base } = await service();
    await sync(base, 'tok-a1', 1, { want: 8n * USD });
    await sync(base, 'tok-a1', 2, { spent: 6n * USD, keep: 7n * USD, want: 0n });
    await svc.persist('a/daily');
    await sync(base, 'tok-a1', 3, { spent: 7n * USD, keep: 7n * USD, want: 0n });
    await svc.persist('a/daily');
    const events = kube.list(EVENTS, 'a');
    expect(events.map((e) => [e.reason, e.type, e.message])).toEqual([['BudgetThreshold', 'Warning', 'budget daily reached 50% of 10.00 USD (6.000000000 spent) this daily period']]);
    expect(budgetStatus()).toMatchObject({ state: 'Warning', spent: '7.000000000' });
  });

  it('marks a Budget with an unknown time zone Ready=False Invalid, once', async () => {
    const { svc } = await service();
    const bad = kube.put(BUDGETS, budget('a', 'mars', { timeZone: 'Mars/Olympus_Mons' }));
    await until(() => cache.budgets.get('mars', 'a')?.metadata?.resourceVersion === bad.metadata.resourceVersion, 'the cache');
    await svc.reconcileNamespace('a');
    const cond = budgetStatus('mars')!.conditions![0]!;
    expect(cond).toMatchObject({ type: 'Ready', status: 'False', reason: 'Invalid', observedGeneration: 1, lastTransitionTime: '2026-03-10T12:00:00Z' });
    expect(cond.message).toMatch(/timeZone.*\(the budget is not enforced\)$/);
    const written = kube.get(BUDGETS, 'a', 'mars')!;
    await until(() => cache.budgets.get('mars', 'a')?.metadata?.resourceVersion === written.metadata.resourceVersion, 'the cache');
    const writes = statusWrites().length;
    await svc.reconcileNamespace('a');
    expect(statusWrites().filter((w) => w.name === 'mars')).toHaveLength(1);
    expect(statusWrites().length).toBe(writes);
  });

  it('reconcileNamespace writes the book of a valid Budget whose status is not of this period and generation', async () => {
    const { svc } = await service();
    await svc.reconcileNamespace('a');
    expect(budgetStatus()).toMatchObject({ observedGeneration: 1, periodStart: PERIOD, spent: '0.000000000', remaining: '10.000000000', state: 'Ok', allowances: [] });
    leader = false;
    const before = statusWrites().length;
    await svc.reconcileNamespace('a');
    expect(statusWrites().length).toBe(before);
  });

  describe('silent processes', () => {
    async function silentHolder(): Promise<BudgetService> {
      const { svc, base } = await service({ tickMs: 5 });
      await sync(base, 'tok-a1', 1, { want: 3n * USD });
      svc.start();
      clock.advance(31_000); // its allowance expired unrenewed
      return svc;
    }
    const allowance = () => budgetStatus()?.allowances?.[0];

    it('a holder whose pod is gone (404) is marked Lost', async () => {
      await silentHolder();
      kube.remove(PODS, 'a', 'a-1');
      await until(() => allowance()?.state === 'Lost', 'Lost');
      expect(allowance()).toMatchObject({ pod: 'a-1', granted: String(3n * USD), replaced: true, endedAt: new Date(clock.ms).toISOString() });
      expect(budgetStatus()!.remaining).toBe('7.000000000'); // what it held stays committed
    });

    it('what a Lost holder held counts as spent (unreported), in the status and in the threshold Events', async () => {
      const { svc, base } = await service({ tickMs: 5 });
      await sync(base, 'tok-a1', 1, { want: 6n * USD, keep: 0n });
      await sync(base, 'tok-a1', 2, { spent: USD, keep: 6n * USD });
      svc.start();
      clock.advance(31_000);
      kube.remove(PODS, 'a', 'a-1');
      await until(() => allowance()?.state === 'Lost' && kube.list(EVENTS, 'a').length === 1, 'Lost, and its Event');
      expect(budgetStatus()).toMatchObject({ spent: '6.000000000', unreported: '5.000000000', reserved: '0.000000000', remaining: '4.000000000', state: 'Warning' });
      expect(kube.list(EVENTS, 'a').map((e) => e.message)).toEqual(['budget daily reached 50% of 10.00 USD (6.000000000 spent) this daily period']);
    });

    it('a holder whose pod was re-created under another UID is marked Lost', async () => {
      await silentHolder();
      kube.put(PODS, pod('a', 'a-1', 'uid-a1-new'));
      await until(() => allowance()?.state === 'Lost', 'Lost');
    });

    it('a holder whose pod is still there stays Active; an unknown answer (500) is asked again', async () => {
      await silentHolder();
      kube.fail({ match: (r) => r.resource === PODS, status: 500, times: 3 });
      await until(() => kube.calls({ verb: 'get', resource: PODS, name: 'a-1' }).filter((r) => r.status === 200).length >= 2, 'pod checks');
      expect(allowance()?.state).toBe('Active');
    });
  });
});

