/**
 * The operator's book of rate-limit shares (docs/architecture.md, section 5a): per limit field
 * (`key` + `field`, e.g. `rl/team-a/chat` + `tokensPerMinute`) with limit L per window, per
 * holder (one sidecar process: pod UID + boot id) a `share` ≤ L. The holder runs a token bucket
 * of capacity = share, refilling share per window. Invariant: Σ shares ≤ L, so the fleet's
 * buckets together hold at most L and refill at most L per window.
 *
 * - Only the holder lowers its share (to `keep`, before it reports); the operator grants only
 *   from L − Σ shares, so a freed share reaches another process only after its holder stopped
 *   using it. A holder silent past its share's expiry plus a grace has stopped using it (it fails
 *   closed at expiry by its own clock) and its share is reclaimed.
 * - A share given to another process does not bring the burst the fleet already used: freed
 *   capacity goes to a *pool* that refills at its own rate (L − Σ shares per window), and a grant
 *   comes filled only by what the pool holds (`credit`; the rest fills at the new refill rate).
 *   So Σ holders' bucket levels + pool ≤ L and the total refill ≤ L per window: the fleet never
 *   uses more over any interval than one bucket of the whole limit would allow. A limit the
 *   ledger sees for the first time starts with a full pool (nothing known to be used), except
 *   while quiet (below).
 * - Targets follow demand: each holder reports its recent use and refused demand as rates per
 *   window; its target is a floor (so an idle process can start) plus the rest of L in
 *   proportion to demand. Above its target a holder is told to lower; below it, it is granted
 *   what is free.
 * - A new leader knows no shares. Until one expiry plus the grace after taking leadership has
 *   passed (`quiet`), every old share it does not know has expired; meanwhile it adopts what
 *   holders report keeping (never above L − Σ known) and grants nothing new; the pools of the
 *   limits it learns of meanwhile start empty at the end of the quiet period.
 */

export interface RateHolder {
  pod: string;
  uid: string;
  boot: string;
  namespace: string;
  share: number;
  target: number;
  /** Highest sync sequence applied. */
  seq: number;
  /** The share is valid until then unless renewed (operator clock). */
  expires: number;
  /** Reported recent use, per window. */
  used: number;
  /** Reported refused or waiting demand, per window. */
  demand: number;
}

export interface RateEntry {
  key: string;
  field: string;
  limit: number;
  windowMs: number;
  /** By `uid/boot`. */
  holders: Map<string, RateHolder>;
  /** Unassigned capacity's fill: refills at (limit − Σ shares) per window, capped there. */
  pool: { level: number; at: number };
  /** When the last holder went away (entries without holders for a window are dropped). */
  emptySince?: number;
  createdAt: number;
}

export interface RateLimitDef {
  limit: number;
  windowMs: number;
}

export interface RateHolderId {
  pod: string;
  uid: string;
  boot: string;
  namespace: string;
}

export interface RateReport {
  seq: number;
  used: number;
  demand: number;
  keep: number;
  /** The process is ending: what it keeps is all it will ever hold; it leaves the book. */
  final?: boolean;
}

export interface RateAnswer {
  share: number;
  target: number;
  credit: number;
  expires: number;
  /** Whether the report was applied (not a duplicate or stale retry). */
  applied: boolean;
}

export const RATE_TTL_MS = 15_000;
export const RATE_GRACE_MS = 5_000;

export function entryId(key: string, field: string): string {
  return `${key}#${field}`;
}

export function sharesOf(e: RateEntry): number {
  let s = 0;
  for (const h of e.holders.values()) s += h.share;
  return s;
}

/** What an entry's pool holds at `now` (read-only: the book is not changed). */
export function poolLevel(e: RateEntry, now: number): number {
  const cap = Math.max(0, e.limit - sharesOf(e));
  return now > e.pool.at ? Math.min(cap, e.pool.level + ((now - e.pool.at) * cap) / e.windowMs) : Math.min(cap, e.pool.level);
}

export class RateLimitLedger {
  readonly entries = new Map<string, RateEntry>();
  /** No grants before this (operator clock): old leaders' shares may still be in use. */
  quietUntil = 0;
  private readonly ttlMs: number;
  private readonly graceMs: number;

  constructor(private readonly o: { now: () => number; ttlMs?: number; graceMs?: number }) {
    this.ttlMs = o.ttlMs ?? RATE_TTL_MS;
    this.graceMs = o.graceMs ?? RATE_GRACE_MS;
  }

  /** Taking leadership: forget everything (it may be stale) and grant nothing for one expiry plus the grace. */
  lead(): void {
    this.entries.clear();
    this.quietUntil = this.o.now() + this.ttlMs + this.graceMs;
  }

  quiet(): boolean {
    return this.o.now() < this.quietUntil;
  }

  get(key: string, field: string): RateEntry | undefined {
    return this.entries.get(entryId(key, field));
  }

  private refill(e: RateEntry, now: number): void {
    const cap = Math.max(0, e.limit - sharesOf(e));
    if (now > e.pool.at) {
      e.pool.level = Math.min(cap, e.pool.level + ((now - e.pool.at) * cap) / e.windowMs);
      e.pool.at = now;
    } else e.pool.level = Math.min(cap, e.pool.level); // not filling yet (a quiet period)
  }

  /**
   * One entry of a holder's sync. `def` is the limit as configured for this holder's pod
   * (undefined: the limit does not exist or does not apply to it: nothing is granted, a share
   * it still has can only go down).
   */
  answer(def: RateLimitDef | undefined, id: RateHolderId, key: string, field: string, r: RateReport): RateAnswer {
    const now = this.o.now();
    const eid = entryId(key, field);
    let e = this.entries.get(eid);
    if (!def) {
      // Not (or no longer) this pod's limit: a share it still holds can only go down, and is
      // reclaimed as usual; the answer tells it to hold nothing.
      const h = e?.holders.get(`${id.uid}/${id.boot}`);
      if (e && h && r.seq > h.seq) {
        this.refill(e, now);
        h.seq = r.seq;
        h.share = Math.min(h.share, r.keep);
        h.target = 0;
        h.used = h.demand = 0;
        this.refill(e, now);
      }
      return { share: 0, target: 0, credit: 0, expires: now + this.ttlMs, applied: false };
    }
    if (!e) {
      // A limit first seen while quiet was in use at the leader change: what the fleet used of
      // it is unknown, so the unassigned part starts empty and fills from the end of the quiet
      // period (when every share the old leader granted has expired). Seen later: full.
      const quiet = this.quiet();
      e = { key, field, limit: def.limit, windowMs: def.windowMs, holders: new Map(), pool: { level: quiet ? 0 : def.limit, at: quiet ? this.quietUntil : now }, createdAt: now };
      this.entries.set(eid, e);
    }
    this.refill(e, now);
    e.limit = def.limit;
    e.windowMs = def.windowMs;
    const hk = `${id.uid}/${id.boot}`;
    let h = e.holders.get(hk);
    if (!h) {
      // A pod runs one sidecar process at a time: a new boot means the old process has ended,
      // and its bucket with it.
      for (const [k, old] of e.holders) if (old.uid === id.uid) e.holders.delete(k);
      h = { ...id, share: 0, target: 0, seq: 0, expires: 0, used: 0, demand: 0 };
      e.holders.set(hk, h);
    }
    delete e.emptySince;
    if (r.seq <= h.seq) return { share: h.share, target: h.target, credit: 0, expires: h.expires, applied: false };
    h.seq = r.seq;
    if (r.final) {
      h.share = Math.min(h.share, r.keep);
      if (h.share === 0) e.holders.delete(hk);
      this.refill(e, now);
      this.retarget(e);
      return { share: h.share, target: 0, credit: 0, expires: h.expires, applied: true };
    }
    h.used = r.used;
    h.demand = r.demand;
    h.expires = now + this.ttlMs;
    let credit = 0;
    if (this.quiet()) {
      // What the holder keeps is what an old leader granted it (a holder never reports more than
      // it holds); adopt it, bounded by what the known holders leave.
      const others = sharesOf(e) - h.share;
      h.share = Math.max(0, Math.min(r.keep, e.limit - others));
      this.refill(e, now);
    } else {
      h.share = Math.min(h.share, r.keep);
      this.refill(e, now);
    }
    this.retarget(e);
    if (!this.quiet() && h.share < h.target) {
      const free = e.limit - sharesOf(e);
      const grant = Math.max(0, Math.min(h.target - h.share, free));
      if (grant > 0) {
        credit = Math.min(grant, Math.floor(e.pool.level));
        e.pool.level -= credit;
        h.share += grant;
        this.refill(e, now);
      }
    }
    return { share: h.share, target: h.target, credit, expires: h.expires, applied: true };
  }

  /** Floor for every holder, the rest of the limit in proportion to reported use plus demand. */
  private retarget(e: RateEntry): void {
    const n = e.holders.size;
    if (n === 0) return;
    const floor = Math.max(1, Math.floor(e.limit / (10 * n)));
    const rest = Math.max(0, e.limit - n * floor);
    let total = 0;
    for (const h of e.holders.values()) total += h.used + h.demand;
    for (const h of e.holders.values()) {
      const extra = total > 0 ? Math.floor((rest * (h.used + h.demand)) / total) : Math.floor(rest / n);
      h.target = Math.min(e.limit, floor + extra);
    }
  }

  /** Reclaims shares silent past expiry plus the grace; drops limits unused for a window. Returns the entries changed. */
  expire(): string[] {
    const now = this.o.now();
    const changed: string[] = [];
    for (const [id, e] of this.entries) {
      let gone = false;
      for (const [k, h] of e.holders) {
        if (now <= h.expires + this.graceMs) continue;
        if (!gone) this.refill(e, now);
        gone = true;
        e.holders.delete(k);
      }
      if (gone) {
        changed.push(id);
        this.retarget(e);
        if (e.holders.size === 0) e.emptySince = now;
      }
      // With no holders for a window the pool is full again: the same as a new entry.
      if (e.holders.size === 0 && e.emptySince !== undefined && now - e.emptySince >= e.windowMs) this.entries.delete(id);
    }
    return changed;
  }
}
