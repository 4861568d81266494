import type { V1Secret } from '@kubernetes/client-node';
import {
  BudgetSchema,
  ModelRouteSchema,
  ProviderQuotaSchema,
  RateLimitSchema,
  buildSnapshot,
  targetSecretRefs,
  formatIssues,
  selectorMatches,
  type Budget,
  type ModelRoute,
  type ProviderQuota,
  type RateLimit,
  type Secret,
  type Snapshot,
} from '../crds/src/index.js';
import type { ClusterCache, RawObject } from './cache.js';
import { catalogPrice } from './catalog-prices.js';

/** A cached ModelRoute checked against the schema (the CRD validates too; this also catches what CEL cannot). */
export type CheckedRoute = { raw: RawObject; route: ModelRoute; error?: undefined } | { raw: RawObject; route?: undefined; error: string };

export function checkRoute(raw: RawObject): CheckedRoute {
  const parsed = ModelRouteSchema.safeParse(raw);
  if (parsed.success) {
    parsed.data.metadata.namespace ??= raw.metadata?.namespace ?? 'default';
    return { raw, route: parsed.data };
  }
  return { raw, error: formatIssues(parsed.error) };
}

export function checkBudget(raw: RawObject): Budget | undefined {
  const parsed = BudgetSchema.safeParse(raw);
  return parsed.success ? parsed.data : undefined;
}

function toSecret(s: V1Secret): Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: s.metadata?.name ?? '', namespace: s.metadata?.namespace },
    data: s.data ?? {},
  };
}

/** The secrets the given routes reference, as far as the cache knows them. */
function referencedSecrets(cache: ClusterCache, namespace: string, routes: ModelRoute[]): Secret[] {
  const names = new Set<string>();
  for (const r of routes) for (const t of r.spec.targets) for (const { ref } of targetSecretRefs(t)) names.add(ref.name);
  const out: Secret[] = [];
  for (const name of names) {
    const s = cache.secret(namespace, name);
    if (s) out.push(toSecret(s));
  }
  return out;
}

/** Valid routes of a namespace, in a stable order (by name). */
export function namespaceRoutes(cache: ClusterCache, namespace: string): CheckedRoute[] {
  return cache.routes
    .list(namespace)
    .map(checkRoute)
    .sort((a, b) => (a.raw.metadata?.name ?? '').localeCompare(b.raw.metadata?.name ?? ''));
}

/** The valid objects of one kind in a namespace, by name. */
function valid<T extends { metadata: { name: string } }>(raws: readonly RawObject[], schema: { safeParse(v: unknown): { success: true; data: T } | { success: false } }): T[] {
  return raws
    .flatMap((raw) => {
      const parsed = schema.safeParse(raw);
      return parsed.success ? [parsed.data] : [];
    })
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
}

/**
 * The snapshot for one pod: the valid routes of its namespace whose podSelector selects its
 * labels, the budgets whose scope selects it, the namespace's ProviderQuotas, the RateLimits
 * whose scope.podSelector and scope.serviceAccounts select it, and exactly the secrets the
 * routes reference. Nothing from another namespace can enter it. Targets without `pricing`
 * carry their catalog prices when the catalog has time-independent ones.
 */
export function snapshotForPod(cache: ClusterCache, namespace: string, labels: Record<string, string>, serviceAccount?: string): Snapshot {
  const routes = namespaceRoutes(cache, namespace)
    .flatMap((c) => (c.route ? [c.route] : []))
    .filter((r) => selectorMatches(r.spec.podSelector, labels));
  const budgets = cache.budgets
    .list(namespace)
    .map(checkBudget)
    .filter((b): b is Budget => b !== undefined && selectorMatches(b.spec.scope.podSelector, labels))
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  const providerQuotas = valid<ProviderQuota>(cache.providerQuotas.list(namespace), ProviderQuotaSchema);
  const rateLimits = valid<RateLimit>(cache.rateLimits.list(namespace), RateLimitSchema).filter(
    (l) => selectorMatches(l.spec.scope.podSelector, labels) && (!l.spec.scope.serviceAccounts || (serviceAccount !== undefined && l.spec.scope.serviceAccounts.includes(serviceAccount))),
  );
  return buildSnapshot({ routes, budgets, providerQuotas, rateLimits, secrets: referencedSecrets(cache, namespace, routes), catalogPrice });
}

/** Why a route's secret references do not resolve (empty when all do). */
export function unresolvedRefs(cache: ClusterCache, route: ModelRoute): string[] {
  const namespace = route.metadata.namespace ?? 'default';
  const snapshot = buildSnapshot({ routes: [route], budgets: [], secrets: referencedSecrets(cache, namespace, [route]) });
  return Object.entries(snapshot.routes[0]?.unresolved ?? {}).map(([target, why]) => `target ${target}: ${why}`);
}
