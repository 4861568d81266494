import { CoordinationV1Api } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LeaderElector } from '../../operator/leader.js';
import { FakeKube, LEASES, until, type KubeObject } from '../support/fake-kube.js';
import { TestClock, silent } from '../support/operator-fixtures.js';

let kube: FakeKube;
let clock: TestClock;
let electors: LeaderElector[];
let changes: Record<string, boolean[]>;

beforeEach(async () => {
  kube = await new FakeKube().start();
  clock = new TestClock();
  electors = [];
  changes = {};
});

afterEach(async () => {
  await Promise.all(electors.map((e) => e.stop()));
  await kube.stop();
});

/** A candidate ticking every 10 ms of real time, with the lease's times on the test clock. */
function candidate(identity: string): LeaderElector {
  changes[identity] = [];
  const e = new LeaderElector({
    api: kube.kubeConfig(identity).makeApiClient(CoordinationV1Api),
    namespace: 'paygo-system',
    name: 'paygo-operator',
    identity,
    leaseDurationMs: 15_000,
    retryPeriodMs: 10,
    now: clock.now,
    logger: silent,
    onChange: (leader) => changes[identity]!.push(leader),
  });
  electors.push(e);
  return e;
}

const lease = () => kube.get(LEASES, 'paygo-system', 'paygo-operator') as (KubeObject & { spec: Record<string, unknown> }) | undefined;
const micro = (ms: number) => new Date(ms).toISOString().replace('Z', '000Z');
/** Some ticks of every candidate went by (each tick reads the lease). */
async function ticks(identity: string, n = 3): Promise<void> {
  const start = kube.calls({ verb: 'get', resource: LEASES }).filter((r) => r.user === identity).length;
  await until(() => kube.calls({ verb: 'get', resource: LEASES }).filter((r) => r.user === identity).length >= start + n, `${n} ticks of ${identity}`);
}

describe('LeaderElector', () => {
  it('acquires a missing lease by creating it, with MicroTime stamps', async () => {
    const a = candidate('a');
    a.start();
    await until(() => a.isLeader(), 'a leads');
    expect(changes.a).toEqual([true]);
    expect(lease()!.spec).toEqual({ holderIdentity: 'a', leaseDurationSeconds: 15, acquireTime: micro(clock.ms), renewTime: micro(clock.ms), leaseTransitions: 0 });
    expect(kube.calls({ verb: 'create', resource: LEASES })).toHaveLength(1);
  });

  it('renews while it holds the lease; a second candidate waits', async () => {
    const a = candidate('a');
    a.start();
    await until(() => a.isLeader(), 'a leads');
    const acquired = clock.ms;
    const b = candidate('b');
    b.start();
    clock.advance(10_000);
    await until(() => lease()!.spec.renewTime === micro(clock.ms), 'renewal');
    await ticks('b');
    clock.advance(10_000); // 20 s after acquiring: held only thanks to the renewal
    await until(() => lease()!.spec.renewTime === micro(clock.ms), 'second renewal');
    await ticks('b');
    expect(b.isLeader()).toBe(false);
    expect(changes.b).toEqual([]);
    expect(lease()!.spec).toMatchObject({ holderIdentity: 'a', acquireTime: micro(acquired), leaseTransitions: 0 });
    expect(kube.calls({ verb: 'update', resource: LEASES }).filter((r) => r.user === 'b')).toEqual([]);
  });

  it('hands over to another identity once a crashed leader\'s lease expired', async () => {
    const a = candidate('a');
    a.start();
    await until(() => a.isLeader(), 'a leads');
    const b = candidate('b');
    b.start();
    // a can no longer reach the API server.
    kube.fail({ match: (r) => r.user === 'a', status: 500, times: Infinity });
    clock.advance(15_000); // exactly the duration: not yet expired for b
    await ticks('b');
    expect(b.isLeader()).toBe(false);
    clock.advance(1);
    await until(() => b.isLeader(), 'b takes over');
    expect(lease()!.spec).toMatchObject({ holderIdentity: 'b', acquireTime: micro(clock.ms), renewTime: micro(clock.ms), leaseTransitions: 1 });
    await until(() => !a.isLeader(), 'a steps down');
    expect(changes).toEqual({ a: [true, false], b: [true] });
  });

  it('keeps leadership through failed renewals shorter than the renew deadline (2/3 of the lease), loses it past it', async () => {
    const a = candidate('a');
    a.start();
    await until(() => a.isLeader(), 'a leads');
    kube.fail({ match: (r) => r.user === 'a' && r.verb === 'update', status: 409, times: Infinity });
    clock.advance(9_999);
    await ticks('a');
    expect(a.isLeader()).toBe(true);
    clock.advance(1);
    await until(() => !a.isLeader(), 'a loses on repeated conflicts');
    expect(changes.a).toEqual([true, false]);
  });

  it('does not lead when another candidate created the lease first (409 on create)', async () => {
    kube.fail({ match: (r) => r.verb === 'create' && r.resource === LEASES, status: 409, reason: 'AlreadyExists' });
    const a = candidate('a');
    a.start();
    await until(() => kube.calls({ verb: 'create', resource: LEASES }).length === 1 && kube.calls({ verb: 'create', resource: LEASES })[0]!.status === 409, 'the refused create');
    expect(a.isLeader()).toBe(false);
    await until(() => a.isLeader(), 'a creates it on the next tick');
    expect(changes.a).toEqual([true]);
  });

  it('a graceful stop releases the lease: the successor takes it at once', async () => {
    const a = candidate('a');
    a.start();
    await until(() => a.isLeader(), 'a leads');
    const b = candidate('b');
    b.start();
    await ticks('b');
    expect(b.isLeader()).toBe(false);
    await a.stop();
    expect(changes.a).toEqual([true, false]);
    expect(lease()!.spec.holderIdentity).toBe('');
    await until(() => b.isLeader(), 'b takes the released lease without waiting for expiry');
    expect(lease()!.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
  });

  it('a renewal in flight during stop neither re-takes leadership nor outlives the release', async () => {
    const a = candidate('a');
    a.start();
    await until(() => a.isLeader(), 'a leads');
    const gate = kube.hold((r) => r.user === 'a' && r.resource === LEASES && r.verb === 'get');
    await gate.arrived; // a tick is in flight
    const stopped = a.stop();
    expect(a.isLeader()).toBe(false);
    gate.release(); // the renewal goes through after stop() began
    await stopped;
    expect(changes.a).toEqual([true, false]);
    expect(a.isLeader()).toBe(false);
    expect(lease()!.spec.holderIdentity).toBe('');
  });

  it('never has two leaders: a leader whose renewal hangs steps down before a successor can take over', async () => {
    const a = candidate('a');
    a.start();
    await until(() => a.isLeader(), 'a leads');
    const gate = kube.hold((r) => r.user === 'a' && r.resource === LEASES);
    await gate.arrived; // a's next tick hangs on the API server
    const b = candidate('b');
    b.start();
    clock.advance(15_001);
    await until(() => b.isLeader(), 'b takes the expired lease');
    expect(a.isLeader()).toBe(false);
    expect(changes.a).toEqual([true, false]);
    gate.release();
  });
});
