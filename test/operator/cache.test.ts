import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ClusterCache } from '../../operator/cache.js';
import { BUDGETS, FakeKube, ROUTES, SECRETS, until } from '../support/fake-kube.js';
import { budget, route, secret, silent } from '../support/operator-fixtures.js';

let kube: FakeKube;
let cache: ClusterCache;
let changed: string[];

beforeEach(async () => {
  kube = await new FakeKube().start();
  cache = new ClusterCache(kube.kubeConfig(), silent);
  changed = [];
  cache.onNamespaceChanged((ns) => changed.push(ns));
});

afterEach(async () => {
  await cache.stop();
  await kube.stop();
});

const routeNames = () => cache.routes.list().map((r) => `${r.metadata?.namespace}/${r.metadata?.name}`).sort();
const watchesOf = (resource: string) => kube.calls({ verb: 'watch', resource });

describe('ClusterCache', () => {
  it('lists routes and budgets in every namespace, then watches from the list resourceVersion', async () => {
    kube.put(ROUTES, route('a', 'r1'));
    kube.put(BUDGETS, budget('b', 'daily'));
    expect(cache.synced()).toBe(false);
    await cache.start();
    expect(cache.synced()).toBe(true);
    expect(routeNames()).toEqual(['a/r1']);
    expect(cache.budgets.get('daily', 'b')?.metadata?.name).toBe('daily');
    const lists = kube.calls({ verb: 'list', resource: ROUTES });
    expect(lists.map((r) => r.path)).toEqual(['/apis/paygo.dev/v1alpha1/modelroutes']);
    await until(() => watchesOf(ROUTES).length === 1 && watchesOf(BUDGETS).length === 1, 'watches');
    const w = watchesOf(ROUTES)[0]!;
    expect(w.path).toBe('/apis/paygo.dev/v1alpha1/modelroutes');
    expect(Number(w.query.get('resourceVersion'))).toBeGreaterThan(0);
    expect(w.seq).toBeGreaterThan(lists[0]!.seq);

    kube.put(ROUTES, route('c', 'r2'));
    await until(() => routeNames().length === 2, 'the watched add');
    expect(routeNames()).toEqual(['a/r1', 'c/r2']);
    expect(changed).toContain('c');
    kube.remove(ROUTES, 'a', 'r1');
    await until(() => routeNames().length === 1, 'the watched delete');
    expect(routeNames()).toEqual(['c/r2']);
  });

  it('after a lost watch reconnects from its resourceVersion and gets what changed meanwhile', async () => {
    kube.put(ROUTES, route('a', 'r1'));
    await cache.start();
    await until(() => kube.openWatches(ROUTES) === 1, 'route watch');
    const before = watchesOf(ROUTES)[0]!;
    kube.stallWatches(); // the connection hangs: nothing more arrives on it
    kube.put(ROUTES, route('a', 'r2'));
    kube.remove(ROUTES, 'a', 'r1');
    await new Promise((r) => setTimeout(r, 30));
    expect(routeNames()).toEqual(['a/r1']);
    changed.length = 0;
    kube.dropWatches();
    await until(() => routeNames().join() === 'a/r2', 'resync after the lost watch');
    const again = watchesOf(ROUTES).at(-1)!;
    expect(again.seq).toBeGreaterThan(before.seq);
    expect(again.query.get('resourceVersion')).toBe(before.query.get('resourceVersion'));
    // No relist was needed: the history since that resourceVersion was replayed.
    expect(kube.calls({ verb: 'list', resource: ROUTES })).toHaveLength(1);
    expect(changed).toContain('a');
  });

  it('relists when the watch answers 410 Gone (too old resource version) in the stream', async () => {
    kube.put(ROUTES, route('a', 'r1'));
    await cache.start();
    await until(() => kube.openWatches(ROUTES) === 1, 'route watch');
    kube.stallWatches();
    kube.remove(ROUTES, 'a', 'r1');
    kube.put(ROUTES, route('a', 'r3'));
    kube.compact();
    kube.dropWatches();
    await until(() => routeNames().join() === 'a/r3', 'relist after 410');
    expect(kube.calls({ verb: 'list', resource: ROUTES })).toHaveLength(2);
    kube.put(ROUTES, route('a', 'r4'));
    await until(() => routeNames().length === 2, 'watching again after the relist');
    expect(routeNames()).toEqual(['a/r3', 'a/r4']);
  });

  it('relists when a watch request is refused with HTTP 410', async () => {
    await cache.start();
    await until(() => kube.openWatches(BUDGETS) === 1, 'budget watch');
    kube.stallWatches();
    kube.put(BUDGETS, budget('a', 'b1'));
    kube.fail({ match: (r) => r.verb === 'watch' && r.resource === BUDGETS, status: 410 });
    kube.dropWatches();
    await until(() => cache.budgets.list().length === 1, 'relist after HTTP 410');
    expect(kube.calls({ verb: 'list', resource: BUDGETS })).toHaveLength(2);
  });

  it('restarts a watch that failed with another error (backoff), and catches up', async () => {
    await cache.start();
    await until(() => kube.openWatches(ROUTES) === 1, 'route watch');
    kube.stallWatches();
    kube.put(ROUTES, route('a', 'late'));
    kube.fail({ match: (r) => r.verb === 'watch' && r.resource === ROUTES, status: 500 });
    kube.dropWatches();
    await until(() => routeNames().join() === 'a/late', 'the restarted informer', 8000);
    expect(watchesOf(ROUTES).filter((r) => r.status === 500)).toHaveLength(1);
  });

  it('watches exactly the Secrets routes reference, by field selector, and follows the references', async () => {
    kube.put(SECRETS, secret('a', 'openai', 'sk-a'));
    kube.put(SECRETS, secret('a', 'unrelated'));
    kube.put(ROUTES, route('a', 'r1', { secrets: ['openai', 'missing'] }));
    await cache.start();
    await until(() => cache.secretKnown('a', 'openai') && cache.secretKnown('a', 'missing'), 'secret lists');
    expect(Buffer.from(cache.secret('a', 'openai')!.data!['api-key']!, 'base64').toString()).toBe('sk-a');
    expect(cache.secret('a', 'missing')).toBeUndefined();
    expect(cache.secretKnown('a', 'unrelated')).toBe(false);
    const secretLists = kube.calls({ verb: 'list', resource: SECRETS });
    expect(secretLists.map((r) => `${r.namespace} ${r.query.get('fieldSelector')}`).sort()).toEqual(['a metadata.name=missing', 'a metadata.name=openai']);

    // The missing Secret appears: its watch brings it and says namespace a changed.
    await until(() => kube.openWatches(SECRETS) === 2, 'secret watches');
    await new Promise((r) => setTimeout(r, 30)); // the watches' start() settled
    changed.length = 0;
    kube.put(SECRETS, secret('a', 'missing', 'sk-m'));
    await until(() => cache.secret('a', 'missing') !== undefined, 'the new Secret');
    expect(new Set(changed)).toEqual(new Set(['a']));
    // A change to an unreferenced Secret reaches no watch.
    changed.length = 0;
    kube.put(SECRETS, secret('a', 'unrelated', 'other'));
    await new Promise((r) => setTimeout(r, 30));
    expect(changed).toEqual([]);

    // The route stops referencing "missing": its watch is stopped and it leaves the cache.
    kube.put(ROUTES, route('a', 'r1', { secrets: ['openai'] }));
    await until(() => !cache.secretKnown('a', 'missing'), 'the dropped reference');
    expect(cache.secret('a', 'missing')).toBeUndefined();
    await until(() => kube.openWatches(SECRETS) === 1, 'one secret watch left');
  });
});
