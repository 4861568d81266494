import type { CustomObjectsApi } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { canonicalJson } from '../crds/src/canonical-json.js';
import {
  GROUP,
  ProviderQuotaSchema,
  QUOTA_FIELDS,
  RATE_LIMIT_FIELDS,
  RateLimitSchema,
  VERSION,
  formatIssues,
  type Condition,
  type ProviderQuota,
} from '../crds/src/index.js';
import type { ClusterCache, RawObject } from './cache.js';
import { setCondition } from './conditions.js';
import { poolLevel, type RateLimitLedger } from './ratelimit-ledger.js';
import { checkRoute } from './snapshots.js';

/** Least time between two status writes of one object. */
export const RATE_STATUS_INTERVAL_MS = 5_000;
/** Use over a window is kept in this many bins (1 s for a minute, 24 min for a day). */
const BINS_PER_WINDOW = 60;
const MINUTE = 60_000;
const DAY = 86_400_000;

type Plural = 'providerquotas' | 'ratelimits';

const FIELD_USAGE: Record<string, { resource: LimitUsage['resource']; window: LimitUsage['window']; windowMs: number }> = {
  requestsPerMinute: { resource: 'requests', window: 'minute', windowMs: MINUTE },
  inputTokensPerMinute: { resource: 'input_tokens', window: 'minute', windowMs: MINUTE },
  outputTokensPerMinute: { resource: 'output_tokens', window: 'minute', windowMs: MINUTE },
  tokensPerMinute: { resource: 'tokens', window: 'minute', windowMs: MINUTE },
  requestsPerDay: { resource: 'requests', window: 'day', windowMs: DAY },
  tokensPerDay: { resource: 'tokens', window: 'day', windowMs: DAY },
};

export interface LimitUsage {
  resource: 'requests' | 'tokens' | 'input_tokens' | 'output_tokens';
  window: 'minute' | 'day';
  limit: number;
  used: number;
  remaining: number;
}

/** The fleet's use of one limit field, integrated from the rates holders report. */
interface UsageTrack {
  windowMs: number;
  /** Bin index (time / binMs) → use in that bin. */
  bins: Map<number, number>;
  /** Last sample time. */
  at: number;
}

/** How many targets of the namespace's (valid) ModelRoutes a ProviderQuota selects, as sidecars match them. */
export function quotaTargets(cache: ClusterCache, q: ProviderQuota, namespace: string): number {
  const ref = q.spec.credentials.secretRef;
  let n = 0;
  for (const raw of cache.routes.list(namespace)) {
    const checked = checkRoute(raw);
    if (checked.error !== undefined) continue;
    for (const t of checked.route.spec.targets) {
      const r = t.credentials?.secretRef;
      if (!r || r.name !== ref.name || r.key !== ref.key) continue;
      if (q.spec.provider !== undefined && q.spec.provider !== t.provider) continue;
      n++;
    }
  }
  return n;
}

export interface RateLimitStatusOptions {
  cache: ClusterCache;
  custom: CustomObjectsApi;
  ledger: RateLimitLedger;
  isLeader: () => boolean;
  now: () => number;
  logger: Logger;
  fieldManager: string;
  /** Least time between two writes of one object (default 5 s). */
  intervalMs?: number;
}

/**
 * Writes the status of ProviderQuotas and RateLimits (leader only): per configured field the
 * limit, `used` (the fleet's use over the last window: the use rates holders report in their
 * syncs, summed over holders whose share has not expired, sampled every tick and integrated over
 * the window), `remaining` (what the ledger's pool holds now: capacity no process holds as a
 * share and that has refilled), ProviderQuota `targets`, condition Ready and observedGeneration.
 * Level-triggered: every tick computes each object's status and writes it when it differs from
 * what the object has, at most once per `intervalMs` per object.
 */
export class RateLimitStatusWriter {
  private readonly usage = new Map<string, UsageTrack>();
  private readonly lastWrite = new Map<string, number>();
  private readonly writing = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly o: RateLimitStatusOptions) {}

  start(tickMs = 1_000): void {
    this.stopped = false;
    this.timer = setInterval(() => void this.tick(), tickMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  /** On a leadership change: what was sampled before is of another book. */
  lead(): void {
    this.usage.clear();
    this.lastWrite.clear();
  }

  /** Samples use and writes what changed. Errors are logged (the next tick tries again). */
  async tick(): Promise<void> {
    if (this.stopped || !this.o.isLeader()) return;
    const now = this.o.now();
    this.sample(now);
    const seen = new Set<string>();
    const writes: Array<Promise<void>> = [];
    for (const [plural, list] of [
      ['providerquotas', this.o.cache.providerQuotas.list()],
      ['ratelimits', this.o.cache.rateLimits.list()],
    ] as const) {
      for (const raw of list) {
        const id = `${plural}/${raw.metadata?.namespace ?? 'default'}/${raw.metadata?.name ?? ''}`;
        seen.add(id);
        writes.push(
          this.reconcile(plural, raw, id, now).catch((err: unknown) => this.o.logger.warn({ object: id, error: (err as Error).message }, 'rate-limit status write failed')),
        );
      }
    }
    for (const id of this.lastWrite.keys()) if (!seen.has(id)) this.lastWrite.delete(id);
    await Promise.all(writes);
  }

  /** Adds the rates holders report now, for the time since the last sample, to their bins. */
  private sample(now: number): void {
    const rates = new Map<string, { rate: number; windowMs: number }>();
    for (const [id, e] of this.o.ledger.entries) {
      if (e.key.startsWith('tq/')) continue; // targets' own quotas: no object of their own
      let rate = 0;
      for (const h of e.holders.values()) if (now <= h.expires) rate += h.used;
      rates.set(id, { rate, windowMs: e.windowMs });
    }
    for (const [id, { windowMs }] of rates) if (!this.usage.has(id)) this.usage.set(id, { windowMs, bins: new Map(), at: now });
    for (const [id, u] of this.usage) {
      const r = rates.get(id);
      if (r && r.windowMs !== u.windowMs) {
        this.usage.set(id, { windowMs: r.windowMs, bins: new Map(), at: now });
        continue;
      }
      const binMs = u.windowMs / BINS_PER_WINDOW;
      const dt = Math.max(0, now - u.at);
      u.at = now;
      if (r && r.rate > 0 && dt > 0) {
        const bin = Math.floor(now / binMs);
        u.bins.set(bin, (u.bins.get(bin) ?? 0) + (r.rate * dt) / u.windowMs);
      }
      const oldest = Math.floor((now - u.windowMs) / binMs);
      for (const b of u.bins.keys()) if (b <= oldest) u.bins.delete(b);
      if (!r && u.bins.size === 0) this.usage.delete(id);
    }
  }

  private used(key: string, field: string): number {
    const u = this.usage.get(`${key}#${field}`);
    if (!u) return 0;
    let sum = 0;
    for (const v of u.bins.values()) sum += v;
    return Math.round(sum);
  }

  private remaining(key: string, field: string, limit: number, now: number): number {
    const e = this.o.ledger.get(key, field);
    // Nothing in the book: as the ledger would start it (a full pool, or an empty one while quiet).
    const level = e ? poolLevel(e, now) : this.o.ledger.quiet() ? 0 : limit;
    return Math.max(0, Math.min(limit, Math.floor(level)));
  }

  /** The status `raw` should have. */
  desired(plural: Plural, raw: RawObject, now: number): Record<string, unknown> {
    const old = (raw.status ?? {}) as Record<string, unknown> & { conditions?: Condition[] };
    const generation = raw.metadata?.generation;
    const namespace = raw.metadata?.namespace ?? 'default';
    const name = raw.metadata?.name ?? '';
    const kind = plural === 'providerquotas' ? 'ProviderQuota' : 'RateLimit';
    const at = new Date(now);
    const parsed = plural === 'providerquotas' ? ProviderQuotaSchema.safeParse(raw) : RateLimitSchema.safeParse(raw);
    if (!parsed.success) {
      const { limits: _l, targets: _t, ...rest } = old;
      const message = `${formatIssues(parsed.error)} (the ${kind} is not enforced)`;
      return {
        ...rest,
        ...(generation !== undefined ? { observedGeneration: generation } : {}),
        conditions: setCondition(old.conditions, { type: 'Ready', status: 'False', reason: 'Invalid', message, observedGeneration: generation }, at),
      };
    }
    const key = `${plural === 'providerquotas' ? 'pq' : 'rl'}/${namespace}/${name}`;
    const specLimits = parsed.data.spec.limits as Record<string, number | undefined>;
    const fields: readonly string[] = plural === 'providerquotas' ? QUOTA_FIELDS : RATE_LIMIT_FIELDS;
    const limits: LimitUsage[] = [];
    for (const f of fields) {
      const limit = specLimits[f];
      if (limit === undefined) continue;
      const u = FIELD_USAGE[f]!;
      limits.push({ resource: u.resource, window: u.window, limit, used: this.used(key, f), remaining: this.remaining(key, f, limit, now) });
    }
    const targets = plural === 'providerquotas' ? quotaTargets(this.o.cache, parsed.data as ProviderQuota, namespace) : undefined;
    const message =
      targets === undefined
        ? 'the limits are enforced across the fleet'
        : targets === 0
          ? "no target of the namespace's ModelRoutes uses this key"
          : `the limits are enforced across the fleet on ${targets} target${targets === 1 ? '' : 's'}`;
    return {
      ...old,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      conditions: setCondition(old.conditions, { type: 'Ready', status: 'True', reason: 'Enforcing', message, observedGeneration: generation }, at),
      limits,
      ...(targets !== undefined ? { targets } : {}),
    };
  }

  private async reconcile(plural: Plural, raw: RawObject, id: string, now: number): Promise<void> {
    if (this.writing.has(id)) return;
    if (canonicalJson(this.desired(plural, raw, now)) === canonicalJson(raw.status ?? {})) return;
    const last = this.lastWrite.get(id);
    if (last !== undefined && now - last < (this.o.intervalMs ?? RATE_STATUS_INTERVAL_MS)) return;
    this.lastWrite.set(id, now);
    this.writing.add(id);
    try {
      await this.write(plural, raw);
    } finally {
      this.writing.delete(id);
    }
  }

  /** Replaces the status through the status subresource; a 409 re-reads the object and tries again. */
  private async write(plural: Plural, raw: RawObject): Promise<void> {
    const namespace = raw.metadata!.namespace!;
    const name = raw.metadata!.name!;
    let current = raw;
    for (let attempt = 0; ; attempt++) {
      if (this.stopped || !this.o.isLeader()) return;
      const status = this.desired(plural, current, this.o.now());
      if (attempt > 0 && canonicalJson(status) === canonicalJson(current.status ?? {})) return;
      try {
        await this.o.custom.replaceNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace, plural, name, body: { ...current, status }, fieldManager: this.o.fieldManager });
        return;
      } catch (err) {
        if ((err as { code?: number }).code !== 409 || attempt >= 5) throw err;
      }
      if (this.stopped || !this.o.isLeader()) return;
      current = (await this.o.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural, name })) as RawObject;
    }
  }
}
