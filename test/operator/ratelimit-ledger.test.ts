import { describe, expect, it } from 'vitest';
import { RateLimitLedger, sharesOf } from '../../operator/ratelimit-ledger.js';

const KEY = 'rl/a/chat';
const F = 'requestsPerMinute';
const DEF = { limit: 1000, windowMs: 60_000 };
const T0 = Date.parse('2026-03-10T12:00:00Z');

function setup() {
  const clock = { ms: T0 };
  const ledger = new RateLimitLedger({ now: () => clock.ms, ttlMs: 15_000, graceMs: 5_000 });
  const id = (pod: string, boot = 'b1') => ({ pod, uid: `uid-${pod}`, boot, namespace: 'a' });
  const sync = (pod: string, seq: number, r: { used?: number; demand?: number; keep?: number } = {}, o: { boot?: string; def?: typeof DEF | undefined } = {}) =>
    ledger.answer('def' in o ? o.def : DEF, id(pod, o.boot), KEY, F, { seq, used: r.used ?? 0, demand: r.demand ?? 0, keep: r.keep ?? 0 });
  return { clock, ledger, sync };
}

describe('RateLimitLedger', () => {
  it('a first holder gets the whole limit, filled, valid for the TTL', () => {
    const { ledger, sync } = setup();
    expect(sync('p1', 1)).toEqual({ share: 1000, target: 1000, credit: 1000, expires: T0 + 15_000, applied: true });
    expect(ledger.get(KEY, F)!.pool.level).toBe(0);
  });

  it('targets follow demand above a floor; the part a holder gives back is granted only after it reported lowering', () => {
    const { ledger, sync } = setup();
    sync('p1', 1, { used: 900 });
    // p2 joins: floor 1000 / (10 · 2) = 50 each, the other 900 by demand (p2 reports none yet).
    expect(sync('p2', 1)).toMatchObject({ share: 0, target: 50, credit: 0 });
    // p1 still holds 1000 and is told its target; nothing is granted on its behalf.
    expect(sync('p1', 2, { used: 900, keep: 1000 })).toMatchObject({ share: 1000, target: 950 });
    // p2 is busy now: demand moves the targets, but p1 has not given anything back.
    expect(sync('p2', 2, { used: 0, demand: 900 })).toMatchObject({ share: 0, target: 50 + 450 });
    expect(sync('p1', 3, { used: 900, keep: 950 })).toMatchObject({ share: 950, target: 500 });
    expect(sync('p1', 4, { used: 900, keep: 500 })).toMatchObject({ share: 500, target: 500, credit: 0 });
    // Freed capacity fills at its own rate: no credit yet.
    expect(sync('p2', 3, { used: 0, demand: 900 })).toMatchObject({ share: 500, target: 500, credit: 0 });
    expect(sharesOf(ledger.get(KEY, F)!)).toBe(1000);
  });

  it('freed capacity comes filled only as far as the pool refilled (limit − Σ shares per window)', () => {
    const { clock, ledger, sync } = setup();
    sync('p1', 1, { used: 1000 });
    sync('p2', 1, { used: 1000 }); // targets 500 / 500; p2 gets nothing yet
    expect(sync('p1', 2, { used: 1000, keep: 500 })).toMatchObject({ share: 500, target: 500 });
    clock.ms += 6_000; // pool: 500 free × 6 s / 60 s = 50
    expect(sync('p2', 2, { used: 1000 })).toMatchObject({ share: 500, credit: 50 });
    expect(ledger.get(KEY, F)!.pool.level).toBe(0);
  });

  it('ignores duplicated and stale reports (same answer, no lowering, no renewal)', () => {
    const { clock, sync } = setup();
    sync('p1', 5, { keep: 0 });
    clock.ms += 1_000;
    expect(sync('p1', 5, { keep: 0 })).toEqual({ share: 1000, target: 1000, credit: 0, expires: T0 + 15_000, applied: false });
    expect(sync('p1', 4, { keep: 0 })).toMatchObject({ share: 1000, applied: false });
  });

  it('reclaims a silent holder only after its expiry plus the grace', () => {
    const { clock, ledger, sync } = setup();
    sync('p1', 1);
    clock.ms += 20_000;
    expect(ledger.expire()).toEqual([]);
    clock.ms += 1;
    expect(ledger.expire()).toEqual([`${KEY}#${F}`]);
    expect(sharesOf(ledger.get(KEY, F)!)).toBe(0);
    // The reclaimed share's bucket was full when it went silent: the pool refills from empty.
    expect(sync('p2', 1)).toMatchObject({ share: 1000, credit: 0 });
  });

  it('drops a limit nobody held for a window (it would be full again anyway)', () => {
    const { clock, ledger, sync } = setup();
    sync('p1', 1);
    clock.ms += 20_001;
    ledger.expire();
    clock.ms += 59_999;
    ledger.expire();
    expect(ledger.get(KEY, F)).toBeDefined();
    clock.ms += 1;
    ledger.expire();
    expect(ledger.get(KEY, F)).toBeUndefined();
  });

  it('a new process of the same pod replaces the old one at once', () => {
    const { ledger, sync } = setup();
    sync('p1', 1);
    expect(sync('p1', 1, {}, { boot: 'b2' })).toMatchObject({ share: 1000, credit: 0 });
    expect([...ledger.get(KEY, F)!.holders.keys()]).toEqual(['uid-p1/b2']);
  });

  it('a limit that does not apply to the pod: nothing granted, a share it holds only goes down', () => {
    const { ledger, sync } = setup();
    expect(sync('p1', 1, {}, { def: undefined })).toEqual({ share: 0, target: 0, credit: 0, expires: T0 + 15_000, applied: false });
    expect(ledger.get(KEY, F)).toBeUndefined();
    sync('p1', 2);
    expect(sync('p1', 3, { keep: 2000 }, { def: undefined })).toMatchObject({ share: 0 });
    expect(ledger.get(KEY, F)!.holders.get('uid-p1/b1')!.share).toBe(1000);
    sync('p1', 4, { keep: 300 }, { def: undefined });
    expect(ledger.get(KEY, F)!.holders.get('uid-p1/b1')!.share).toBe(300);
  });

  it('a new leader adopts what holders keep (at most what the others leave) and grants nothing until one expiry plus the grace', () => {
    const { clock, ledger, sync } = setup();
    ledger.lead();
    expect(ledger.quiet()).toBe(true);
    expect(sync('p1', 1, { keep: 700 })).toMatchObject({ share: 700, credit: 0, applied: true });
    expect(sync('p2', 1, { keep: 600 })).toMatchObject({ share: 300 });
    expect(sync('p3', 1, { demand: 100 })).toMatchObject({ share: 0 });
    clock.ms += 20_000;
    expect(ledger.quiet()).toBe(false);
    // The pool starts filling only now: what the old fleet used is unknown.
    expect(ledger.get(KEY, F)!.pool).toEqual({ level: 0, at: T0 + 20_000 });
    sync('p1', 2, { keep: 100 });
    clock.ms += 6_000;
    expect(sync('p3', 2, { demand: 100 })).toMatchObject({ share: 600, credit: 60 });
  });

  it('a final report lowers to what the process keeps, grants nothing, and leaves the book when it keeps nothing', () => {
    const { ledger, sync } = setup();
    sync('p1', 1);
    sync('p2', 1);
    expect(ledger.answer(DEF, { pod: 'p1', uid: 'uid-p1', boot: 'b1', namespace: 'a' }, KEY, F, { seq: 2, used: 0, demand: 0, keep: 0, final: true })).toMatchObject({ share: 0, target: 0, credit: 0, applied: true });
    expect([...ledger.get(KEY, F)!.holders.keys()]).toEqual(['uid-p2/b1']);
    expect(sync('p2', 2)).toMatchObject({ share: 1000, target: 1000 });
  });
});
