import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BudgetSpecSchema, type BudgetStatus } from '../../crds/src/index.js';
import { BudgetLedger, bookFromStatus, bookToStatus, ledgerTotals, type PeriodLedger } from '../../operator/budget-ledger.js';

/**
 * The fleet's budget rule as a property: random interleavings of grants, reservations,
 * settlements, reports (lost, duplicated, answered or not), drains with final reports, process
 * crashes and restarts, operator restarts from the persisted book, and time passing. On every
 * step: the operator never commits more than the limit, and what providers billed (every settled
 * cost, plus every reservation of a crashed process billed in full) never exceeds what it
 * committed; a process never holds reservations beyond the allowance it believes it has. At the
 * end, once every process has ended: reported ≤ billed ≤ reported + unreported,
 * so Budget.status.spent (reported + unreported) covers every billed answer.
 *
 * Fixed seed and bounded runs here; `make fuzz` runs more (FUZZ_RUNS, FUZZ_SEED).
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const SEED = Number(process.env.FUZZ_SEED ?? 17);
const CHUNK = 500;

const LIMIT = 100_000n;
const spec = BudgetSpecSchema.parse({ period: 'monthly', limit: '0.0001' });
const TTL_MS = 30_000;
const GRACE_MS = 120_000;
/** The sidecar refuses to reserve this close to its allowance's expiry (RemoteFunds). */
const EXPIRY_MARGIN_MS = 5_000;

type Delivery = 'answered' | 'requestLost' | 'answerLost' | 'duplicated';

type Op =
  | { kind: 'start'; pod: number }
  | { kind: 'sync'; p: number; want: number; cushion: number; delivery: Delivery }
  | { kind: 'reserve'; p: number; amount: number }
  | { kind: 'settle'; p: number; percent: number }
  | { kind: 'crash'; p: number }
  | { kind: 'close'; p: number; settleFirst: boolean; delivery: Delivery }
  | { kind: 'advance'; ms: number }
  | { kind: 'flush' }
  | { kind: 'restartOperator' };

const delivery = fc.constantFrom<Delivery>('answered', 'answered', 'answered', 'requestLost', 'answerLost', 'duplicated');
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('start' as const), pod: fc.nat(3) }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('sync' as const), p: fc.nat(), want: fc.nat(60_000), cushion: fc.nat(20_000), delivery }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('reserve' as const), p: fc.nat(), amount: fc.integer({ min: 1, max: 20_000 }) }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('settle' as const), p: fc.nat(), percent: fc.integer({ min: 0, max: 100 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('crash' as const), p: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('close' as const), p: fc.nat(), settleFirst: fc.boolean(), delivery }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 5_000 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 5_000, max: 200_000 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'flush' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restartOperator' as const }) },
);

/** A sidecar process as RemoteFunds behaves towards the operator. */
interface Proc {
  pod: number;
  boot: string;
  alive: boolean;
  /** The allowance this process believes it has (lowered by its own reports, raised by answers). */
  granted: bigint;
  spent: bigint;
  reservations: bigint[];
  seq: number;
  validUntil: number;
}

class Fleet {
  now = Date.parse('2026-12-10T12:00:00Z');
  ledger = this.newLedger();
  /** What Budget.status holds: written before grants and final reports are answered, and on flushes. */
  persisted: Pick<BudgetStatus, 'allowances' | 'retired'> = { allowances: [] };
  procs: Proc[] = [];
  billed = 0n;
  private boots = 0;

  private newLedger(): BudgetLedger {
    return new BudgetLedger({ now: () => this.now, ttlMs: TTL_MS, graceMs: GRACE_MS });
  }

  book(): PeriodLedger {
    return this.ledger.current('ns', 'b', spec);
  }

  private persist(): void {
    this.persisted = JSON.parse(JSON.stringify(bookToStatus(this.book())));
  }

  private live(p: number): Proc | undefined {
    const alive = this.procs.filter((x) => x.alive);
    return alive.length ? alive[p % alive.length] : undefined;
  }

  /** One sync of a process; `final` is its last. What the network does with it is `delivery`. */
  private sync(proc: Proc, want: bigint, cushion: bigint, how: Delivery, final: boolean): void {
    const inUse = proc.spent + proc.reservations.reduce((a, b) => a + b, 0n);
    const wanted = inUse + (final ? 0n : cushion);
    const keep = wanted < proc.granted ? wanted : proc.granted;
    // What goes back is gone at once: no reservation may use it while the report travels.
    proc.granted = keep;
    proc.seq += 1;
    if (how === 'requestLost') return;
    const report = { seq: proc.seq, spent: proc.spent, keep, want: final ? 0n : want, need: 0n, final };
    const id = { name: `pod-${proc.pod}`, uid: `uid-${proc.pod}`, boot: proc.boot };
    const r = this.ledger.apply(this.book(), id, report);
    if (r.durable || final) this.persist();
    if (how === 'duplicated') this.ledger.apply(this.book(), id, report);
    if (how === 'answerLost') return;
    proc.granted = r.granted;
    proc.validUntil = r.expires;
  }

  run(o: Op): void {
    switch (o.kind) {
      case 'start': {
        // A pod runs one sidecar process at a time: the old one is gone (crashed) before the new one starts.
        for (const old of this.procs) if (old.alive && old.pod === o.pod) this.crash(old);
        this.procs.push({ pod: o.pod, boot: `boot-${++this.boots}`, alive: true, granted: 0n, spent: 0n, reservations: [], seq: 0, validUntil: 0 });
        return;
      }
      case 'sync': {
        const proc = this.live(o.p);
        if (proc) this.sync(proc, BigInt(o.want), BigInt(o.cushion), o.delivery, false);
        return;
      }
      case 'reserve': {
        const proc = this.live(o.p);
        if (!proc) return;
        const amount = BigInt(o.amount);
        const inUse = proc.spent + proc.reservations.reduce((a, b) => a + b, 0n);
        if (this.now < proc.validUntil - EXPIRY_MARGIN_MS && inUse + amount <= proc.granted) proc.reservations.push(amount);
        return;
      }
      case 'settle': {
        const proc = this.live(o.p);
        const reserved = proc?.reservations.shift();
        if (proc && reserved !== undefined) {
          const actual = (reserved * BigInt(o.percent)) / 100n;
          proc.spent += actual;
          this.billed += actual;
        }
        return;
      }
      case 'crash': {
        const proc = this.live(o.p);
        if (proc) this.crash(proc);
        return;
      }
      case 'close': {
        const proc = this.live(o.p);
        if (!proc) return;
        if (o.settleFirst) {
          for (const r of proc.reservations) {
            proc.spent += r;
            this.billed += r;
          }
          proc.reservations = [];
        }
        this.sync(proc, 0n, 0n, o.delivery, true);
        // Requests still in flight after a forced final report finish and are billed in full.
        this.crash(proc);
        return;
      }
      case 'advance':
        this.now += o.ms;
        this.ledger.expire();
        return;
      case 'flush':
        this.persist();
        return;
      case 'restartOperator': {
        this.ledger = this.newLedger();
        const l = this.book();
        this.ledger.restore(bookFromStatus('ns', 'b', l.periodStart, l.limit, this.persisted));
        return;
      }
    }
  }

  /** The process dies: whatever it had reserved may have been billed, in full. */
  private crash(proc: Proc): void {
    for (const r of proc.reservations) this.billed += r;
    proc.reservations = [];
    proc.alive = false;
  }

  /** Every process ends; time passes until the book has marked or folded them all. */
  finish(): void {
    for (const proc of this.procs) if (proc.alive) this.crash(proc);
    for (let i = 0; i < 3; i++) this.run({ kind: 'advance', ms: TTL_MS + GRACE_MS + 1 });
  }
}

describe('BudgetLedger, property: a hard budget is never overspent, whatever happens to processes and messages', () => {
  it(`granted ≤ limit and billed ≤ granted on every step; spent covers billed at the end (${RUNS} runs, seed ${SEED})`, async () => {
    const exercised = { closed: 0, lost: 0, restarts: 0, reportedAtEnd: 0n, billed: 0n, runsAtLimit: 0 };
    // In chunks (seed, seed + 1, …) so a long `make fuzz` run does not block the test runner's worker.
    for (let done = 0, chunk = 0; done < RUNS; done += CHUNK, chunk++) {
      fc.assert(
        fc.property(fc.array(op, { minLength: 1, maxLength: 150, size: 'max' }), (ops) => {
          const fleet = new Fleet();
          let atLimit = false;
          for (const o of ops) {
            fleet.run(o);
            const t = ledgerTotals(fleet.book());
            expect(t.committed).toBeLessThanOrEqual(LIMIT);
            atLimit ||= t.committed === LIMIT;
            expect(fleet.billed).toBeLessThanOrEqual(t.committed);
            for (const proc of fleet.procs) {
              if (!proc.alive) continue;
              const inUse = proc.spent + proc.reservations.reduce((a, b) => a + b, 0n);
              expect(inUse).toBeLessThanOrEqual(proc.granted);
            }
            if (o.kind === 'restartOperator') exercised.restarts++;
            for (const h of fleet.book().holders.values()) {
              if (h.state === 'Closed') exercised.closed++;
              if (h.state === 'Lost') exercised.lost++;
            }
          }
          fleet.finish();
          const t = ledgerTotals(fleet.book());
          // Only processes that fell silent without a successor are still listed (as Lost).
          for (const h of fleet.book().holders.values()) expect(h).toMatchObject({ state: 'Lost' });
          expect(t.reported).toBeLessThanOrEqual(fleet.billed);
          expect(fleet.billed).toBeLessThanOrEqual(t.reported + t.unreported);
          expect(t.committed).toBe(t.reported + t.unreported);
          exercised.reportedAtEnd += t.reported;
          exercised.billed += fleet.billed;
          exercised.runsAtLimit += atLimit ? 1 : 0;
        }),
        { seed: SEED + chunk, numRuns: Math.min(CHUNK, RUNS - done) },
      );
      await new Promise((r) => setImmediate(r));
    }
    console.log('[ledger property]', exercised);
    // The runs reached the interesting states (not only empty fleets).
    expect(exercised.closed).toBeGreaterThan(0);
    expect(exercised.lost).toBeGreaterThan(0);
    expect(exercised.restarts).toBeGreaterThan(0);
    expect(exercised.reportedAtEnd).toBeGreaterThan(0n);
    expect(exercised.billed).toBeGreaterThan(exercised.reportedAtEnd);
    expect(exercised.runsAtLimit).toBeGreaterThan(RUNS / 10); // the limit itself was reached, often
  }, 60_000 + RUNS * 50);
});
