import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Agent, fetch } from 'undici';
import { ACK_PATH, BUDGET_SYNC_PATH, RATELIMIT_SYNC_PATH, type BudgetStatus, type RateLimitSyncResponse } from '../../crds/src/index.js';
import { Operator } from '../../operator/operator.js';
import { parseOptions, type OperatorOptions } from '../../operator/options.js';
import type { RouteStatus } from '../../operator/route-status.js';
import { BUDGETS, FakeKube, LEASES, PODS, RATE_LIMITS, ROUTES, SECRETS, until } from '../support/fake-kube.js';
import { budget, openStream, pod, post, route, secret, silent, type TestStream } from '../support/operator-fixtures.js';

let kube: FakeKube;
let operators: Operator[];
let streams: TestStream[];

beforeEach(async () => {
  kube = await new FakeKube().start();
  kube.put(PODS, pod('app', 'app-1', 'uid-1'));
  kube.registerToken('tok-1', { namespace: 'app', podName: 'app-1', podUid: 'uid-1' });
  kube.put(SECRETS, secret('app', 'openai'));
  operators = [];
  streams = [];
});

afterEach(async () => {
  for (const s of streams) s.close();
  await Promise.all(operators.map((o) => o.stop()));
  await kube.stop();
});

async function operator(identity: string, leaderElect: boolean): Promise<{ op: Operator; url: string; healthUrl: string; agent: Agent; ca: string }> {
  const o = parseOptions(['--listen', '127.0.0.1:0', '--health', '127.0.0.1:0', '--namespace', 'paygo-system', '--identity', identity, '--leader-elect', String(leaderElect)], {}) as OperatorOptions;
  const op = new Operator(o, kube.kubeConfig(identity), silent);
  operators.push(op);
  const { url, healthUrl } = await op.start();
  const ca = op.tls!.caPem;
  return { op, url, healthUrl, agent: new Agent({ connect: { ca } }), ca };
}

const routeStatus = () => kube.get(ROUTES, 'app', 'chat')?.status as RouteStatus | undefined;
const ready = () => routeStatus()?.conditions.find((c) => c.type === 'Ready');

describe('Operator against the fake API server', () => {
  it('a ModelRoute becomes Ready once the sidecar it reaches ACKs its snapshot', async () => {
    kube.put(ROUTES, route('app', 'chat'));
    const { url, healthUrl, agent, ca } = await operator('op-1', false);
    expect(await (await fetch(`${healthUrl}/readyz`)).json()).toEqual({ status: 'ok', leader: true });
    await until(() => ready()?.reason === 'Synced', 'Ready with no sidecars');
    expect(ready()!.message).toBe('0 of 0 sidecars have the current configuration');

    const s = await openStream(url, 'tok-1', { ca });
    streams.push(s);
    await until(() => s.snapshots.length === 1, 'the snapshot');
    await until(() => ready()?.reason === 'Syncing', 'Syncing while the sidecar has not ACKed');
    expect(ready()).toMatchObject({ status: 'False', message: '0 of 1 sidecars have the current configuration' });
    expect((await post(url, ACK_PATH, 'tok-1', { version: s.snapshots[0]!.version, accepted: true }, agent)).status).toBe(204);
    await until(() => ready()?.reason === 'Synced', 'Ready after the ACK');
    expect(ready()).toMatchObject({ status: 'True', message: '1 of 1 sidecars have the current configuration' });
    expect(routeStatus()!.sidecars).toEqual({ desired: 1, synced: 1, rejected: 0 });

    // A change to the route: a new version, Syncing again until it is ACKed.
    kube.put(ROUTES, route('app', 'chat', { spec: { retry: { attempts: 3 } } }));
    await until(() => s.snapshots.length === 2, 'the new snapshot');
    await until(() => ready()?.reason === 'Syncing' && routeStatus()!.observedGeneration === 2, 'Syncing the new generation');
    await post(url, ACK_PATH, 'tok-1', { version: s.snapshots[1]!.version, accepted: false, reason: 'bad' }, agent);
    await until(() => ready()?.reason === 'SidecarRejected', 'the NACK');
    expect(ready()!.message).toBe('1 of 1 sidecars rejected the configuration: pod app-1: bad');

    const metrics = await (await fetch(`${healthUrl}/metrics`)).text();
    expect(metrics).toContain('paygo_operator_connected_sidecars 1');
    expect(metrics).toContain('paygo_operator_leader 1');
  });

  it('distributes the RateLimits that select the pod and serves rate-limit syncs, quiet for one expiry after it starts', async () => {
    kube.put(ROUTES, route('app', 'chat'));
    kube.put(RATE_LIMITS, { apiVersion: 'paygo.dev/v1alpha1', kind: 'RateLimit', metadata: { name: 'team', namespace: 'app' }, spec: { limits: { requestsPerMinute: 60 } } });
    const { op, url, agent, ca } = await operator('op-1', false);
    const s = await openStream(url, 'tok-1', { ca });
    streams.push(s);
    await until(() => s.snapshots.length === 1, 'the snapshot');
    expect(s.snapshots[0]!.rateLimits!.map((l) => l.name)).toEqual(['team']);
    const r = await post(url, RATELIMIT_SYNC_PATH, 'tok-1', { boot: 'b1', seq: 1, entries: [{ key: 'rl/app/team', field: 'requestsPerMinute', used: 0, demand: 1, keep: 0 }] }, agent);
    expect(r.status).toBe(200);
    // A (re)started operator grants nothing until shares a predecessor granted have expired.
    expect(op.rateLimits.ledger.quiet()).toBe(true);
    expect((r.json as RateLimitSyncResponse).entries[0]).toMatchObject({ key: 'rl/app/team', field: 'requestsPerMinute', share: 0, target: 60 });
  });

  it('leader handover: the standby answers 503 until the leader stops, then restores budgets and serves', async () => {
    kube.put(ROUTES, route('app', 'chat'));
    kube.put(BUDGETS, budget('app', 'daily', { limit: '10.00' }));
    const first = await operator('op-1', true);
    await until(() => first.op.isLeader(), 'op-1 leads');
    const second = await operator('op-2', true);
    expect(second.op.isLeader()).toBe(false);
    const refused = await post(second.url, ACK_PATH, 'tok-1', { version: 'v', accepted: true }, second.agent);
    expect(refused.status).toBe(503);
    expect((refused.json as { error: { code: string } }).error.code).toBe('not_leader');

    // The leader grants and persists; its stream is open.
    const s = await openStream(first.url, 'tok-1', { ca: first.ca });
    streams.push(s);
    await until(() => s.snapshots.length === 1, 'the snapshot');
    expect(s.snapshots[0]!.budgets.map((b) => b.name)).toEqual(['daily']);
    const periodStart = `${new Date().toISOString().slice(0, 10)}T00:00:00.000Z`; // daily, UTC, on the real clock
    const grant = await post(first.url, BUDGET_SYNC_PATH, 'tok-1', { seq: 1, boot: 'b1', entries: [{ name: 'daily', periodStart, spent: '0', keep: '0', want: '8000000000' }] }, first.agent);
    expect((grant.json as { entries: Array<{ granted: string }> }).entries[0]!.granted).toBe('8000000000');

    await first.op.stop();
    await s.ended; // streams are closed: the sidecar reconnects to the new leader
    await until(() => second.op.isLeader(), 'op-2 takes the released lease', 8000);
    expect((kube.get(LEASES, 'paygo-system', 'paygo-operator')!.spec as { holderIdentity: string }).holderIdentity).toBe('op-2');
    // The new leader restored the book: only what is left is granted.
    let answer: unknown;
    await until(async () => {
      const r = await post(second.url, BUDGET_SYNC_PATH, 'tok-1', { seq: 1, boot: 'b2', entries: [{ name: 'daily', periodStart, spent: '0', keep: '0', want: '8000000000' }] }, second.agent);
      answer = r.json;
      return r.status === 200; // 503 until the book is restored
    }, 'budget syncs served after the restore');
    expect((answer as { entries: Array<{ granted: string }> }).entries[0]!.granted).toBe('2000000000');
    const allowances = (kube.get(BUDGETS, 'app', 'daily')!.status as BudgetStatus).allowances!;
    expect(allowances.map((a) => [a.boot, a.granted])).toEqual([
      ['b1', '8000000000'],
      ['b2', '2000000000'],
    ]);
    const s2 = await openStream(second.url, 'tok-1', { ca: second.ca });
    streams.push(s2);
    await until(() => s2.snapshots.length === 1, 'a snapshot from the new leader');
    // Real lease timing (the standby retries every 2 s): 3-4 s alone, more on a loaded machine;
    // the bound is generous, never a timing assertion.
  }, 30_000);
});
