import type { V1Secret } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import type { ClusterCache, RawObject } from '../../operator/cache.js';
import { checkBudget, checkRoute, namespaceRoutes, snapshotForPod, unresolvedRefs } from '../../operator/snapshots.js';
import { budget, route } from '../support/operator-fixtures.js';

/** A cache of the given objects; records which secrets were looked up. */
function cacheOf(o: { routes?: RawObject[]; budgets?: RawObject[]; secrets?: V1Secret[]; providerQuotas?: RawObject[]; rateLimits?: RawObject[] }) {
  const looked: string[] = [];
  const inNs = (list: RawObject[] | undefined, ns?: string) => (list ?? []).filter((x) => ns === undefined || x.metadata?.namespace === ns);
  const cache = {
    routes: { list: (ns?: string) => inNs(o.routes, ns) },
    budgets: { list: (ns?: string) => inNs(o.budgets, ns) },
    providerQuotas: { list: (ns?: string) => inNs(o.providerQuotas, ns) },
    rateLimits: { list: (ns?: string) => inNs(o.rateLimits, ns) },
    secret: (namespace: string, name: string) => {
      looked.push(`${namespace}/${name}`);
      return o.secrets?.find((s) => s.metadata?.namespace === namespace && s.metadata?.name === name);
    },
  } as unknown as ClusterCache;
  return { cache, looked };
}

const sec = (namespace: string, name: string, data?: Record<string, string>): V1Secret => ({
  metadata: { name, namespace },
  ...(data ? { data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) } : {}),
});
const invalid = (namespace: string, name: string): RawObject => {
  const r = route(namespace, name) as RawObject;
  (r.spec as { targets: Array<Record<string, unknown>> }).targets[0]!.provider = 'nope';
  return r;
};
describe('checkRoute and checkBudget', () => {
  it('a valid route is parsed; a route without a namespace is of "default"', () => {
    const r = route('app', 'chat') as RawObject;
    const checked = checkRoute(r);
    expect(checked.error).toBeUndefined();
    expect(checked.raw).toBe(r);
    expect(checked.route!.metadata).toMatchObject({ name: 'chat', namespace: 'app' });
    const bare = route('app', 'chat') as RawObject;
    delete bare.metadata!.namespace;
    expect(checkRoute(bare).route!.metadata.namespace).toBe('default');
  });

  it('an invalid route carries the schema\'s message, and no route', () => {
    const checked = checkRoute(invalid('app', 'chat'));
    expect(checked.route).toBeUndefined();
    expect(checked.error).toMatch(/^spec\.targets\[0\]\.provider: Invalid option/);
  });

  it('checkBudget: the parsed budget, or undefined when invalid', () => {
    expect(checkBudget(budget('app', 'daily') as RawObject)!.spec).toMatchObject({ period: 'daily', limit: '10.00' });
    expect(checkBudget(budget('app', 'bad', { period: 'hourly' }) as RawObject)).toBeUndefined();
  });
});

describe('namespaceRoutes', () => {
  it('the namespace\'s routes, valid or not, sorted by name', () => {
    const { cache } = cacheOf({ routes: [route('app', 'zeta'), invalid('app', 'beta'), route('other', 'alpha'), route('app', 'alpha')] as RawObject[] });
    const routes = namespaceRoutes(cache, 'app');
    expect(routes.map((c) => [c.raw.metadata!.name, c.error === undefined])).toEqual([
      ['alpha', true],
      ['beta', false],
      ['zeta', true],
    ]);
  });
});

describe('snapshotForPod', () => {
  it('valid routes selecting the pod, by name; budgets covering it, by name; only their secrets, looked up in the namespace', () => {
    const { cache, looked } = cacheOf({
      routes: [route('app', 'zeta', { secrets: ['z'] }), route('app', 'alpha', { secrets: ['a'] }), invalid('app', 'bad'), route('app', 'gold', { secrets: ['g'], podSelector: { tier: 'gold' } }), route('other', 'theirs', { secrets: ['a'] })] as RawObject[],
      budgets: [
        budget('app', 'weekly', { period: 'weekly' }),
        budget('app', 'daily'),
        budget('app', 'gold-only', { scope: { podSelector: { matchLabels: { tier: 'gold' } } } }),
        budget('app', 'broken', { period: 'hourly' }),
        budget('other', 'theirs'),
      ] as RawObject[],
      secrets: [sec('app', 'a', { 'api-key': 'sk-a' }), sec('app', 'z', { 'api-key': 'sk-z' }), sec('app', 'unused', { 'api-key': 'sk-unused' }), sec('other', 'a', { 'api-key': 'sk-other' })],
    });
    const s = snapshotForPod(cache, 'app', { tier: 'silver' });
    expect(s.routes.map((r) => [r.namespace, r.name, r.credentials])).toEqual([
      ['app', 'alpha', { a: 'sk-a' }],
      ['app', 'zeta', { z: 'sk-z' }],
    ]);
    expect(s.budgets.map((b) => `${b.namespace}/${b.name}`)).toEqual(['app/daily', 'app/weekly']);
    expect(looked.sort()).toEqual(['app/a', 'app/z']);
    expect(JSON.stringify(s)).not.toContain('sk-unused');
    expect(JSON.stringify(s)).not.toContain('sk-other');

    const gold = snapshotForPod(cache, 'app', { tier: 'gold' });
    expect(gold.routes.map((r) => r.name)).toEqual(['alpha', 'gold', 'zeta']);
    expect(gold.routes[1]!.unresolved).toEqual({ g: 'Secret app/g not found' });
    expect(gold.budgets.map((b) => b.name)).toEqual(['daily', 'gold-only', 'weekly']);
  });

  it('ProviderQuotas of the namespace, RateLimits whose podSelector and serviceAccounts select the pod; none: the fields are absent', () => {
    const rl = (ns: string, name: string, scope: Record<string, unknown> = {}) =>
      ({ apiVersion: 'paygo.dev/v1alpha1', kind: 'RateLimit', metadata: { name, namespace: ns }, spec: { scope, limits: { requestsPerMinute: 10 } } }) as RawObject;
    const pq = (ns: string, name: string, limits: Record<string, unknown> = { tokensPerMinute: 1000 }) =>
      ({ apiVersion: 'paygo.dev/v1alpha1', kind: 'ProviderQuota', metadata: { name, namespace: ns }, spec: { credentials: { secretRef: { name: 'openai', key: 'api-key' } }, limits } }) as RawObject;
    const { cache } = cacheOf({
      routes: [route('app', 'chat') as RawObject],
      providerQuotas: [pq('app', 'key-b'), pq('app', 'key-a'), pq('app', 'empty', {}), pq('other', 'key-c')],
      rateLimits: [rl('app', 'all'), rl('app', 'web', { podSelector: { matchLabels: { tier: 'web' } } }), rl('app', 'sa', { serviceAccounts: ['chat'] }), rl('other', 'all')],
    });
    const s = snapshotForPod(cache, 'app', { tier: 'web' }, 'chat');
    expect(s.providerQuotas!.map((q) => q.name)).toEqual(['key-a', 'key-b']);
    expect(s.rateLimits!.map((l) => `${l.namespace}/${l.name}`)).toEqual(['app/all', 'app/sa', 'app/web']);
    expect(snapshotForPod(cache, 'app', { tier: 'batch' }, 'default').rateLimits!.map((l) => l.name)).toEqual(['all']);
    expect(snapshotForPod(cache, 'app', {}).rateLimits!.map((l) => l.name)).toEqual(['all']);
    const none = snapshotForPod(cacheOf({ routes: [route('app', 'chat') as RawObject] }).cache, 'app', {});
    expect('providerQuotas' in none || 'rateLimits' in none).toBe(false);
  });

  it('a secret without data resolves nothing; targets without pricing carry catalog prices', () => {
    const { cache } = cacheOf({ routes: [route('app', 'chat', { secrets: ['empty'] })] as RawObject[], secrets: [sec('app', 'empty')] });
    const s = snapshotForPod(cache, 'app', {});
    expect(s.routes[0]!.unresolved).toEqual({ empty: 'Secret app/empty has no key "api-key"' });
    expect(s.routes[0]!.catalogPrices).toHaveProperty('empty');
    expect(s.routes[0]!.catalogPrices!.empty).not.toBeNull();
  });

  it('the same objects give the same version; a changed secret another', () => {
    const routes = [route('app', 'chat')] as RawObject[];
    const v1 = snapshotForPod(cacheOf({ routes, secrets: [sec('app', 'openai', { 'api-key': 'one' })] }).cache, 'app', {}).version;
    expect(snapshotForPod(cacheOf({ routes, secrets: [sec('app', 'openai', { 'api-key': 'one' })] }).cache, 'app', {}).version).toBe(v1);
    expect(snapshotForPod(cacheOf({ routes, secrets: [sec('app', 'openai', { 'api-key': 'two' })] }).cache, 'app', {}).version).not.toBe(v1);
  });
});

describe('unresolvedRefs', () => {
  it('one line per unresolved target, in the route\'s namespace ("default" without one)', () => {
    const { cache, looked } = cacheOf({ secrets: [sec('app', 'a', { 'api-key': 'k' }), sec('app', 'nokey', { other: 'k' })] });
    const r = checkRoute(route('app', 'chat', { secrets: ['a', 'nokey', 'gone'] }) as RawObject).route!;
    expect(unresolvedRefs(cache, r)).toEqual(['target nokey: Secret app/nokey has no key "api-key"', 'target gone: Secret app/gone not found']);
    const bare = route('app', 'chat', { secrets: ['a'] }) as RawObject;
    const parsed = checkRoute(bare).route!;
    delete parsed.metadata.namespace;
    looked.length = 0;
    expect(unresolvedRefs(cache, parsed)).toEqual(['target a: Secret default/a not found']);
    expect(looked).toEqual(['default/a']);
    expect(unresolvedRefs(cache, checkRoute(route('app', 'ok', { secrets: ['a'] }) as RawObject).route!)).toEqual([]);
  });
});
