import { QUOTA_FIELDS, type QuotaField, type QuotaLimits } from '../../crds/src/quota.js';
import { RATE_LIMIT_FIELDS, type RateLimitField } from '../../crds/src/ratelimit.js';
import type { SnapshotProviderQuota, SnapshotRateLimit, SnapshotRoute } from '../../crds/src/snapshot.js';
import type { RuntimeConfig, RuntimeRoute, RuntimeTarget } from '../router/runtime.js';
import { TokenBucket } from './bucket.js';
import type { ProviderBackoffs } from './provider-backoffs.js';

/**
 * The rate limits of one config, compiled to token buckets: provider quotas per target
 * (spec.targets[].quota and every ProviderQuota whose credential the target uses) and consumer
 * limits per route and model name (RateLimit). Buckets survive a config reload of the same
 * limit (what was used stays used). Requests reserve before they are sent and settle with what
 * they really used.
 */

export type Resource = 'requests' | 'tokens' | 'input_tokens' | 'output_tokens';
export type Window = 'minute' | 'day';
export type LimitKind = 'provider' | 'consumer';

export const WINDOW_MS: Record<Window, number> = { minute: 60_000, day: 86_400_000 };

/**
 * Output tokens reserved for a request that names no max_tokens / max_completion_tokens (as
 * budgets' DEFAULT_BUDGET_MAX_TOKENS); settlement corrects it to what the answer used.
 */
export const DEFAULT_RATE_LIMIT_MAX_TOKENS = 4096;

/** One bucket: which object it belongs to and what it counts. */
export interface Limit {
  kind: LimitKind;
  /** "namespace/name" of the RateLimit or ProviderQuota; "namespace/route/target" of a target's own quota. */
  name: string;
  resource: Resource;
  window: Window;
  /** The configured limit per window (the bucket's capacity, unless this process holds a fleet share of it). */
  ceiling: number;
  bucket: TokenBucket;
  /** Operator mode: the bucket is this process's share of a fleet-wide limit. */
  fleet?: FleetShare;
}

/** A process's share of a fleet-wide limit (ratelimit/remote-shares.ts RemoteShares). */
export interface FleetShare {
  /** Does the process hold a valid share (false: refuse, fail closed)? */
  usable(): boolean;
  /** A request took this much. */
  used(amount: number): void;
  /** A request did not fit; the operator hears of it. */
  short(amount: number): void;
}

/** The shares of a fleet (RemoteShares): tracks the limits of a config and hands out their FleetShare. */
export interface Fleet {
  track(limits: ReadonlyArray<{ limit: Limit }>): void;
  share(limit: Limit): FleetShare;
}

/**
 * A request under a fleet limit whose share is smaller than the request, or none: the next
 * rebalance (about a second) may bring enough.
 */
export const FLEET_WAIT_MS = 1_000;
/** Retry-After of a request refused because a fleet share is unavailable. */
export const FLEET_UNAVAILABLE_WAIT_MS = 5_000;

/** What one request may use: its estimated input and its output cap. */
export interface Demand {
  inputTokens: number;
  outputTokens: number;
}

/** A request that does not fit: the limit that is short, what the request needed of it, and when it would fit. */
export interface Shortage {
  limit: Limit;
  requested: number;
  remaining: number;
  /** Milliseconds until it would fit (Infinity: the request alone exceeds the limit). */
  waitMs: number;
  /** A fleet limit this process holds no valid share of (the operator could not be reached): 503, not 429. */
  unavailable?: boolean;
}

const QUOTA_RESOURCE: Record<QuotaField, Resource> = {
  requestsPerMinute: 'requests',
  inputTokensPerMinute: 'input_tokens',
  outputTokensPerMinute: 'output_tokens',
  tokensPerMinute: 'tokens',
};

const RATE_LIMIT_RESOURCE: Record<RateLimitField, [Resource, Window]> = {
  requestsPerMinute: ['requests', 'minute'],
  tokensPerMinute: ['tokens', 'minute'],
  requestsPerDay: ['requests', 'day'],
  tokensPerDay: ['tokens', 'day'],
};

/** How much of a resource a request takes. */
export function amountOf(resource: Resource, d: Demand): number {
  switch (resource) {
    case 'requests':
      return 1;
    case 'tokens':
      return d.inputTokens + d.outputTokens;
    case 'input_tokens':
      return d.inputTokens;
    case 'output_tokens':
      return d.outputTokens;
  }
}

/**
 * Takes the demand from every limit, or from none: returns the shortage that keeps the request
 * waiting longest when one of them has no room.
 */
export function takeAll(limits: readonly Limit[], d: Demand, now: number): Shortage | undefined {
  const worst = shortageOf(limits, d, now);
  if (worst) return worst;
  for (const limit of limits) {
    const amount = amountOf(limit.resource, d);
    limit.bucket.take(amount, now);
    limit.fleet?.used(amount);
  }
  return undefined;
}

/** The shortage that keeps the demand waiting longest, if any limit has no room (a fleet limit hears of it); takes nothing. */
export function shortageOf(limits: readonly Limit[], d: Demand, now: number): Shortage | undefined {
  let worst: Shortage | undefined;
  for (const limit of limits) {
    const requested = amountOf(limit.resource, d);
    // Fail closed: without a valid share of a fleet limit nothing is known to fit.
    if (limit.fleet && !limit.fleet.usable()) return { limit, requested, remaining: 0, waitMs: FLEET_UNAVAILABLE_WAIT_MS, unavailable: true };
    let waitMs = limit.bucket.waitMs(requested, now);
    if (waitMs > 0 && limit.fleet) {
      limit.fleet.short(requested);
      // More than this process's share but within the limit: a rebalance may bring it.
      if (!Number.isFinite(waitMs) && requested <= limit.ceiling) waitMs = FLEET_WAIT_MS;
    }
    if (waitMs > 0 && (worst === undefined || waitMs > worst.waitMs)) worst = { limit, requested, remaining: limit.bucket.remaining(now), waitMs };
  }
  return worst;
}

/** Gives back `reserved` and takes `used` instead (what a settled request really used). */
export function settleAll(limits: readonly Limit[], reserved: Demand, used: Demand, keepRequest: boolean, now: number): void {
  for (const limit of limits) {
    const diff = (limit.resource === 'requests' ? (keepRequest ? 1 : 0) : amountOf(limit.resource, used)) - amountOf(limit.resource, reserved);
    if (diff < 0) limit.bucket.give(-diff, now);
    else if (diff > 0) limit.bucket.take(diff, now);
  }
}

export type LimitedReason = 'limited' | 'waited' | 'failed_over';

/** What held a request back, as the metrics name it: a limit, or a provider's backoff of a credential (`provider_backoff`, its key). */
export interface LimitedBy {
  kind: LimitKind | 'provider_backoff';
  name: string;
  resource: string;
}

export interface RateLimitEvents {
  /** A request was refused (limited), waited for a provider quota or backoff (waited), or skipped a target for one (failed_over). */
  onLimited?(by: LimitedBy, reason: LimitedReason): void;
}

const NONE: readonly Limit[] = [];

export class RateLimiter {
  private buckets = new Map<string, TokenBucket>();
  private byTarget = new WeakMap<RuntimeTarget, Limit[]>();
  private byRoute = new WeakMap<RuntimeRoute, Map<string, Limit[]>>();
  private quotaRoutes = new WeakSet<RuntimeRoute>();
  private every: Limit[] = [];

  constructor(
    readonly clock: () => number,
    readonly events: RateLimitEvents = {},
    /** Operator mode: every limit is fleet-wide, and each bucket holds this process's share. */
    readonly fleet?: Fleet,
    /** Providers' own backoffs per credential (provider-backoffs.ts); absent: providers' rate-limit headers are not read. */
    readonly backoffs?: ProviderBackoffs,
  ) {}

  /** Whether any limit is configured (the request path skips everything when not). */
  get active(): boolean {
    return this.every.length > 0;
  }

  /** Every limit of the current config (for the metrics). */
  all(): readonly Limit[] {
    return this.every;
  }

  /** Compiles the limits of a config; `undefined` clears them. */
  apply(config: RuntimeConfig | undefined): void {
    const now = this.clock();
    const live = new Map<string, TokenBucket>();
    const every: Limit[] = [];
    const fleet = this.fleet;
    const made = new Map<string, Limit>();
    const make = (kind: LimitKind, name: string, resource: Resource, window: Window, capacity: number): Limit => {
      const key = `${kind}|${name}|${resource}|${window}`;
      const same = made.get(key);
      if (same) return same;
      let bucket = live.get(key) ?? this.buckets.get(key);
      // A fleet bucket's capacity is this process's share: the operator's business, not the config's.
      if (bucket && !fleet) bucket.resize(capacity, now);
      else if (!bucket) bucket = new TokenBucket(fleet ? 0 : capacity, WINDOW_MS[window], now);
      live.set(key, bucket);
      const limit: Limit = { kind, name, resource, window, ceiling: capacity, bucket };
      if (fleet) limit.fleet = fleet.share(limit);
      made.set(key, limit);
      every.push(limit);
      return limit;
    };
    this.byTarget = new WeakMap();
    this.byRoute = new WeakMap();
    this.quotaRoutes = new WeakSet();
    const snapshot = config?.snapshot;
    const quotas = snapshot?.providerQuotas ?? [];
    const rateLimits = snapshot?.rateLimits ?? [];
    const specs = new Map<string, SnapshotRoute>((snapshot?.routes ?? []).map((r) => [`${r.namespace}/${r.name}`, r]));
    const quotaLimits = new Map<SnapshotProviderQuota, Limit[]>(
      quotas.map((q) => [q, quotaFields(q.spec.limits).map(([resource, n]) => make('provider', `${q.namespace}/${q.name}`, resource, 'minute', n))]),
    );
    const rateLimitLimits = new Map<SnapshotRateLimit, Limit[]>(
      rateLimits.map((l) => [
        l,
        RATE_LIMIT_FIELDS.filter((f) => l.spec.limits[f] !== undefined).map((f) => {
          const [resource, window] = RATE_LIMIT_RESOURCE[f];
          return make('consumer', `${l.namespace}/${l.name}`, resource, window, l.spec.limits[f]!);
        }),
      ]),
    );
    const seen = new Set<RuntimeRoute>();
    for (const [model, route] of config?.byModel ?? []) {
      // Consumer limits: by route and by the model name the app sent.
      const consumer = rateLimits.filter((l) => l.namespace === route.namespace && rateLimitCovers(l, route.name, model)).flatMap((l) => rateLimitLimits.get(l)!);
      if (consumer.length > 0) {
        let perModel = this.byRoute.get(route);
        if (!perModel) this.byRoute.set(route, (perModel = new Map()));
        perModel.set(model, consumer);
      }
      if (seen.has(route)) continue;
      seen.add(route);
      const spec = specs.get(route.id)?.spec;
      route.targets.forEach((target, i) => {
        const t = spec?.targets[i];
        if (!t) return;
        const limits: Limit[] = t.quota ? quotaFields(t.quota).map(([resource, n]) => make('provider', `${route.id}/${target.name}`, resource, 'minute', n)) : [];
        const ref = t.credentials?.secretRef;
        for (const q of quotas) {
          if (q.namespace !== route.namespace || !ref) continue;
          if (q.spec.credentials.secretRef.name !== ref.name || q.spec.credentials.secretRef.key !== ref.key) continue;
          if (q.spec.provider !== undefined && q.spec.provider !== t.provider) continue;
          limits.push(...quotaLimits.get(q)!);
        }
        if (limits.length === 0) return;
        this.byTarget.set(target, limits);
        this.quotaRoutes.add(route);
      });
    }
    // Limits nothing selects are still shown (and keep their state): a RateLimit may cover no route yet.
    this.buckets = live;
    this.every = every;
    this.fleet?.track(every.map((limit) => ({ limit })));
    if (this.backoffs) this.backoffs.watching = seen.size > 0;
  }

  /** The consumer limits a request to this route for this model name shares (empty: none). */
  consumer(route: RuntimeRoute, model: string): readonly Limit[] {
    return this.byRoute.get(route)?.get(model) ?? NONE;
  }

  /** The provider quotas of a target (undefined: none). */
  target(target: RuntimeTarget): readonly Limit[] | undefined {
    return this.byTarget.get(target);
  }

  /** Whether any target of the route is under a provider quota. */
  routeHasQuota(route: RuntimeRoute): boolean {
    return this.quotaRoutes.has(route);
  }
}

function quotaFields(q: QuotaLimits): Array<[Resource, number]> {
  return QUOTA_FIELDS.filter((f) => q[f] !== undefined).map((f) => [QUOTA_RESOURCE[f], q[f]!]);
}

/** RateLimit scope: routes and models; a standalone sidecar is one pod, so podSelector and serviceAccounts match. */
function rateLimitCovers(l: SnapshotRateLimit, route: string, model: string): boolean {
  const scope = l.spec.scope;
  if (scope.routes && !scope.routes.includes(route)) return false;
  if (scope.models && !scope.models.includes(model)) return false;
  return true;
}
