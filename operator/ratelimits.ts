import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import {
  ModelRouteSchema,
  ProviderQuotaSchema,
  QUOTA_FIELDS,
  RATELIMIT_SYNC_PATH,
  RATE_LIMIT_FIELDS,
  RateLimitSchema,
  RateLimitSyncRequestSchema,
  formatIssues,
  providerBackoffKey,
  providerBackoffNamespace,
  readableBackoffs,
  selectorMatches,
  targetName,
  type RateLimitSyncResponse,
} from '../crds/src/index.js';
import type { PodIdentity, TokenAuthenticator } from './auth.js';
import type { ClusterCache } from './cache.js';
import { answeringErrors } from './internal-error.js';
import { identifySidecar } from './sidecar-caller.js';
import { RateLimitLedger, type RateLimitDef } from './ratelimit-ledger.js';
import { ProviderBackoffBook } from './provider-backoffs.js';
import { namespaceRoutes } from './snapshots.js';

const MINUTE = 60_000;
const DAY = 86_400_000;
const RATE_LIMIT_WINDOW: Record<string, number> = { requestsPerMinute: MINUTE, tokensPerMinute: MINUTE, requestsPerDay: DAY, tokensPerDay: DAY };

/**
 * The limit `key` / `field` as it applies to this pod, or undefined when it does not exist, is
 * invalid, or does not apply to the pod: another namespace, a route whose podSelector does not
 * select it, a RateLimit whose scope.podSelector or scope.serviceAccounts leave it out.
 */
export function limitFor(cache: ClusterCache, id: PodIdentity, key: string, field: string): RateLimitDef | undefined {
  const [kind, namespace, name, ...rest] = key.split('/');
  if (namespace !== id.namespace || !name) return undefined;
  if (kind === 'pq' && rest.length === 0) {
    const raw = cache.providerQuotas.get(name, namespace);
    const q = raw ? ProviderQuotaSchema.safeParse(raw) : undefined;
    if (!q?.success || !(QUOTA_FIELDS as readonly string[]).includes(field)) return undefined;
    const limit = q.data.spec.limits[field as (typeof QUOTA_FIELDS)[number]];
    return limit === undefined ? undefined : { limit, windowMs: MINUTE };
  }
  if (kind === 'tq' && rest.length === 1) {
    const raw = cache.routes.get(name, namespace);
    const r = raw ? ModelRouteSchema.safeParse(raw) : undefined;
    if (!r?.success || !selectorMatches(r.data.spec.podSelector, id.labels) || !(QUOTA_FIELDS as readonly string[]).includes(field)) return undefined;
    const t = r.data.spec.targets.find((t, i) => targetName(t, i) === rest[0]);
    const limit = t?.quota?.[field as (typeof QUOTA_FIELDS)[number]];
    return limit === undefined ? undefined : { limit, windowMs: MINUTE };
  }
  if (kind === 'rl' && rest.length === 0) {
    const raw = cache.rateLimits.get(name, namespace);
    const l = raw ? RateLimitSchema.safeParse(raw) : undefined;
    if (!l?.success || !(RATE_LIMIT_FIELDS as readonly string[]).includes(field)) return undefined;
    const scope = l.data.spec.scope;
    if (!selectorMatches(scope.podSelector, id.labels)) return undefined;
    if (scope.serviceAccounts && !scope.serviceAccounts.includes(id.serviceAccount)) return undefined;
    const limit = l.data.spec.limits[field as (typeof RATE_LIMIT_FIELDS)[number]];
    return limit === undefined ? undefined : { limit, windowMs: RATE_LIMIT_WINDOW[field]! };
  }
  return undefined;
}

/**
 * The provider backoff keys a pod may report: those of the targets of its namespace's valid
 * ModelRoutes that select it (the credentials it calls with), as the sidecar computes them.
 */
export function backoffKeysFor(cache: ClusterCache, id: PodIdentity): Set<string> {
  const keys = new Set<string>();
  for (const { route } of namespaceRoutes(cache, id.namespace)) {
    if (!route || !selectorMatches(route.spec.podSelector, id.labels)) continue;
    route.spec.targets.forEach((t, i) => keys.add(providerBackoffKey(id.namespace, route.metadata.name, t, i)));
  }
  return keys;
}

/**
 * Fleet-wide rate limits on the operator: answers sidecars' share syncs from the ledger
 * (docs/architecture.md, section 5a). Only the leader serves; its book is in memory, and a new
 * leader is quiet for one expiry plus the grace (`lead`). The same syncs share providers'
 * backoffs within a namespace (provider-backoffs.ts).
 */
export class RateLimitService {
  readonly ledger: RateLimitLedger;
  readonly backoffs: ProviderBackoffBook;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly o: {
      cache: ClusterCache;
      authenticator: TokenAuthenticator;
      isLeader: () => boolean;
      now: () => number;
      logger: Logger;
      ttlMs?: number;
      graceMs?: number;
    },
  ) {
    this.ledger = new RateLimitLedger({ now: o.now, ttlMs: o.ttlMs, graceMs: o.graceMs });
    this.backoffs = new ProviderBackoffBook(o.now);
  }

  register(app: FastifyInstance): void {
    app.post(RATELIMIT_SYNC_PATH, (req, reply) => answeringErrors(reply, this.o.logger, () => this.sync(req, reply)));
  }

  /** On taking leadership (and at start: shares an earlier process granted may still be in use). */
  lead(): void {
    this.ledger.lead();
  }

  /** Reclaims silent holders' shares and drops ended backoffs every second. */
  start(tickMs = 1_000): void {
    this.timer = setInterval(() => {
      if (!this.o.isLeader()) return;
      this.ledger.expire();
      this.backoffs.expire();
    }, tickMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async sync(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const id = await identifySidecar(req, reply, this.o);
    if (!id) return;
    const parsed = RateLimitSyncRequestSchema.safeParse(req.body);
    if (!parsed.success) {
      await reply.code(400).send({ error: { message: formatIssues(parsed.error), code: 'invalid_sync' } });
      return;
    }
    const { boot, seq, final } = parsed.data;
    const holder = { pod: id.podName, uid: id.podUid, boot, namespace: id.namespace };
    const out: RateLimitSyncResponse = { entries: [] };
    for (const e of parsed.data.entries) {
      // A limit that does not apply to this pod gets nothing (a share it still holds only goes down).
      const def = limitFor(this.o.cache, id, e.key, e.field);
      const a = this.ledger.answer(def, holder, e.key, e.field, { seq, used: e.used, demand: e.demand, keep: e.keep, final });
      out.entries.push({ key: e.key, field: e.field, share: a.share, target: a.target, credit: a.credit, expires: new Date(a.expires).toISOString() });
    }
    // Provider backoffs: kept only for credentials the pod calls with, handed only to its namespace.
    const reported = readableBackoffs(parsed.data.backoffs).filter((b) => providerBackoffNamespace(b.key) === id.namespace);
    if (reported.length > 0) {
      const keys = backoffKeysFor(this.o.cache, id);
      for (const b of reported) if (keys.has(b.key)) this.backoffs.report(id.namespace, b);
    }
    const backoffs = this.backoffs.forNamespace(id.namespace);
    if (backoffs.length > 0) out.backoffs = backoffs;
    await reply.send(out);
  }
}
