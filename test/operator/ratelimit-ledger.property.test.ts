import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RateLimitLedger, sharesOf, type RateAnswer } from '../../operator/ratelimit-ledger.js';

/**
 * The fleet's rate-limit rule as a property: random interleavings of syncs (answered, lost on
 * the way there or back, duplicated, or delivered late after newer ones), use of the buckets,
 * time passing with expiries, sidecar restarts (clocks up to 4 s off the operator's) and leader
 * changes. On every step:
 * - the operator's Σ shares ≤ L;
 * - Σ of what the live processes believe they hold (valid by their own clock) ≤ L, across leader
 *   changes too;
 * - each process's bucket level ≤ its share, and Σ levels of live processes + the operator's
 *   pool ≤ the level of one bucket of L fed the fleet's whole use: whatever shares move, the
 *   fleet never uses more over any interval than that bucket allows (the one exception: a limit
 *   the ledger first learns of after a leader change's quiet period starts full).
 * Then: with fixed demand and every process syncing once per round, every share reaches its
 * target within 4 rounds (report → target known → lowered and reported → freed part granted).
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const SEED = Number(process.env.FUZZ_SEED ?? 23);

const L = 1_000;
const WINDOW = 60_000;
const TTL = 15_000;
const GRACE = 5_000;
/** The sidecar stops using a share this long before it expires (RemoteShares). */
const MARGIN = 3_000;
const KEY = 'rl/a/chat';
const FIELD = 'requestsPerMinute';
const DEF = { limit: L, windowMs: WINDOW };

type Delivery = 'answered' | 'requestLost' | 'answerLost' | 'duplicated' | 'delayed';

type Op =
  | { kind: 'start'; pod: number; skew: number }
  | { kind: 'sync'; p: number; used: number; demand: number; delivery: Delivery }
  | { kind: 'late'; p: number }
  | { kind: 'use'; p: number; amount: number }
  | { kind: 'advance'; ms: number }
  | { kind: 'newLeader' };

const delivery = fc.constantFrom<Delivery>('answered', 'answered', 'answered', 'requestLost', 'answerLost', 'duplicated', 'delayed');
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('start' as const), pod: fc.nat(4), skew: fc.oneof(fc.constantFrom(-4_000, 4_000), fc.integer({ min: -4_000, max: 4_000 })) }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('sync' as const), p: fc.nat(), used: fc.nat(2 * L), demand: fc.nat(L), delivery }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('late' as const), p: fc.nat() }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('use' as const), p: fc.nat(), amount: fc.integer({ min: 1, max: 400 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 4_000 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 4_000, max: 40_000 }) }) },
  // Just past an expiry, where a skewed clock and the grace matter.
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 14_500, max: 16_500 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'newLeader' as const }) },
);

/** A sidecar process as RemoteShares behaves towards the operator, with its bucket. */
class Proc {
  alive = true;
  seq = 0;
  /** The share it believes it has (lowered by itself, raised only by answers). */
  view = 0;
  target = Infinity;
  validUntil = 0;
  level = 0;
  at = 0;
  /** Requests sent and not answered (a late delivery reaches the operator, its answer is dropped). */
  unanswered: Array<{ seq: number; keep: number; used: number; demand: number }> = [];

  constructor(
    readonly pod: number,
    readonly boot: string,
    /** How far this process's wall clock is ahead of the operator's (it reads `expires` with it). */
    readonly skew: number,
  ) {}

  get id() {
    return { pod: `p-${this.pod}`, uid: `uid-${this.pod}`, boot: this.boot, namespace: 'a' };
  }

  valid(now: number): boolean {
    return this.alive && now < this.validUntil - MARGIN;
  }

  /** The bucket's level now (refilled at view per window while valid; nothing usable once expired). */
  levelAt(now: number): number {
    if (!this.valid(now)) {
      this.view = 0;
      this.level = Math.min(this.level, 0);
      this.at = now;
      return this.level;
    }
    if (now > this.at) this.level = Math.min(this.view, this.level + ((now - this.at) * this.view) / WINDOW);
    this.at = now;
    return this.level;
  }

  /** Before a report: lower the view to the target (what goes back is gone at once). */
  lower(now: number): number {
    this.levelAt(now);
    if (this.view > this.target) {
      this.view = this.target;
      this.level = Math.min(this.level, this.view);
    }
    return this.view;
  }

  apply(a: RateAnswer, now: number): void {
    this.levelAt(now);
    if (a.share > this.view) this.level += Math.min(a.credit, a.share - this.view);
    else this.level = Math.min(this.level, a.share);
    this.view = a.share;
    this.target = a.target;
    // RemoteShares: its time of sending plus (expires − its wall clock): off by the skew.
    this.validUntil = a.expires - this.skew;
    this.at = now;
    // The answer's target applies at once: lowering is always safe.
    this.lower(now);
  }
}

class Fleet {
  now = Date.parse('2026-12-10T12:00:00Z');
  ledger = this.newLedger(false);
  procs: Proc[] = [];
  private entry: object | undefined;
  /** One bucket of the whole limit, fed the fleet's use: what the fleet may have used up to now. */
  whole = L;
  private boots = 0;

  private newLedger(lead: boolean): RateLimitLedger {
    const l = new RateLimitLedger({ now: () => this.now, ttlMs: TTL, graceMs: GRACE });
    if (lead) l.lead();
    return l;
  }

  start(pod: number, skew = 0): void {
    for (const p of this.procs) if (p.pod === pod) p.alive = false;
    this.procs.push(new Proc(pod, `b${++this.boots}`, skew));
  }

  live(): Proc[] {
    return this.procs.filter((p) => p.alive);
  }

  sync(p: Proc, used: number, demand: number, d: Delivery): void {
    const keep = p.lower(this.now);
    const report = { seq: ++p.seq, keep, used, demand };
    if (d === 'requestLost') return;
    if (d === 'delayed') {
      p.unanswered.push(report);
      return;
    }
    const a = this.ledger.answer(DEF, p.id, KEY, FIELD, report);
    if (d === 'answerLost') return;
    const b = d === 'duplicated' ? this.ledger.answer(DEF, p.id, KEY, FIELD, report) : a;
    p.apply(b, this.now);
  }

  late(p: Proc): void {
    const r = p.unanswered.shift();
    if (r) this.ledger.answer(DEF, p.id, KEY, FIELD, r);
  }

  use(p: Proc, amount: number): void {
    if (!p.valid(this.now)) return;
    if (p.levelAt(this.now) < amount) return;
    p.level -= amount;
    this.whole -= amount;
  }

  advance(ms: number): void {
    this.now += ms;
    this.whole = Math.min(L, this.whole + (ms * L) / WINDOW);
    this.ledger.expire();
  }

  newLeader(): void {
    this.ledger = this.newLedger(true);
  }

  check(): void {
    const e = this.ledger.get(KEY, FIELD);
    if (e) expect(sharesOf(e)).toBeLessThanOrEqual(L);
    let views = 0;
    let levels = 0;
    for (const p of this.live()) {
      if (!p.valid(this.now)) continue;
      views += p.view;
      const level = p.levelAt(this.now);
      expect(level).toBeLessThanOrEqual(p.view + 1e-9);
      levels += level;
    }
    expect(views).toBeLessThanOrEqual(L);
    if (e && e !== this.entry) {
      this.entry = e;
      // A limit the ledger learns of after its quiet period starts with a full pool: the one burst
      // it cannot know the fleet used (its holders all went silent over the leader change).
      if (e.createdAt >= this.ledger.quietUntil) this.whole = L;
    }
    if (e) {
      // The pool as of now (refilled lazily by the ledger: the same formula).
      const cap = Math.max(0, e.limit - sharesOf(e));
      const pool = Math.min(cap, e.pool.level + (Math.max(0, this.now - e.pool.at) * cap) / e.windowMs);
      // What the fleet can still use now never exceeds what one bucket of L fed the same use holds.
      expect(levels + pool).toBeLessThanOrEqual(this.whole + 1e-6);
    }
  }
}

describe('RateLimitLedger (property)', () => {
  it(`Σ shares ≤ L, Σ live views ≤ L and buckets + pool ≤ one bucket of L on every step (${RUNS} runs, seed ${SEED})`, () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 200, size: 'max' }), (ops) => {
        const f = new Fleet();
        f.start(0);
        for (const o of ops) {
          const live = f.live();
          const pick = (i: number) => live[i % live.length];
          switch (o.kind) {
            case 'start':
              f.start(o.pod, o.skew);
              break;
            case 'sync': {
              const p = pick(o.p);
              if (p) f.sync(p, o.used, o.demand, o.delivery);
              break;
            }
            case 'late': {
              const p = pick(o.p);
              if (p) f.late(p);
              break;
            }
            case 'use': {
              const p = pick(o.p);
              if (p) f.use(p, o.amount);
              break;
            }
            case 'advance':
              f.advance(o.ms);
              break;
            case 'newLeader':
              f.newLeader();
              break;
          }
          f.check();
        }
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('with fixed demand, every share reaches its target within 4 rounds of syncs, in any order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ used: fc.nat(2 * L), demand: fc.nat(L) }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { minLength: 4, maxLength: 4 }),
        fc.array(fc.record({ used: fc.nat(2 * L), demand: fc.nat(L) }), { minLength: 6, maxLength: 6 }),
        (first, orders, second) => {
          const f = new Fleet();
          first.forEach((_, i) => f.start(i));
          const rounds = (demands: Array<{ used: number; demand: number }>) => {
            for (const seed of orders) {
              const procs = [...f.live()];
              // A different order each round.
              for (let i = procs.length - 1; i > 0; i--) {
                const j = (seed + i * 7) % (i + 1);
                [procs[i], procs[j]] = [procs[j]!, procs[i]!];
              }
              for (const p of procs) f.sync(p, demands[p.pod]!.used, demands[p.pod]!.demand, 'answered');
              f.advance(1_000);
              f.check();
            }
            const e = f.ledger.get(KEY, FIELD)!;
            for (const p of f.live()) {
              const h = e.holders.get(`uid-${p.pod}/${p.boot}`)!;
              expect(h.share).toBe(h.target);
              expect(p.view).toBe(h.target);
            }
          };
          rounds(first);
          // Demand moves: the shares follow within the same bound.
          rounds(second);
        },
      ),
      { seed: SEED, numRuns: 200 },
    );
  });
});
