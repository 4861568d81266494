import { CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import Fastify from 'fastify';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LeaderElector, replyNotLeader, type LeaderOptions } from '../../operator/leader.js';
import { FakeKube, LEASES, until, type KubeObject } from '../support/fake-kube.js';
import { TestClock } from '../support/operator-fixtures.js';

let kube: FakeKube;
let clock: TestClock;
let electors: LeaderElector[];
let changes: Record<string, boolean[]>;
let logs: Array<Record<string, unknown>>;

beforeEach(async () => {
  kube = await new FakeKube().start();
  clock = new TestClock();
  electors = [];
  changes = {};
  logs = [];
});

afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(electors.map((e) => e.stop()));
  await kube.stop();
});

const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });

/** A candidate ticking every 10 ms of real time, with the lease's times on the test clock. */
function candidate(identity: string, o: Partial<LeaderOptions> = {}): LeaderElector {
  changes[identity] = [];
  const e = new LeaderElector({
    api: kube.kubeConfig(identity).makeApiClient(CoordinationV1Api),
    namespace: 'paygo-system',
    name: 'paygo-operator',
    identity,
    leaseDurationMs: 15_000,
    retryPeriodMs: 10,
    now: clock.now,
    logger,
    onChange: (leader) => changes[identity]!.push(leader),
    ...o,
  });
  electors.push(e);
  return e;
}

const lease = () => kube.get(LEASES, 'paygo-system', 'paygo-operator') as (KubeObject & { spec: Record<string, unknown> }) | undefined;
const micro = (ms: number) => new Date(ms).toISOString().replace('Z', '000Z');
const reads = (identity: string) => kube.calls({ verb: 'get', resource: LEASES }).filter((r) => r.user === identity);
async function ticks(identity: string, n = 3): Promise<void> {
  const start = reads(identity).length;
  await until(() => reads(identity).length >= start + n, `${n} ticks of ${identity}`);
}
/** A lease someone else wrote. */
function foreignLease(spec: Record<string, unknown>): void {
  kube.put(LEASES, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'paygo-operator', namespace: 'paygo-system' }, spec });
}
describe('replyNotLeader', () => {
  it('answers 503 with retry-after 1 and closes the connection, so the retry may reach the leader', async () => {
    const app = Fastify();
    app.get('/x', (_req, reply) => replyNotLeader(reply));
    const res = await app.inject({ method: 'GET', url: '/x' });
    await app.close();
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect(res.headers.connection).toBe('close');
    expect(res.json()).toEqual({ error: { message: 'not the leader; retry', code: 'not_leader' } });
  });
});

describe('LeaderElector: leases as others left them', () => {
  it('logs becoming leader and losing it, naming itself and the lease', async () => {
    const a = candidate('a');
    a.start();
    await until(() => a.isLeader(), 'a leads');
    kube.fail({ match: (r) => r.user === 'a', status: 500, times: Infinity });
    clock.advance(10_000);
    await until(() => !a.isLeader(), 'a steps down');
    const info = logs.filter((l) => l.level === 30).map((l) => [l.msg, l.identity, l.lease]);
    expect(info).toEqual([
      ['became leader', 'a', 'paygo-system/paygo-operator'],
      ['lost leadership', 'a', 'paygo-system/paygo-operator'],
    ]);
    expect(logs.filter((l) => l.level === 40).every((l) => l.msg === 'lease update failed' && typeof l.error === 'string')).toBe(true);
  });

  it('a failed renewal within the deadline keeps leadership (one 500, then renewed)', async () => {
    const a = candidate('a');
    a.start();
    await until(() => a.isLeader(), 'a leads');
    kube.fail({ match: (r) => r.user === 'a' && r.verb === 'get', status: 500 });
    clock.advance(1_000);
    await until(() => lease()!.spec.renewTime === micro(clock.ms), 'the renewal after the failure');
    expect(a.isLeader()).toBe(true);
    expect(changes.a).toEqual([true]);
    expect(logs.filter((l) => l.msg === 'lease update failed')).toHaveLength(1);
  });

  it('an error creating the lease (not a conflict) is retried on the next tick', async () => {
    kube.fail({ match: (r) => r.verb === 'create' && r.resource === LEASES, status: 500 });
    const a = candidate('a');
    a.start();
    await until(() => a.isLeader(), 'a leads');
    expect(kube.calls({ verb: 'create', resource: LEASES }).map((r) => r.status)).toEqual([500, 201]);
    expect(changes.a).toEqual([true]);
  });

  it('an error renewing (not a conflict) counts like a failed renewal: leadership ends at the deadline', async () => {
    const a = candidate('a');
    a.start();
    await until(() => a.isLeader(), 'a leads');
    kube.fail({ match: (r) => r.user === 'a' && r.verb === 'update', status: 500, times: Infinity });
    clock.advance(9_999);
    await ticks('a');
    expect(a.isLeader()).toBe(true);
    clock.advance(1);
    await until(() => !a.isLeader(), 'a steps down');
    expect(logs.some((l) => l.msg === 'lease update failed')).toBe(true);
  });

  it('takes a lease with no holder, no renewal time or no duration at once, counting the transition', async () => {
    for (const spec of [{ renewTime: micro(clock.ms), leaseDurationSeconds: 15 }, { holderIdentity: 'x', leaseDurationSeconds: 15 }, { holderIdentity: 'x', renewTime: micro(clock.ms - 1) }]) {
      foreignLease(spec);
      const a = candidate('a');
      a.start();
      await until(() => a.isLeader(), `a takes ${JSON.stringify(spec)}`);
      expect(lease()!.spec).toEqual({ ...spec, holderIdentity: 'a', leaseDurationSeconds: 15, renewTime: micro(clock.ms), acquireTime: micro(clock.ms), leaseTransitions: 1 });
      await a.stop();
      kube.remove(LEASES, 'paygo-system', 'paygo-operator');
    }
  });

  it('takes an expired lease, counting on from its transitions and keeping its other fields', async () => {
    foreignLease({ holderIdentity: 'x', leaseDurationSeconds: 10, renewTime: micro(clock.ms - 10_001), acquireTime: micro(clock.ms - 60_000), leaseTransitions: 4 });
    const a = candidate('a');
    a.start();
    await until(() => a.isLeader(), 'a takes it');
    expect(lease()!.spec).toEqual({ holderIdentity: 'a', leaseDurationSeconds: 15, renewTime: micro(clock.ms), acquireTime: micro(clock.ms), leaseTransitions: 5 });
  });

  it('waits for a lease held by another until its own duration has passed', async () => {
    foreignLease({ holderIdentity: 'x', leaseDurationSeconds: 10, renewTime: micro(clock.ms), acquireTime: micro(clock.ms), leaseTransitions: 0 });
    const a = candidate('a');
    a.start();
    clock.advance(10_000);
    await ticks('a');
    expect(a.isLeader()).toBe(false);
    expect(kube.calls({ verb: 'update', resource: LEASES })).toEqual([]);
    clock.advance(1);
    await until(() => a.isLeader(), 'a takes it');
  });

  it('renewing its own lease keeps acquireTime and transitions; one without acquireTime gets none', async () => {
    foreignLease({ holderIdentity: 'a', leaseDurationSeconds: 15, renewTime: micro(clock.ms), leaseTransitions: 2 });
    const a = candidate('a');
    a.start();
    clock.advance(1_000);
    await until(() => a.isLeader() && lease()!.spec.renewTime === micro(clock.ms), 'a renews');
    expect(lease()!.spec).toEqual({ holderIdentity: 'a', leaseDurationSeconds: 15, renewTime: micro(clock.ms), leaseTransitions: 2 });
  });

  it('a renew deadline longer than the lease is cut to the lease duration', async () => {
    const a = candidate('a', { renewDeadlineMs: 60_000 });
    a.start();
    await until(() => a.isLeader(), 'a leads');
    kube.fail({ match: (r) => r.user === 'a', status: 500, times: Infinity });
    clock.advance(14_999);
    await ticks('a');
    expect(a.isLeader()).toBe(true);
    clock.advance(1);
    expect(a.isLeader()).toBe(false);
    expect(changes.a).toEqual([true, false]);
  });

  it('a shorter renew deadline is used as given', async () => {
    const a = candidate('a', { renewDeadlineMs: 3_000 });
    a.start();
    await until(() => a.isLeader(), 'a leads');
    kube.fail({ match: (r) => r.user === 'a', status: 500, times: Infinity });
    clock.advance(2_999);
    await ticks('a');
    expect(a.isLeader()).toBe(true);
    clock.advance(1);
    expect(a.isLeader()).toBe(false);
  });

  it('the lease duration is written in whole seconds, rounded up, 15 s by default', async () => {
    const a = candidate('a', { leaseDurationMs: 7_500 });
    a.start();
    await until(() => a.isLeader(), 'a leads');
    expect(lease()!.spec.leaseDurationSeconds).toBe(8);
    await a.stop();
    kube.remove(LEASES, 'paygo-system', 'paygo-operator');
    const b = candidate('b', { leaseDurationMs: undefined });
    b.start();
    await until(() => b.isLeader(), 'b leads');
    expect(lease()!.spec.leaseDurationSeconds).toBe(15);
  });

  it('without a clock it stamps the lease with the real time', async () => {
    const before = Date.now();
    const a = candidate('a', { now: undefined });
    a.start();
    await until(() => a.isLeader(), 'a leads');
    const renewed = Date.parse(lease()!.spec.renewTime as string);
    expect(renewed).toBeGreaterThanOrEqual(before - 1);
    expect(renewed).toBeLessThanOrEqual(Date.now());
  });

  it('stop() leaves a lease held by another alone, and survives an API server that fails', async () => {
    foreignLease({ holderIdentity: 'x', leaseDurationSeconds: 15, renewTime: micro(clock.ms), acquireTime: micro(clock.ms), leaseTransitions: 0 });
    const a = candidate('a');
    a.start();
    await ticks('a', 1);
    await a.stop();
    expect(kube.calls({ verb: 'update', resource: LEASES })).toEqual([]);
    expect(lease()!.spec.holderIdentity).toBe('x');
    expect(changes.a).toEqual([]);

    kube.remove(LEASES, 'paygo-system', 'paygo-operator');
    const b = candidate('b');
    b.start();
    await until(() => b.isLeader(), 'b leads');
    kube.fail({ match: (r) => r.user === 'b', status: 500, times: Infinity });
    await b.stop();
    expect(lease()!.spec.holderIdentity).toBe('b');
    expect(changes.b).toEqual([true, false]);
  });
});

describe('LeaderElector: stepping down and what it logs', () => {
  const failures = () => logs.filter((l) => l.msg === 'lease update failed');

  it('steps down by itself at the renew deadline when renewals conflict (409): onChange(false) with no one asking isLeader()', async () => {
    candidate('a').start();
    await until(() => changes.a!.length === 1, 'a leads');
    kube.fail({ match: (r) => r.user === 'a' && r.verb === 'update', status: 409, times: Infinity });
    clock.advance(10_000);
    await until(() => changes.a!.length === 2, 'a steps down');
    expect(changes.a).toEqual([true, false]);
    expect(failures()).toEqual([]); // a conflict is someone else's write, not a failure
  });

  it('steps down by itself at the renew deadline when renewals fail (500): onChange(false) with no one asking isLeader()', async () => {
    candidate('a').start();
    await until(() => changes.a!.length === 1, 'a leads');
    kube.fail({ match: (r) => r.user === 'a' && r.verb === 'update', status: 500, times: Infinity });
    clock.advance(10_000);
    await until(() => changes.a!.length === 2, 'a steps down');
    expect(changes.a).toEqual([true, false]);
  });

  it('a clock that steps back does not make it leader again without a renewal', async () => {
    const a = candidate('a');
    a.start();
    await until(() => changes.a!.length === 1, 'a leads');
    kube.fail({ match: (r) => r.user === 'a' && r.verb === 'update', status: 409, times: Infinity });
    clock.advance(10_000);
    await until(() => changes.a!.length === 2, 'a steps down');
    clock.advance(-5_000); // within the deadline of the last renewal again
    await ticks('a');
    expect(changes.a).toEqual([true, false]);
    expect(a.isLeader()).toBe(false);
  });

  it('a failed renewal is logged with the error; a lease someone else created first (409) is not a failure', async () => {
    kube.fail({ match: (r) => r.verb === 'create' && r.resource === LEASES, status: 409, reason: 'AlreadyExists' });
    const a = candidate('a');
    a.start();
    await until(() => a.isLeader(), 'a creates it on the next tick');
    expect(kube.calls({ verb: 'create', resource: LEASES }).map((r) => r.status)).toEqual([409, 201]);
    expect(failures()).toEqual([]);
    kube.fail({ match: (r) => r.user === 'a' && r.verb === 'get', status: 500 });
    clock.advance(1_000);
    await until(() => lease()!.spec.renewTime === micro(clock.ms), 'the renewal after the failure');
    expect(failures()).toEqual([expect.objectContaining({ level: 40, error: expect.stringContaining('500') })]);
  });

  it('an error creating the lease (not a conflict) is logged with the error', async () => {
    kube.fail({ match: (r) => r.verb === 'create' && r.resource === LEASES, status: 500 });
    const a = candidate('a');
    a.start();
    await until(() => a.isLeader(), 'a leads');
    expect(failures()).toEqual([expect.objectContaining({ level: 40, error: expect.stringContaining('500') })]);
  });

  it('a tick that fails after stop() began is not logged', async () => {
    const a = candidate('a');
    a.start();
    await until(() => a.isLeader(), 'a leads');
    const gate = kube.hold((r) => r.user === 'a' && r.verb === 'get');
    kube.fail({ match: (r) => r.user === 'a' && r.verb === 'get', status: 500 });
    await gate.arrived; // a tick is in flight and will fail
    const stopped = a.stop();
    gate.release();
    await stopped;
    expect(kube.calls({ verb: 'get', resource: LEASES }).filter((r) => r.user === 'a').at(-2)!.status).toBe(500);
    expect(failures()).toEqual([]);
  });
});

/** A CoordinationV1Api in memory, for the tests on fake timers (no HTTP). */
class MemoryLeases {
  lease: V1Lease | undefined;
  readonly calls: string[] = [];
  /** The next this many reads never answer. */
  hangingReads = 0;
  readonly api = {
    readNamespacedLease: async (): Promise<V1Lease> => {
      this.calls.push('read');
      if (this.hangingReads > 0) {
        this.hangingReads--;
        return new Promise<V1Lease>(() => {});
      }
      if (!this.lease) throw Object.assign(new Error('not found'), { code: 404 });
      return structuredClone(this.lease);
    },
    createNamespacedLease: async ({ body }: { body: V1Lease }): Promise<V1Lease> => {
      this.calls.push('create');
      this.lease = structuredClone(body);
      return body;
    },
    replaceNamespacedLease: async ({ body }: { body: V1Lease }): Promise<V1Lease> => {
      this.calls.push('replace');
      this.lease = structuredClone(body);
      return body;
    },
  } as unknown as CoordinationV1Api;
}

describe('LeaderElector: stop()', () => {
  const memoryElector = (mem: MemoryLeases, onChange: (leader: boolean) => void) =>
    new LeaderElector({ api: mem.api, namespace: 'paygo-system', name: 'paygo-operator', identity: 'a', retryPeriodMs: 10, now: clock.now, logger, onChange });

  it('waits at most 5 s for a tick whose API call hangs, then releases', async () => {
    vi.useFakeTimers();
    const mem = new MemoryLeases();
    mem.hangingReads = 1;
    const e = memoryElector(mem, () => {});
    e.start();
    let done = false;
    const stopping = e.stop().then(() => (done = true));
    await vi.advanceTimersByTimeAsync(4_999);
    expect(done).toBe(false);
    expect(mem.calls).toEqual(['read']);
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toBe(true);
    await stopping;
    expect(mem.calls).toEqual(['read', 'read']); // the release's read (404: nothing to release)
  });

  it('stop() called from onChange is final: the release is the last write, no tick follows', async () => {
    vi.useFakeTimers();
    const mem = new MemoryLeases();
    const seen: boolean[] = [];
    let stopping: Promise<void> | undefined;
    const e = memoryElector(mem, (leader) => {
      seen.push(leader);
      if (leader) stopping = e.stop();
    });
    e.start();
    await vi.advanceTimersByTimeAsync(0);
    await stopping;
    expect(seen).toEqual([true, false]);
    expect(mem.calls).toEqual(['read', 'create', 'read', 'replace']);
    expect(mem.lease!.spec!.holderIdentity).toBe('');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(mem.calls).toHaveLength(4);
    expect(mem.lease!.spec!.holderIdentity).toBe('');
  });
});
