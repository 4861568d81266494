import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterCache } from '../../operator/cache.js';
import type { RouteSync } from '../../operator/distribution.js';
import { WorkQueue } from '../../operator/queue.js';
import { RouteStatusWriter, type RouteStatus } from '../../operator/route-status.js';
import type { TargetCounts } from '../../operator/target-totals.js';
import { EVENTS, FakeKube, ROUTES, SECRETS, until, type KubeObject } from '../support/fake-kube.js';
import { TestClock, route, secret, silent } from '../support/operator-fixtures.js';

let kube: FakeKube;
let cache: ClusterCache;
let clock: TestClock;
let writer: RouteStatusWriter;
let sync: RouteSync;
let totals: Map<string, TargetCounts>;

beforeEach(async () => {
  kube = await new FakeKube().start();
  clock = new TestClock();
  const kc = kube.kubeConfig();
  cache = new ClusterCache(kc, silent);
  sync = { desired: 0, synced: 0, rejected: 0, rejectReason: undefined };
  totals = new Map();
  writer = new RouteStatusWriter({
    cache,
    custom: kc.makeApiClient(CustomObjectsApi),
    core: kc.makeApiClient(CoreV1Api),
    routeSync: () => sync,
    targetTotals: (ns, r, t) => totals.get(`${ns}/${r}/${t}`) ?? { requests: 0, successes: 0, errors: 0, costNano: 0n },
    now: clock.now,
    logger: silent,
    fieldManager: 'paygo-operator-test',
  });
});

afterEach(async () => {
  await cache.stop();
  await kube.stop();
});

const stamp = () => new Date(clock.ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
const status = (name = 'chat') => kube.get(ROUTES, 'app', name)?.status as RouteStatus | undefined;
const condition = (type: string, name = 'chat') => status(name)?.conditions.find((c) => c.type === type);
const statusWrites = () => kube.calls({ verb: 'update', resource: ROUTES, subresource: 'status' });
const events = () => kube.list(EVENTS, 'app').map((e) => ({ type: e.type, reason: e.reason, message: e.message }));

/** Applies an object and waits until the cache has exactly that resourceVersion. */
async function apply(resource: string, obj: KubeObject): Promise<KubeObject> {
  const stored = kube.put(resource, obj);
  const informer = resource === ROUTES ? cache.routes : undefined;
  if (informer) await until(() => informer.get(obj.metadata.name!, obj.metadata.namespace)?.metadata?.resourceVersion === stored.metadata.resourceVersion, 'the cache');
  return stored;
}

/** Reconciles and waits until the cache saw the write (as the next reconcile would). */
async function reconcile(name = 'chat'): Promise<void> {
  const before = statusWrites().length;
  await writer.reconcile('app', name);
  if (statusWrites().length > before) {
    const rv = kube.get(ROUTES, 'app', name)!.metadata.resourceVersion;
    await until(() => cache.routes.get(name, 'app')?.metadata?.resourceVersion === rv, 'the cache to see the status');
  }
}

async function startWithRoute(obj = route('app', 'chat')): Promise<void> {
  kube.put(SECRETS, secret('app', 'openai'));
  kube.put(ROUTES, obj);
  await cache.start();
  await until(() => cache.secretKnown('app', 'openai'), 'the secret list');
}

describe('RouteStatusWriter', () => {
  it('a route with no sidecars is Ready (0 of 0); conditions, counts and observedGeneration are written', async () => {
    await startWithRoute();
    await reconcile();
    expect(status()).toEqual({
      observedGeneration: 1,
      conditions: [
        { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'the route is valid', observedGeneration: 1, lastTransitionTime: stamp() },
        { type: 'Ready', status: 'True', reason: 'Synced', message: '0 of 0 sidecars have the current configuration', observedGeneration: 1, lastTransitionTime: stamp() },
        { type: 'ResolvedRefs', status: 'True', reason: 'Resolved', message: 'every credentials.secretRef resolves', observedGeneration: 1, lastTransitionTime: stamp() },
      ],
      sidecars: { desired: 0, synced: 0, rejected: 0 },
      targetCount: 1,
      targets: [{ name: 'openai', requests: 0, errors: 0, cost: '0.000000000' }],
    });
    expect(statusWrites()[0]!.query.get('fieldManager')).toBe('paygo-operator-test');
    expect(events()).toEqual([{ type: 'Normal', reason: 'Synced', message: '0 of 0 sidecars have the current configuration' }]);
  });

  it('is Syncing until every selected sidecar ACKed the current version, then Ready; an Event per Ready transition', async () => {
    await startWithRoute();
    sync = { desired: 3, synced: 2, rejected: 0, rejectReason: undefined };
    await reconcile();
    expect(condition('Ready')).toMatchObject({ status: 'False', reason: 'Syncing', message: '2 of 3 sidecars have the current configuration', lastTransitionTime: stamp() });
    expect(status()!.sidecars).toEqual({ desired: 3, synced: 2, rejected: 0 });
    const syncingSince = stamp();

    clock.advance(5_000);
    sync = { desired: 3, synced: 1, rejected: 0, rejectReason: undefined }; // still False: the time stays
    await reconcile();
    expect(condition('Ready')).toMatchObject({ status: 'False', reason: 'Syncing', message: '1 of 3 sidecars have the current configuration', lastTransitionTime: syncingSince });

    clock.advance(5_000);
    sync = { desired: 3, synced: 3, rejected: 0, rejectReason: undefined };
    await reconcile();
    expect(condition('Ready')).toMatchObject({ status: 'True', reason: 'Synced', message: '3 of 3 sidecars have the current configuration', lastTransitionTime: stamp() });
    expect(condition('Accepted')!.lastTransitionTime).toBe(syncingSince);
    expect(events()).toEqual([
      { type: 'Warning', reason: 'Syncing', message: '2 of 3 sidecars have the current configuration' },
      { type: 'Normal', reason: 'Synced', message: '3 of 3 sidecars have the current configuration' },
    ]);
  });

  it('a NACK makes it Ready=False SidecarRejected with the first reason, even when the others synced', async () => {
    await startWithRoute();
    sync = { desired: 2, synced: 1, rejected: 1, rejectReason: 'pod app-1: model "chat" is claimed by two routes' };
    await reconcile();
    expect(condition('Ready')).toMatchObject({ status: 'False', reason: 'SidecarRejected', message: '1 of 2 sidecars rejected the configuration: pod app-1: model "chat" is claimed by two routes' });
    expect(events()).toEqual([{ type: 'Warning', reason: 'SidecarRejected', message: '1 of 2 sidecars rejected the configuration: pod app-1: model "chat" is claimed by two routes' }]);
  });

  it('a missing Secret: ResolvedRefs and Ready False SecretNotFound, then Ready once it appears', async () => {
    kube.put(ROUTES, route('app', 'chat', { secrets: ['absent'] }));
    await cache.start();
    await until(() => cache.secretKnown('app', 'absent'), 'the secret list');
    await reconcile();
    expect(condition('ResolvedRefs')).toMatchObject({ status: 'False', reason: 'SecretNotFound' });
    expect(condition('ResolvedRefs')!.message).toMatch(/^target absent: /);
    expect(condition('Ready')).toMatchObject({ status: 'False', reason: 'SecretNotFound', message: 'some targets have no credentials and are skipped by sidecars' });
    kube.put(SECRETS, secret('app', 'absent'));
    await until(() => cache.secret('app', 'absent') !== undefined, 'the secret');
    await reconcile();
    expect(condition('ResolvedRefs')).toMatchObject({ status: 'True', reason: 'Resolved' });
    expect(condition('Ready')).toMatchObject({ status: 'True', reason: 'Synced' });
  });

  it('an invalid route: Accepted, ResolvedRefs and Ready False Invalid, no per-target status', async () => {
    const bad = route('app', 'chat');
    (bad.spec as { targets: Array<Record<string, unknown>> }).targets[0]!.provider = 'nope';
    await startWithRoute(bad);
    await reconcile();
    const s = status()!;
    expect(s.conditions.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Accepted', 'False', 'Invalid'],
      ['Ready', 'False', 'Invalid'],
      ['ResolvedRefs', 'False', 'Invalid'],
    ]);
    expect(condition('Accepted')!.message).toMatch(/^spec\.targets\[0\]\.provider: Invalid option/);
    expect(condition('Ready')!.message).toBe('the route is invalid and is not sent to sidecars');
    expect(s.targets).toBeUndefined();
    expect(s.targetCount).toBe(1);
  });

  it('observedGeneration follows a spec change; nothing is written when nothing changed', async () => {
    await startWithRoute();
    await reconcile();
    await reconcile();
    expect(statusWrites()).toHaveLength(1);
    await apply(ROUTES, route('app', 'chat', { spec: { retry: { attempts: 3 } } }));
    await reconcile();
    expect(statusWrites()).toHaveLength(2);
    expect(status()!.observedGeneration).toBe(2);
    expect(status()!.conditions.every((c) => c.observedGeneration === 2)).toBe(true);
  });

  it('keeps status fields it does not own', async () => {
    const obj = route('app', 'chat');
    kube.put(SECRETS, secret('app', 'openai'));
    kube.put(ROUTES, { ...obj, status: { note: 'from someone else' } });
    await cache.start();
    await until(() => cache.secretKnown('app', 'openai'), 'the secret list');
    await reconcile();
    expect((status() as unknown as { note: string }).note).toBe('from someone else');
  });

  it('writes per-target totals (cost per success only when something succeeded)', async () => {
    const obj = route('app', 'chat', { secrets: ['openai', 'backup'] });
    kube.put(SECRETS, secret('app', 'backup'));
    await startWithRoute(obj);
    totals.set('app/chat/openai', { requests: 10, successes: 8, errors: 2, costNano: 4_000_000n });
    totals.set('app/chat/backup', { requests: 1, successes: 0, errors: 1, costNano: 0n });
    await reconcile();
    expect(status()!.targets).toEqual([
      { name: 'openai', requests: 10, errors: 2, cost: '0.004000000', costPerSuccess: '0.000500000' },
      { name: 'backup', requests: 1, errors: 1, cost: '0.000000000' },
    ]);
    expect(status()!.targetCount).toBe(2);
  });

  it('a 409 on the status write is retried through the queue with the fresh object, keeping the other writer\'s change', async () => {
    await startWithRoute();
    await until(() => kube.openWatches(ROUTES) === 1, 'route watch');
    // Someone else changes the route while our cache has not seen it yet.
    kube.stallWatches();
    const theirs = route('app', 'chat');
    theirs.metadata.labels = { team: 'x' };
    const fresh = kube.put(ROUTES, theirs);
    const errors: number[] = [];
    const queue = new WorkQueue(
      (key) => writer.reconcile(...(key.split('/') as [string, string])),
      (_key, err) => errors.push((err as { code: number }).code),
    );
    queue.add('app/chat');
    await until(() => errors.length === 1, 'the conflict');
    expect(errors).toEqual([409]);
    kube.dropWatches(); // the cache catches up
    await until(() => statusWrites().some((r) => r.status === 200), 'the retried write', 8000);
    queue.stop();
    const [first, second] = statusWrites();
    expect(first!.status).toBe(409);
    expect((second!.body as KubeObject).metadata.resourceVersion).toBe(fresh.metadata.resourceVersion);
    expect(kube.get(ROUTES, 'app', 'chat')!.metadata.labels).toEqual({ team: 'x' });
    expect(condition('Ready')).toMatchObject({ status: 'True', reason: 'Synced' });
  });

  it('an injected 409 is retried and succeeds with the same object when it was not stale', async () => {
    await startWithRoute();
    kube.fail({ match: (r) => r.subresource === 'status', status: 409 });
    const queue = new WorkQueue(
      (key) => writer.reconcile(...(key.split('/') as [string, string])),
      () => {},
    );
    queue.add('app/chat');
    await until(() => statusWrites().length === 2 && statusWrites()[1]!.status === 200, 'the retry');
    queue.stop();
    expect(statusWrites().map((r) => r.status)).toEqual([409, 200]);
    expect(condition('Ready')!.status).toBe('True');
  });

  it('a failed Event write does not fail the reconcile', async () => {
    await startWithRoute();
    kube.fail({ match: (r) => r.resource === EVENTS, status: 500 });
    await writer.reconcile('app', 'chat');
    expect(condition('Ready')!.status).toBe('True');
    expect(events()).toEqual([]);
  });

  it('a deleted route is not written', async () => {
    await startWithRoute();
    kube.remove(ROUTES, 'app', 'chat');
    await until(() => cache.routes.list().length === 0, 'the delete');
    await writer.reconcile('app', 'chat');
    expect(statusWrites()).toEqual([]);
  });
});
