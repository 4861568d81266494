import type { CoreV1Api, CustomObjectsApi, V1Secret } from '@kubernetes/client-node';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { ClusterCache, RawObject } from '../../operator/cache.js';
import type { RouteSync } from '../../operator/distribution.js';
import { RouteStatusWriter, desiredRouteStatus, type RouteStatus } from '../../operator/route-status.js';
import type { TargetCounts } from '../../operator/target-totals.js';
import { TestClock, route, silent } from '../support/operator-fixtures.js';

/** A cache holding only the given routes and secrets ("namespace/name" → data). */
function cacheOf(o: { routes?: RawObject[]; secrets?: Record<string, Record<string, string>> } = {}): ClusterCache {
  const secrets = o.secrets ?? {};
  return {
    routes: { get: (name: string, namespace?: string) => o.routes?.find((r) => r.metadata?.name === name && r.metadata?.namespace === namespace) },
    secret: (namespace: string, name: string): V1Secret | undefined => {
      const d = secrets[`${namespace}/${name}`];
      return d ? { metadata: { name, namespace }, data: Object.fromEntries(Object.entries(d).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) } : undefined;
    },
  } as unknown as ClusterCache;
}

const synced = (desired: number, synced = desired, rejected = 0, rejectReason?: string): RouteSync => ({ desired, synced, rejected, rejectReason });
const NOW = new Date('2026-03-10T12:00:00.000Z');
const LATER = new Date('2026-03-10T12:10:00.000Z');
const raw = (o: Parameters<typeof route>[2] & { generation?: number; namespace?: string; status?: unknown } = {}): RawObject => {
  const r = route(o.namespace ?? 'app', 'chat', o) as RawObject;
  if (o.generation !== undefined) r.metadata!.generation = o.generation;
  if (o.status !== undefined) r.status = o.status;
  return r;
};
const ok = cacheOf({ secrets: { 'app/openai': { 'api-key': 'sk' }, 'app/backup': { 'api-key': 'sk' } } });
const ready = (s: RouteStatus) => s.conditions.find((c) => c.type === 'Ready');
describe('desiredRouteStatus', () => {
  it('without a generation there is no observedGeneration, in status or conditions', () => {
    const s = desiredRouteStatus(ok, raw(), synced(0), NOW);
    expect(Object.keys(s)).toEqual(['conditions', 'sidecars', 'targetCount']);
    expect(s.conditions.every((c) => c.observedGeneration === undefined)).toBe(true);
    expect(desiredRouteStatus(ok, raw({ generation: 4 }), synced(0), NOW)).toMatchObject({ observedGeneration: 4 });
  });

  it('an invalid route: each condition says why, and nothing about sidecars', () => {
    const bad = raw({ generation: 3 });
    (bad.spec as { targets: Array<Record<string, unknown>> }).targets[0]!.provider = 'nope';
    const s = desiredRouteStatus(ok, bad, synced(2, 2), NOW, () => ({ requests: 1, successes: 1, errors: 0, costNano: 1n }));
    expect(s.conditions.map((c) => [c.type, c.status, c.reason, c.type === 'Accepted' ? undefined : c.message, c.observedGeneration])).toEqual([
      ['Accepted', 'False', 'Invalid', undefined, 3],
      ['Ready', 'False', 'Invalid', 'the route is invalid and is not sent to sidecars', 3],
      ['ResolvedRefs', 'False', 'Invalid', 'the route is invalid', 3],
    ]);
    expect(s.targets).toBeUndefined();
  });

  it('a NACK without a reason still says how many rejected, with no dangling text', () => {
    expect(ready(desiredRouteStatus(ok, raw(), synced(3, 1, 2), NOW))).toMatchObject({ status: 'False', reason: 'SidecarRejected', message: '2 of 3 sidecars rejected the configuration:' });
  });

  it('Ready says SidecarRejected before SecretNotFound, and SecretNotFound before Syncing', () => {
    const missing = cacheOf();
    expect(ready(desiredRouteStatus(missing, raw(), synced(2, 0, 1, 'bad'), NOW))!.reason).toBe('SidecarRejected');
    expect(ready(desiredRouteStatus(missing, raw(), synced(2, 1), NOW))!.reason).toBe('SecretNotFound');
    expect(ready(desiredRouteStatus(ok, raw(), synced(2, 1), NOW))).toMatchObject({ status: 'False', reason: 'Syncing', message: '1 of 2 sidecars have the current configuration' });
    expect(ready(desiredRouteStatus(ok, raw(), synced(2, 2), NOW))).toMatchObject({ status: 'True', reason: 'Synced', message: '2 of 2 sidecars have the current configuration' });
    // More ACKs than sidecars (a race with a disconnect) is not "syncing".
    expect(ready(desiredRouteStatus(ok, raw(), synced(1, 2), NOW))!.reason).toBe('Synced');
  });

  it('ResolvedRefs names every unresolved target, in order', () => {
    const s = desiredRouteStatus(cacheOf({ secrets: { 'app/backup': { other: 'x' } } }), raw({ secrets: ['openai', 'backup'] }), synced(0), NOW);
    expect(s.conditions.find((c) => c.type === 'ResolvedRefs')).toMatchObject({
      status: 'False',
      reason: 'SecretNotFound',
      message: 'target openai: Secret app/openai not found; target backup: Secret app/backup has no key "api-key"',
    });
  });

  it('targetCount counts spec.targets even of an invalid route, and is 0 without a list', () => {
    const bad = raw();
    (bad.spec as { targets: unknown[] }).targets.push({ name: 'x', provider: 'nope' });
    expect(desiredRouteStatus(ok, bad, synced(0), NOW).targetCount).toBe(2);
    const noList = raw();
    (noList.spec as { targets: unknown }).targets = 'openai';
    expect(desiredRouteStatus(ok, noList, synced(0), NOW).targetCount).toBe(0);
    const noSpec = raw();
    delete noSpec.spec;
    expect(desiredRouteStatus(ok, noSpec, synced(0), NOW)).toMatchObject({ targetCount: 0, conditions: [{ type: 'Accepted', status: 'False', reason: 'Invalid' }, {}, {}] });
  });

  it('per-target totals: only with a totals source, asked by namespace, route and target name (unnamed: provider-index)', () => {
    expect(desiredRouteStatus(ok, raw(), synced(0), NOW).targets).toBeUndefined();
    const asked: string[] = [];
    const totals = (ns: string, r: string, t: string): TargetCounts => {
      asked.push(`${ns}/${r}/${t}`);
      return { requests: 7, successes: 3, errors: 4, costNano: 10n };
    };
    const unnamed = raw({ namespace: 'team' });
    delete (unnamed.spec as { targets: Array<{ name?: string }> }).targets[0]!.name;
    const s = desiredRouteStatus(cacheOf({ secrets: { 'team/openai': { 'api-key': 'k' } } }), unnamed, synced(0), NOW, totals);
    expect(asked).toEqual(['team/chat/openai-0']);
    // Cost per success rounds down to the nano-dollar.
    expect(s.targets).toEqual([{ name: 'openai-0', requests: 7, errors: 4, cost: '0.000000010', costPerSuccess: '0.000000003' }]);
  });

  it('a route without a namespace is of "default"', () => {
    const r = raw();
    delete r.metadata!.namespace;
    const asked: string[] = [];
    desiredRouteStatus(cacheOf({ secrets: { 'default/openai': { 'api-key': 'k' } } }), r, synced(0), NOW, (ns, name, t) => {
      asked.push(`${ns}/${name}/${t}`);
      return { requests: 0, successes: 0, errors: 0, costNano: 0n };
    });
    expect(asked).toEqual(['default/chat/openai']);
  });

  it('starts from the conditions in status: an unchanged status keeps its lastTransitionTime', () => {
    const first = desiredRouteStatus(ok, raw({ generation: 1 }), synced(1, 0), NOW);
    const second = desiredRouteStatus(ok, raw({ generation: 2, status: first }), synced(1, 1), LATER);
    expect(second.conditions.map((c) => [c.type, c.status, c.lastTransitionTime, c.observedGeneration])).toEqual([
      ['Accepted', 'True', '2026-03-10T12:00:00Z', 2],
      ['Ready', 'True', '2026-03-10T12:10:00Z', 2],
      ['ResolvedRefs', 'True', '2026-03-10T12:00:00Z', 2],
    ]);
  });
});

describe('RouteStatusWriter (recorded API calls)', () => {
  function writer(routes: RawObject[], o: { sync?: RouteSync; failEvent?: boolean; clock?: TestClock; logs?: string[] } = {}) {
    const writes: Array<Record<string, unknown>> = [];
    const events: Array<Record<string, unknown>> = [];
    const custom = { replaceNamespacedCustomObjectStatus: async (req: Record<string, unknown>) => void writes.push(req) } as unknown as CustomObjectsApi;
    const core = {
      createNamespacedEvent: async (req: Record<string, unknown>) => {
        if (o.failEvent) throw new Error('events are down');
        events.push(req);
      },
    } as unknown as CoreV1Api;
    const logs = o.logs;
    const logger = logs ? pino({ level: 'warn' }, { write: (line: string) => void logs.push(line) }) : silent;
    const clock = o.clock ?? new TestClock();
    const w = new RouteStatusWriter({
      cache: cacheOf({ routes, secrets: { 'app/openai': { 'api-key': 'sk' } } }),
      custom,
      core,
      routeSync: () => o.sync ?? synced(0),
      now: clock.now,
      logger,
      fieldManager: 'fm-1',
    });
    return { w, writes, events };
  }

  it('writes the whole object with the new status through the status subresource, as its field manager', async () => {
    const r = raw({ generation: 2, status: { note: 'theirs', targetCount: 9 } });
    r.metadata!.resourceVersion = '41';
    const { w, writes } = writer([r]);
    await w.reconcile('app', 'chat');
    expect(writes).toHaveLength(1);
    const req = writes[0]!;
    expect({ ...req, body: undefined }).toEqual({ group: 'paygo.dev', version: 'v1alpha1', namespace: 'app', plural: 'modelroutes', name: 'chat', body: undefined, fieldManager: 'fm-1' });
    const body = req.body as RawObject & { status: RouteStatus & { note: string } };
    expect(body.metadata).toEqual(r.metadata);
    expect(body.spec).toEqual(r.spec);
    expect(body.status).toMatchObject({ note: 'theirs', targetCount: 1, observedGeneration: 2, sidecars: { desired: 0, synced: 0, rejected: 0 } });
  });

  it('does not write a status that is already there (whatever its key order), nor a route it does not know', async () => {
    const r = raw({ generation: 1 });
    const first = writer([r]);
    await first.w.reconcile('app', 'chat');
    const written = (first.writes[0]!.body as RawObject).status as Record<string, unknown>;
    const reversed = Object.fromEntries(Object.entries(written).reverse());
    const again = writer([raw({ generation: 1, status: reversed })]);
    await again.w.reconcile('app', 'chat');
    await again.w.reconcile('app', 'other');
    await again.w.reconcile('elsewhere', 'chat');
    expect(again.writes).toEqual([]);
    expect(again.events).toEqual([]);
  });

  it('records a Ready transition as an Event on the route, stamped by the clock', async () => {
    const r = raw({ generation: 1 });
    r.metadata!.uid = 'uid-r';
    r.metadata!.resourceVersion = '7';
    const clock = new TestClock();
    const { w, events } = writer([r], { sync: synced(2, 1), clock });
    await w.reconcile('app', 'chat');
    expect(events).toEqual([
      {
        namespace: 'app',
        body: {
          metadata: { generateName: 'chat.', namespace: 'app' },
          involvedObject: { apiVersion: 'paygo.dev/v1alpha1', kind: 'ModelRoute', name: 'chat', namespace: 'app', uid: 'uid-r', resourceVersion: '7' },
          reason: 'Syncing',
          message: '1 of 2 sidecars have the current configuration',
          type: 'Warning',
          source: { component: 'paygo-operator' },
          firstTimestamp: clock.now(),
          lastTimestamp: clock.now(),
          count: 1,
          reportingComponent: 'paygo.dev/operator',
          reportingInstance: 'paygo-operator',
        },
      },
    ]);
  });

  it('no Event while Ready keeps its status, even when its message changes', async () => {
    const first = writer([raw()], { sync: synced(3, 1) });
    await first.w.reconcile('app', 'chat');
    const status = (first.writes[0]!.body as RawObject).status;
    const second = writer([raw({ status })], { sync: synced(3, 2) });
    await second.w.reconcile('app', 'chat');
    expect(second.writes).toHaveLength(1);
    expect(second.events).toEqual([]);
    const third = writer([raw({ status })], { sync: synced(3, 3) });
    await third.w.reconcile('app', 'chat');
    expect(third.events.map((e) => (e.body as { type: string; reason: string }).reason)).toEqual(['Synced']);
    expect((third.events[0]!.body as { type: string }).type).toBe('Normal');
  });

  it('cuts an Event message at 1024 characters', async () => {
    const { w, events, writes } = writer([raw()], { sync: synced(1, 0, 1, 'x'.repeat(2000)) });
    await w.reconcile('app', 'chat');
    const message = (events[0]!.body as { message: string }).message;
    expect(message).toHaveLength(1024);
    expect(message.startsWith('1 of 1 sidecars rejected the configuration: xxx')).toBe(true);
    // The condition keeps the whole message.
    expect(ready((writes[0]!.body as { status: RouteStatus }).status)!.message).toHaveLength(2000 + '1 of 1 sidecars rejected the configuration: '.length);
  });

  it('a route without a namespace records its Event in "default"', async () => {
    const r = raw();
    delete r.metadata!.namespace;
    const routes = [r];
    const w = writer([]);
    // The cache lookup is by the namespace asked for; the object itself has none.
    (w.w as unknown as { o: { cache: ClusterCache } }).o.cache = { ...cacheOf({ secrets: { 'default/openai': { 'api-key': 'k' } } }), routes: { get: () => routes[0] } } as unknown as ClusterCache;
    await w.w.reconcile('default', 'chat');
    expect(w.events.map((e) => [e.namespace, (e.body as { metadata: { namespace: string } }).metadata.namespace])).toEqual([['default', 'default']]);
  });

  it('a failed Event is logged, not thrown', async () => {
    const logs: string[] = [];
    const { w, writes } = writer([raw()], { failEvent: true, logs });
    await w.reconcile('app', 'chat');
    expect(writes).toHaveLength(1);
    expect(logs.map((l) => JSON.parse(l) as Record<string, unknown>).map((l) => [l.msg, l.reason, l.error])).toEqual([['could not record an Event', 'Synced', 'events are down']]);
  });
});
