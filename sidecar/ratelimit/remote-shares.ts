import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { SerialRun } from '../serial-run.js';
import { RATELIMIT_SYNC_PATH, RateLimitSyncResponseSchema, readableBackoffs, type RateLimitSyncRequest } from '../../crds/src/protocol.js';
import type { TokenBucket } from './bucket.js';
import type { Fleet, Limit } from './limits.js';
import type { ProviderBackoffs } from './provider-backoffs.js';

/**
 * Fleet-wide rate limits, sidecar side (docs/architecture.md, section 5a): keeps this process's
 * shares in sync with the operator. Each limit's local bucket has capacity = the share the
 * operator granted this process and refills share per window. Only this process lowers its
 * share (to its target, at once, before it reports: what goes back is gone from then on);
 * it raises it only from an answer. A share is used only until its expiry minus a margin (by
 * this process's clock); after that, or before the first answer, the limit is unusable and
 * requests under it are refused (fail closed), never let through unlimited.
 *
 * The same syncs carry provider backoffs (provider-backoffs.ts): the ones this process saw
 * itself go to the operator (a new one starts a sync at once, as a refusal does), and the
 * namespace's come back and are applied like its own. With backoffs to watch the process syncs
 * even when it holds no share.
 */

export interface SharedLimit {
  key: string;
  field: string;
  windowMs: number;
  bucket: TokenBucket;
}

const FIELD: Record<string, string> = {
  'requests|minute': 'requestsPerMinute',
  'tokens|minute': 'tokensPerMinute',
  'input_tokens|minute': 'inputTokensPerMinute',
  'output_tokens|minute': 'outputTokensPerMinute',
  'requests|day': 'requestsPerDay',
  'tokens|day': 'tokensPerDay',
};

/** The sync key and field of a compiled limit: pq/ (ProviderQuota), tq/ (a target's quota), rl/ (RateLimit). */
export function shareKey(limit: Pick<Limit, 'kind' | 'name' | 'resource' | 'window'>): { key: string; field: string } {
  const prefix = limit.kind === 'consumer' ? 'rl' : limit.name.split('/').length === 3 ? 'tq' : 'pq';
  return { key: `${prefix}/${limit.name}`, field: FIELD[`${limit.resource}|${limit.window}`]! };
}

/** Posts a body to the operator (Authorization added by the caller's transport); the answer's status and JSON. */
export type OperatorPost = (path: string, body: unknown) => Promise<{ status: number; json: unknown }>;

export interface RemoteSharesOptions {
  post: OperatorPost;
  logger: Logger;
  now?: () => number;
  /** Wall clock, to read the operator's `expires` (default Date.now). */
  wallNow?: () => number;
  boot?: string;
  /** Sync period while a limit is in use or a share is not where the operator wants it. */
  syncMs?: number;
  /** Renewal period when idle (well within the operator's 15 s expiry). */
  heartbeatMs?: number;
  /** A share is not used this long before it expires. */
  marginMs?: number;
  /** A share is never trusted longer than this after its sync was sent, whatever `expires` says. */
  maxTtlMs?: number;
  /** Run the sync timer (tests drive `tick` themselves). */
  timers?: boolean;
  /** Provider backoffs to report and receive (operator mode). */
  backoffs?: ProviderBackoffs;
}

/** Use and refusals are measured over this much time and scaled to the limit's window. */
export const RATE_SAMPLE_MS = 10_000;
const MAX_RATE = 1_000_000_000_000;
/** Least time between two syncs started by refusals. */
export const SHORT_SYNC_GAP_MS = 250;

interface Share extends SharedLimit {
  id: string;
  /** The share this process believes it has (what its bucket's capacity is). */
  view: number;
  /** Where the operator wants it (Infinity until the first answer). */
  target: number;
  /** Local time after which the share must not be used. */
  validUntil: number;
  uses: Array<[number, number]>;
  refusals: Array<[number, number]>;
}

export class RemoteShares {
  readonly boot: string;
  private readonly shares = new Map<string, Share>();
  private seq: number;
  private readonly now: () => number;
  private readonly wallNow: () => number;
  private readonly syncs = new SerialRun(() => this.doSync());
  private lastSync = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly o: RemoteSharesOptions) {
    this.now = o.now ?? Date.now;
    this.wallNow = o.wallNow ?? Date.now;
    this.boot = o.boot ?? randomUUID();
    this.seq = 0;
    o.backoffs?.onOwn(() => this.soon());
    if (o.timers !== false) {
      this.timer = setInterval(() => void this.tick().catch(() => {}), o.syncMs ?? 1_000);
      this.timer.unref();
    }
  }

  private get margin(): number {
    return this.o.marginMs ?? 3_000;
  }

  /**
   * The limits of the current config (RateLimiter.apply). A new one starts with no share (its
   * bucket empty, capacity 0) and is synced at once; one that is gone is dropped (its share
   * expires at the operator). Returns that sync (failures are left to the timer's next one).
   */
  track(limits: readonly SharedLimit[]): Promise<void> {
    const now = this.now();
    const live = new Map<string, Share>();
    let added = false;
    for (const l of limits) {
      const id = `${l.key}#${l.field}`;
      const old = this.shares.get(id);
      if (old && old.bucket === l.bucket) {
        live.set(id, old);
        continue;
      }
      l.bucket.setShare(0, 0, now);
      live.set(id, { ...l, id, view: 0, target: Infinity, validUntil: 0, uses: [], refusals: [] });
      added = true;
    }
    this.shares.clear();
    for (const [k, v] of live) this.shares.set(k, v);
    return added ? this.sync().catch(() => {}) : Promise.resolve();
  }

  /** Whether this process holds a valid share of the limit (false: refuse, fail closed). */
  usable(key: string, field: string): boolean {
    const s = this.shares.get(`${key}#${field}`);
    return s !== undefined && !this.closed && this.valid(s, this.now());
  }

  private valid(s: Share, now: number): boolean {
    return now < s.validUntil - this.margin;
  }

  /** A request took `amount` of the limit (reported as recent use). */
  used(key: string, field: string, amount: number): void {
    const s = this.shares.get(`${key}#${field}`);
    if (s && amount > 0) s.uses.push([this.now(), amount]);
  }

  /**
   * A request did not fit (reported as demand): the operator hears of it at once, unless a sync
   * went out less than `SHORT_SYNC_GAP_MS` ago (a flood of refusals costs one sync per gap, the
   * timer sends the rest).
   */
  short(key: string, field: string, amount: number): void {
    const s = this.shares.get(`${key}#${field}`);
    if (!s) return;
    s.refusals.push([this.now(), amount]);
    this.soon();
  }

  /**
   * The operator should hear of something now (a refusal, a provider backoff): a sync, unless one
   * went out less than `SHORT_SYNC_GAP_MS` ago or is under way (a flood costs one sync per gap,
   * the timer sends the rest).
   */
  private soon(): void {
    if (this.closed) return;
    if (this.now() - this.lastSync >= SHORT_SYNC_GAP_MS && !this.syncs.running) void this.sync().catch(() => {});
  }

  /** Whether there is anything to sync: shares, or provider backoffs to watch. */
  private get syncing(): boolean {
    return this.shares.size > 0 || (this.o.backoffs?.watching ?? false);
  }

  /**
   * Timer work: sync while limits are in use, shares are off target, or a provider backoff is
   * unreported or live; else as a heartbeat.
   */
  async tick(): Promise<void> {
    if (this.closed || !this.syncing) return;
    const now = this.now();
    const busy =
      [...this.shares.values()].some((s) => this.rate(s.uses, s, now) > 0 || this.rate(s.refusals, s, now) > 0 || s.view !== s.target || !this.valid(s, now)) ||
      (this.o.backoffs?.busy(now) ?? false);
    if (busy || now - this.lastSync >= (this.o.heartbeatMs ?? 5_000)) await this.sync();
  }

  private rate(samples: Array<[number, number]>, s: Share, now: number): number {
    while (samples.length > 0 && samples[0]![0] <= now - RATE_SAMPLE_MS) samples.shift();
    let sum = 0;
    for (const [, a] of samples) sum += a;
    return Math.min(MAX_RATE, Math.ceil((sum * s.windowMs) / RATE_SAMPLE_MS));
  }

  /** Lowers the share (expired: to nothing; above target: to the target). What goes back is gone at once. */
  private lower(s: Share, now: number): void {
    const to = !this.valid(s, now) ? 0 : Math.min(s.view, s.target);
    if (to >= s.view && this.valid(s, now)) return;
    s.view = to;
    s.bucket.setShare(to, 0, now);
  }

  /** One sync at a time; callers during a running one share the single next one. */
  sync(): Promise<void> {
    return this.syncs.run();
  }

  private async doSync(): Promise<void> {
    if (!this.syncing) return;
    const sentAt = this.now();
    const sent = [...this.shares.values()];
    const entries: RateLimitSyncRequest['entries'] = sent.map((s) => {
      if (this.closed) {
        s.view = 0;
        s.bucket.setShare(0, 0, sentAt);
      } else this.lower(s, sentAt);
      return { key: s.key, field: s.field, used: this.rate(s.uses, s, sentAt), demand: this.closed ? 0 : this.rate(s.refusals, s, sentAt), keep: s.view };
    });
    const report = this.o.backoffs?.report(sentAt);
    this.seq += 1;
    this.lastSync = sentAt;
    const res = await this.o.post(RATELIMIT_SYNC_PATH, {
      boot: this.boot,
      seq: this.seq,
      ...(this.closed ? { final: true } : {}),
      entries,
      ...(report && report.backoffs.length > 0 ? { backoffs: report.backoffs } : {}),
    } satisfies RateLimitSyncRequest);
    if (res.status !== 200) throw new Error(`operator answered ${res.status} to a rate-limit sync`);
    const answer = RateLimitSyncResponseSchema.parse(res.json);
    if (report) this.o.backoffs!.reported(report.mark);
    if (this.closed) return;
    this.o.backoffs?.receive(readableBackoffs(answer.backoffs));
    const now = this.now();
    const wall = this.wallNow();
    for (const a of answer.entries) {
      const s = this.shares.get(`${a.key}#${a.field}`);
      // A limit dropped (or re-created) meanwhile: its answer is not for this bucket.
      if (!s || !sent.includes(s)) continue;
      const ttl = Math.min(Date.parse(a.expires) - wall, this.o.maxTtlMs ?? 15_000);
      // A share that lapsed meanwhile is gone with its fill: the operator may have reclaimed it,
      // and what it grants again comes filled only by its credit.
      if (!this.valid(s, now)) {
        s.view = 0;
        s.bucket.setShare(0, 0, now);
      }
      if (a.share > s.view) s.bucket.setShare(a.share, a.credit, now);
      else if (a.share < s.view) s.bucket.setShare(a.share, 0, now);
      s.view = a.share;
      s.target = a.target;
      s.validUntil = sentAt + Math.max(0, ttl);
      // The operator wants less here: lowered at once; the next sync reports it.
      this.lower(s, now);
    }
  }

  /** Shutting down: gives every share back (best effort; otherwise they expire at the operator). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.closed = true;
    await this.sync().catch((err: unknown) => this.o.logger.debug({ error: (err as Error).message }, 'final rate-limit sync failed; shares expire at the operator'));
  }
}

/** The RateLimiter's view of RemoteShares: each compiled limit's bucket follows this process's share. */
export function fleetOf(shares: RemoteShares): Fleet {
  return {
    track: (limits) => void shares.track(limits.map(({ limit }) => ({ ...shareKey(limit), windowMs: limit.bucket.windowMs, bucket: limit.bucket }))),
    share: (limit) => {
      const { key, field } = shareKey(limit);
      return { usable: () => shares.usable(key, field), used: (n) => shares.used(key, field, n), short: (n) => shares.short(key, field, n) };
    },
  };
}
