import { describe, expect, it } from 'vitest';
import { BudgetSpecSchema } from '../../crds/src/index.js';
import { BudgetLedger, ledgerTotals } from '../../operator/budget-ledger.js';

const spec = BudgetSpecSchema.parse({ period: 'daily', limit: '1.00' });
const USD = 1_000_000_000n;
const podA = { name: 'a', uid: 'uid-a' };
const podB = { name: 'b', uid: 'uid-b' };

const report = (seq: number, spent: bigint, keep: bigint, want: bigint, need = 0n) => ({ seq, spent, keep, want, need });

function clock(start = '2026-11-26T10:00:00Z') {
  let t = Date.parse(start);
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('BudgetLedger', () => {
  it('never grants more than the limit in total, whatever the pods ask', () => {
    const c = clock();
    const ledger = new BudgetLedger({ now: c.now });
    const l = ledger.current('ns', 'b', spec);
    expect(ledger.apply(l, podA, report(1, 0n, 0n, 700_000_000n)).granted).toBe(700_000_000n);
    const b = ledger.apply(l, podB, report(1, 0n, 0n, 700_000_000n));
    expect(b.granted).toBe(300_000_000n);
    expect(l.exhausted).toBe(true);
    expect(ledgerTotals(l).granted).toBe(USD);
    expect(ledger.apply(l, podB, report(2, 0n, 300_000_000n, 1n)).granted).toBe(300_000_000n);
  });

  it('ignores duplicated and out-of-order syncs (cumulative, sequence-numbered)', () => {
    const c = clock();
    const ledger = new BudgetLedger({ now: c.now });
    const l = ledger.current('ns', 'b', spec);
    ledger.apply(l, podA, report(5, 0n, 0n, 500n));
    ledger.apply(l, podA, report(6, 100n, 500n, 0n));
    const again = ledger.apply(l, podA, report(6, 100n, 500n, 0n)); // the same message twice
    expect(again.grew).toBe(false);
    expect(ledgerTotals(l)).toEqual({ granted: 500n, spent: 100n });
    ledger.apply(l, podA, report(4, 50n, 0n, 0n)); // an older retry arriving late changes nothing
    expect(ledgerTotals(l)).toEqual({ granted: 500n, spent: 100n });
    ledger.apply(l, podA, report(7, 300n, 300n, 0n)); // spend grows, unused allowance comes back
    expect(ledgerTotals(l)).toEqual({ granted: 300n, spent: 300n });
  });

  it('returned allowance can be granted to another pod; a pod never keeps less than it spent', () => {
    const c = clock();
    const ledger = new BudgetLedger({ now: c.now });
    const l = ledger.current('ns', 'b', spec);
    ledger.apply(l, podA, report(1, 0n, 0n, USD));
    expect(ledger.apply(l, podB, report(1, 0n, 0n, 1n)).granted).toBe(0n);
    ledger.apply(l, podA, report(2, 400_000_000n, 0n, 0n)); // keeps only what it spent
    expect(ledger.apply(l, podB, report(2, 0n, 0n, USD)).granted).toBe(600_000_000n);
  });

  it('grants nothing below what the pod needs, so leftovers are not stranded with a pod that cannot use them', () => {
    const c = clock();
    const ledger = new BudgetLedger({ now: c.now });
    const l = ledger.current('ns', 'b', spec);
    ledger.apply(l, podA, report(1, 0n, 0n, USD - 500n));
    ledger.apply(l, podA, report(2, USD - 500n, USD - 500n, 0n)); // 500 left in the fleet
    const b = ledger.apply(l, podB, report(1, 0n, 0n, 2_000n, 800n)); // a request needs 800
    expect(b).toMatchObject({ granted: 0n, grew: false });
    expect(l.exhausted).toBe(true);
    expect(ledgerTotals(l).granted).toBe(USD - 500n);
    expect(ledger.apply(l, podB, report(2, 0n, 0n, 2_000n, 400n)).granted).toBe(500n); // a smaller one fits
  });

  it('reclaims a silent pod only after expiry plus grace', () => {
    const c = clock();
    const ledger = new BudgetLedger({ now: c.now, ttlMs: 30_000, graceMs: 60_000 });
    const l = ledger.current('ns', 'b', spec);
    ledger.apply(l, podA, report(1, 0n, 0n, 500_000_000n));
    ledger.apply(l, podA, report(2, 100_000_000n, 500_000_000n, 0n));
    c.advance(30_000 + 59_000);
    expect(ledger.reclaim()).toEqual([]);
    c.advance(2_000);
    expect(ledger.reclaim()).toEqual(['ns/b']);
    expect(ledgerTotals(l)).toEqual({ granted: 100_000_000n, spent: 100_000_000n });
  });

  it('starts a new period from zero (injected clock crosses midnight UTC)', () => {
    const c = clock('2026-11-26T23:59:59Z');
    const ledger = new BudgetLedger({ now: c.now });
    const l1 = ledger.current('ns', 'b', spec);
    ledger.apply(l1, podA, report(1, 900_000_000n, USD, 0n));
    expect(l1.periodStart).toBe('2026-11-26T00:00:00.000Z');
    c.advance(2_000);
    const l2 = ledger.current('ns', 'b', spec);
    expect(l2.periodStart).toBe('2026-11-27T00:00:00.000Z');
    expect(ledgerTotals(l2)).toEqual({ granted: 0n, spent: 0n });
    expect(ledger.apply(l2, podA, report(2, 0n, 0n, USD)).granted).toBe(USD);
  });
});
