import { describe, expect, it } from 'vitest';
import { BudgetSpecSchema } from '../../crds/src/index.js';
import { BudgetLedger, bookFromStatus, bookToStatus, ledgerTotals } from '../../operator/budget-ledger.js';

const spec = BudgetSpecSchema.parse({ period: 'daily', limit: '1.00' });
const USD = 1_000_000_000n;
const podA = { name: 'a', uid: 'uid-a', boot: 'a1' };
const podB = { name: 'b', uid: 'uid-b', boot: 'b1' };

const report = (seq: number, spent: bigint, keep: bigint, want: bigint, need = 0n, final = false) => ({ seq, spent, keep, want, need, final });
const granted = (l: ReturnType<BudgetLedger['current']>) => ledgerTotals(l).committed;
const book = (l: ReturnType<BudgetLedger['current']>) => {
  const t = ledgerTotals(l);
  return { granted: t.committed, spent: t.reported };
};

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
    expect(granted(l)).toBe(USD);
    expect(ledger.apply(l, podB, report(2, 0n, 300_000_000n, 1n)).granted).toBe(300_000_000n);
  });

  it('ignores duplicated and out-of-order syncs (cumulative, sequence-numbered)', () => {
    const c = clock();
    const ledger = new BudgetLedger({ now: c.now });
    const l = ledger.current('ns', 'b', spec);
    ledger.apply(l, podA, report(5, 0n, 0n, 500n));
    ledger.apply(l, podA, report(6, 100n, 500n, 0n));
    const again = ledger.apply(l, podA, report(6, 100n, 500n, 0n)); // the same message twice
    expect(again.durable).toBe(false);
    expect(book(l)).toEqual({ granted: 500n, spent: 100n });
    ledger.apply(l, podA, report(4, 50n, 0n, 0n)); // an older retry arriving late changes nothing
    expect(book(l)).toEqual({ granted: 500n, spent: 100n });
    ledger.apply(l, podA, report(7, 300n, 300n, 0n)); // spend grows, unused allowance comes back
    expect(book(l)).toEqual({ granted: 300n, spent: 300n });
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
    expect(b).toMatchObject({ granted: 0n, durable: false });
    expect(l.exhausted).toBe(true);
    expect(granted(l)).toBe(USD - 500n);
    expect(ledger.apply(l, podB, report(2, 0n, 0n, 2_000n, 400n)).granted).toBe(500n); // a smaller one fits
  });

  it('a process silent past expiry plus grace is Lost, not reclaimed: what it held stays spent; folded into retired a grace after a later process of its pod reported', () => {
    const c = clock();
    const ledger = new BudgetLedger({ now: c.now, ttlMs: 30_000, graceMs: 60_000 });
    const l = ledger.current('ns', 'b', spec);
    ledger.apply(l, podA, report(1, 0n, 0n, 500_000_000n));
    ledger.apply(l, podA, report(2, 100_000_000n, 500_000_000n, 0n));
    c.advance(30_000 + 59_000);
    expect(ledger.expire()).toEqual([]);
    c.advance(2_000);
    expect(ledger.expire()).toEqual(['ns/b']);
    expect(l.holders.get('uid-a/a1')).toMatchObject({ state: 'Lost', granted: 500_000_000n, spent: 100_000_000n });
    expect(ledgerTotals(l)).toEqual({ committed: 500_000_000n, reported: 100_000_000n, unreported: 400_000_000n, outstanding: 0n });
    c.advance(120_000);
    expect(ledger.expire()).toEqual([]); // it may only be cut off: still listed, its report would count
    ledger.apply(l, { ...podA, boot: 'a2' }, report(1, 0n, 0n, 0n)); // the pod's next process: a1 has ended for good
    expect(l.holders.get('uid-a/a1')!.replaced).toBe(true);
    expect(ledger.expire()).toEqual(['ns/b']);
    expect([...l.holders.keys()]).toEqual(['uid-a/a2']);
    expect(l.retired).toEqual({ processes: 1, spent: 100_000_000n, unreported: 400_000_000n });
    expect(ledgerTotals(l)).toEqual({ committed: 500_000_000n, reported: 100_000_000n, unreported: 400_000_000n, outstanding: 0n });
    // Nobody can be granted the lost money again this period.
    expect(ledger.apply(l, podB, report(1, 0n, 0n, USD)).granted).toBe(500_000_000n);
  });

  it('a Lost process that reports after all is Active again and its report is the truth', () => {
    const c = clock();
    const ledger = new BudgetLedger({ now: c.now, ttlMs: 30_000, graceMs: 60_000 });
    const l = ledger.current('ns', 'b', spec);
    ledger.apply(l, podA, report(1, 0n, 0n, 500n));
    c.advance(100_000);
    ledger.expire();
    expect(l.holders.get('uid-a/a1')!.state).toBe('Lost');
    ledger.apply(l, podA, report(2, 200n, 200n, 0n));
    expect(l.holders.get('uid-a/a1')).toMatchObject({ state: 'Active', granted: 200n, spent: 200n });
    expect(ledgerTotals(l).unreported).toBe(0n);
  });

  it('a new process of the same pod marks the old one Lost without freeing its grant; a new pod (new UID) leaves it Active until it reports or expires', () => {
    const c = clock();
    const ledger = new BudgetLedger({ now: c.now });
    const l = ledger.current('ns', 'b', spec);
    ledger.apply(l, podA, report(1, 0n, 0n, 300n));
    ledger.apply(l, podA, report(2, 100n, 300n, 0n)); // 200 reserved or cushion when it dies
    const restarted = { ...podA, boot: 'a2' };
    expect(ledger.apply(l, restarted, report(1, 0n, 0n, USD)).granted).toBe(USD - 300n);
    expect(l.holders.get('uid-a/a1')).toMatchObject({ state: 'Lost', granted: 300n, spent: 100n });
    expect(ledgerTotals(l)).toMatchObject({ committed: USD, reported: 100n, unreported: 200n });
    // The old process's late report (it was alive after all) is still taken.
    ledger.apply(l, podA, report(3, 250n, 250n, 0n));
    expect(l.holders.get('uid-a/a1')).toMatchObject({ state: 'Active', granted: 250n, spent: 250n });
    const replacement = { name: 'a', uid: 'uid-a-new', boot: 'x' };
    ledger.apply(l, replacement, report(1, 0n, 0n, 10n));
    expect(l.holders.get('uid-a/a1')!.state).toBe('Active');
  });

  it('a silent process whose pod is gone is Lost at once, marked as ended for good (folded a grace later)', () => {
    const c = clock();
    const ledger = new BudgetLedger({ now: c.now, ttlMs: 30_000, graceMs: 60_000 });
    const l = ledger.current('ns', 'b', spec);
    ledger.apply(l, podA, report(1, 0n, 0n, 500n));
    ledger.apply(l, podB, report(1, 0n, 0n, 500n));
    expect(ledger.silentHolders()).toEqual([]);
    c.advance(20_000);
    ledger.apply(l, podB, report(2, 100n, 500n, 0n)); // b renews its allowance, a falls silent
    c.advance(11_000);
    expect(ledger.silentHolders()).toEqual([{ namespace: 'ns', pod: 'a', uid: 'uid-a' }]);
    expect(ledger.podGone('other-ns', 'uid-a')).toEqual([]);
    expect(ledger.podGone('ns', 'uid-a')).toEqual(['ns/b']);
    expect(l.holders.get('uid-a/a1')).toMatchObject({ state: 'Lost', replaced: true, granted: 500n });
    expect(ledger.silentHolders()).toEqual([]);
    expect(ledgerTotals(l)).toMatchObject({ unreported: 500n, outstanding: 400n });
    c.advance(61_000);
    ledger.expire();
    expect(l.retired).toEqual({ processes: 1, spent: 0n, unreported: 500n });
  });

  it('a final report closes the process: its unused grant goes back, later reports change nothing', () => {
    const c = clock();
    const ledger = new BudgetLedger({ now: c.now });
    const l = ledger.current('ns', 'b', spec);
    ledger.apply(l, podA, report(1, 0n, 0n, 1_000n));
    const r = ledger.apply(l, podA, report(2, 400n, 400n, 0n, 0n, true));
    expect(r).toMatchObject({ granted: 400n, durable: true });
    expect(l.holders.get('uid-a/a1')).toMatchObject({ state: 'Closed', granted: 400n, spent: 400n });
    expect(ledger.apply(l, podA, report(3, 900n, 900n, USD)).granted).toBe(400n);
    expect(ledgerTotals(l)).toEqual({ committed: 400n, reported: 400n, unreported: 0n, outstanding: 0n });
    // A final report forced with a request still in flight keeps that reservation as spent.
    ledger.apply(l, podB, report(1, 0n, 0n, 1_000n));
    ledger.apply(l, podB, report(2, 100n, 300n, 0n, 0n, true));
    expect(ledgerTotals(l)).toEqual({ committed: 700n, reported: 500n, unreported: 200n, outstanding: 0n });
  });

  it('the book survives Budget.status: bookToStatus then bookFromStatus gives the same ledger', () => {
    const c = clock();
    const ledger = new BudgetLedger({ now: c.now, ttlMs: 30_000, graceMs: 60_000 });
    const l = ledger.current('ns', 'b', spec);
    ledger.apply(l, podA, report(1, 0n, 0n, 1_000n));
    ledger.apply(l, podB, report(1, 0n, 0n, 1_000n));
    ledger.apply(l, podB, report(2, 600n, 600n, 0n, 0n, true));
    ledger.apply(l, { ...podA, boot: 'a2' }, report(1, 0n, 0n, 50n));
    c.advance(61_000);
    ledger.expire(); // podB's closed process and podA's lost one are folded into retired
    expect([...l.holders.keys()]).toEqual(['uid-a/a2']);
    const status = JSON.parse(JSON.stringify(bookToStatus(l)));
    const back = bookFromStatus('ns', 'b', l.periodStart, l.limit, status);
    expect(back.holders).toEqual(l.holders);
    expect(back.retired).toEqual({ processes: 2, spent: 600n, unreported: 1_000n });
    expect(ledgerTotals(back)).toEqual(ledgerTotals(l));
    // A book written by an older operator (no boot, no state) restores as Active holders, one per pod.
    const old = bookFromStatus('ns', 'b', l.periodStart, l.limit, { allowances: [{ pod: 'p', uid: 'u', granted: '5', spent: '2', seq: 3, expires: new Date(c.now()).toISOString() }] });
    expect(old.holders.get('u/')).toMatchObject({ state: 'Active', boot: '', granted: 5n, spent: 2n, seq: 3 });
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
    expect(book(l2)).toEqual({ granted: 0n, spent: 0n });
    expect(ledger.apply(l2, podA, report(2, 0n, 0n, USD)).granted).toBe(USD);
  });
});
