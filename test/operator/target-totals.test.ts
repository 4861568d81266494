import { describe, expect, it } from 'vitest';
import { TargetTotals } from '../../operator/target-totals.js';

const report = (boot: string, requests: number, cost: string, route = 'r', target = 't') => ({
  boot,
  targets: [{ route, target, requests, successes: requests - 1, errors: 1, cost }],
});

describe('TargetTotals', () => {
  it('sums the latest cumulative report of each sidecar process; a repeated report changes nothing', () => {
    const totals = new TargetTotals();
    expect(totals.report('ns', 'pod-a', report('boot-1', 5, '500'))).toEqual(['ns/r']);
    expect(totals.report('ns', 'pod-b', report('boot-1', 3, '300'))).toEqual(['ns/r']);
    expect(totals.report('ns', 'pod-a', report('boot-1', 5, '500'))).toEqual([]); // the same again
    expect(totals.report('ns', 'pod-a', report('boot-1', 7, '700'))).toEqual(['ns/r']); // cumulative: replaces
    expect(totals.totals('ns', 'r', 't')).toEqual({ requests: 10, successes: 8, errors: 2, costNano: 1000n });
    // A restarted sidecar (new boot) starts from zero; what the old process reported stays counted.
    totals.report('ns', 'pod-a', report('boot-2', 1, '100'));
    expect(totals.totals('ns', 'r', 't').requests).toBe(11);
    expect(totals.totals('ns', 'r', 'other')).toEqual({ requests: 0, successes: 0, errors: 0, costNano: 0n });
    expect(totals.totals('other-ns', 'r', 't').requests).toBe(0);
  });

  it('stays bounded: the least recently reporting process is folded into the totals, not lost', () => {
    const totals = new TargetTotals(2);
    totals.report('ns', 'pod-a', report('b', 2, '20'));
    totals.report('ns', 'pod-b', report('b', 3, '30'));
    totals.report('ns', 'pod-c', report('b', 4, '40')); // pod-a is folded away
    expect(totals.totals('ns', 'r', 't')).toEqual({ requests: 9, successes: 6, errors: 3, costNano: 90n });
    totals.report('ns', 'pod-c', report('b', 5, '50'));
    expect(totals.totals('ns', 'r', 't').requests).toBe(10);
  });
});

describe('TargetTotals: reports of several routes and targets, and the bound', () => {
  const row = (route: string, target: string, requests: number, successes: number, errors: number, cost: string) => ({ route, target, requests, successes, errors, cost });

  it('one report may carry several targets of several routes; each route is changed once', () => {
    const totals = new TargetTotals();
    const changed = totals.report('ns', 'pod-a', {
      boot: 'b',
      targets: [row('r1', 'x', 1, 1, 0, '10'), row('r1', 'y', 2, 1, 1, '20'), row('r2', 'x', 4, 4, 0, '40')],
    });
    expect(changed).toEqual(['ns/r1', 'ns/r2']);
    expect(totals.totals('ns', 'r1', 'x')).toEqual({ requests: 1, successes: 1, errors: 0, costNano: 10n });
    expect(totals.totals('ns', 'r1', 'y')).toEqual({ requests: 2, successes: 1, errors: 1, costNano: 20n });
    expect(totals.totals('ns', 'r2', 'x')).toEqual({ requests: 4, successes: 4, errors: 0, costNano: 40n });
    expect(totals.totals('ns', 'r2', 'y')).toEqual({ requests: 0, successes: 0, errors: 0, costNano: 0n });
  });

  it('a route whose part of the report is unchanged is not changed; the routes after it still are', () => {
    const totals = new TargetTotals();
    totals.report('ns', 'pod-a', { boot: 'b', targets: [row('r1', 'x', 1, 1, 0, '10'), row('r2', 'x', 1, 1, 0, '10')] });
    expect(totals.report('ns', 'pod-a', { boot: 'b', targets: [row('r1', 'x', 1, 1, 0, '10'), row('r2', 'x', 2, 2, 0, '20')] })).toEqual(['ns/r2']);
    expect(totals.totals('ns', 'r2', 'x').requests).toBe(2);
  });

  it('any change of a count, of the cost or of the set of targets is a change', () => {
    const totals = new TargetTotals();
    const base = [row('r', 'x', 3, 2, 1, '30'), row('r', 'y', 1, 1, 0, '5')];
    totals.report('ns', 'p', { boot: 'b', targets: base });
    const variants = [
      [row('r', 'x', 4, 2, 1, '30'), base[1]!], // requests
      [row('r', 'x', 4, 3, 1, '30'), base[1]!], // successes
      [row('r', 'x', 4, 3, 2, '30'), base[1]!], // errors
      [row('r', 'x', 4, 3, 2, '31'), base[1]!], // cost
      [row('r', 'x', 4, 3, 2, '31')], // a target fewer
      [row('r', 'x', 4, 3, 2, '31'), row('r', 'z', 1, 1, 0, '5')], // another target of the same count
      [row('r', 'x', 4, 3, 2, '31'), row('r', 'z', 1, 1, 0, '5'), row('r', 'y', 1, 1, 0, '5')], // a target more
    ];
    for (const targets of variants) {
      expect(totals.report('ns', 'p', { boot: 'b', targets })).toEqual(['ns/r']);
      expect(totals.report('ns', 'p', { boot: 'b', targets })).toEqual([]);
    }
    expect(totals.totals('ns', 'r', 'x')).toEqual({ requests: 4, successes: 3, errors: 2, costNano: 31n });
    expect(totals.totals('ns', 'r', 'y')).toEqual({ requests: 1, successes: 1, errors: 0, costNano: 5n });
    expect(totals.totals('ns', 'r', 'z')).toEqual({ requests: 1, successes: 1, errors: 0, costNano: 5n });
  });

  it('the same pod under another boot, or another pod under the same boot, is another process', () => {
    const totals = new TargetTotals();
    totals.report('ns', 'pod-a', report('b1', 2, '20'));
    expect(totals.report('ns', 'pod-a', report('b2', 2, '20'))).toEqual(['ns/r']);
    expect(totals.report('ns', 'pod-b', report('b1', 2, '20'))).toEqual(['ns/r']);
    expect(totals.totals('ns', 'r', 't')).toEqual({ requests: 6, successes: 3, errors: 3, costNano: 60n });
  });

  it('routes of the same name in two namespaces are apart', () => {
    const totals = new TargetTotals();
    expect(totals.report('a', 'p', report('b', 2, '20'))).toEqual(['a/r']);
    expect(totals.report('b', 'p', report('b', 3, '30'))).toEqual(['b/r']);
    expect(totals.totals('a', 'r', 't').requests).toBe(2);
    expect(totals.totals('b', 'r', 't').requests).toBe(3);
  });

  it('keeps exactly maxProcessesPerRoute processes: a process at the bound is not folded, and reports on without counting twice', () => {
    const totals = new TargetTotals(2);
    totals.report('ns', 'pod-a', report('b', 2, '20'));
    totals.report('ns', 'pod-b', report('b', 3, '30'));
    totals.report('ns', 'pod-a', report('b', 5, '50')); // cumulative: replaces a's 2
    expect(totals.totals('ns', 'r', 't')).toEqual({ requests: 8, successes: 6, errors: 2, costNano: 80n });
  });

  it('folds the process that reported least recently: one that just reported again stays live', () => {
    const totals = new TargetTotals(2);
    totals.report('ns', 'pod-a', report('b', 2, '20'));
    totals.report('ns', 'pod-b', report('b', 3, '30'));
    totals.report('ns', 'pod-a', report('b', 5, '50')); // a is now the most recent
    totals.report('ns', 'pod-c', report('b', 4, '40')); // b (3) is folded, not a
    expect(totals.totals('ns', 'r', 't').requests).toBe(12);
    totals.report('ns', 'pod-a', report('b', 6, '60')); // a is live: replaces its 5
    expect(totals.totals('ns', 'r', 't')).toEqual({ requests: 13, successes: 10, errors: 3, costNano: 130n });
  });

  it('a report that leaves a route unchanged still counts as reporting to it: that live process is not the one folded', () => {
    const totals = new TargetTotals(2);
    totals.report('ns', 'pod-a', { boot: 'b', targets: [row('r1', 'x', 2, 2, 0, '20'), row('r2', 'x', 1, 1, 0, '10')] });
    totals.report('ns', 'pod-b', { boot: 'b', targets: [row('r1', 'x', 3, 3, 0, '30')] });
    // a reports again (traffic on r2 only): for r1 it is now the most recent reporter.
    expect(totals.report('ns', 'pod-a', { boot: 'b', targets: [row('r1', 'x', 2, 2, 0, '20'), row('r2', 'x', 5, 5, 0, '50')] })).toEqual(['ns/r2']);
    totals.report('ns', 'pod-c', { boot: 'b', targets: [row('r1', 'x', 4, 4, 0, '40')] }); // b is folded, not a
    expect(totals.totals('ns', 'r1', 'x')).toEqual({ requests: 9, successes: 9, errors: 0, costNano: 90n });
    totals.report('ns', 'pod-a', { boot: 'b', targets: [row('r1', 'x', 6, 6, 0, '60'), row('r2', 'x', 5, 5, 0, '50')] });
    // a (6) replaces its 2: b's 3 folded, c's 4; nothing counted twice.
    expect(totals.totals('ns', 'r1', 'x')).toEqual({ requests: 13, successes: 13, errors: 0, costNano: 130n });
    expect(totals.totals('ns', 'r2', 'x')).toEqual({ requests: 5, successes: 5, errors: 0, costNano: 50n });
  });

  it('what is folded adds up, per target, over several folds', () => {
    const totals = new TargetTotals(1);
    totals.report('ns', 'pod-a', { boot: 'b', targets: [row('r', 'x', 2, 2, 0, '20'), row('r', 'y', 1, 0, 1, '0')] });
    totals.report('ns', 'pod-b', { boot: 'b', targets: [row('r', 'x', 3, 3, 0, '30')] }); // a folded
    totals.report('ns', 'pod-c', { boot: 'b', targets: [row('r', 'x', 4, 3, 1, '40')] }); // b folded
    expect(totals.totals('ns', 'r', 'x')).toEqual({ requests: 9, successes: 8, errors: 1, costNano: 90n });
    expect(totals.totals('ns', 'r', 'y')).toEqual({ requests: 1, successes: 0, errors: 1, costNano: 0n });
    // The bound is per route: another route's processes do not fold these.
    totals.report('ns', 'pod-d', { boot: 'b', targets: [row('other', 'x', 7, 7, 0, '70')] });
    totals.report('ns', 'pod-c', { boot: 'b', targets: [row('r', 'x', 5, 4, 1, '50')] });
    expect(totals.totals('ns', 'r', 'x')).toEqual({ requests: 10, successes: 9, errors: 1, costNano: 100n });
  });
});

describe('TargetTotals: past the bound', () => {
  it('a folded process that reports again counts anew: its earlier part stays counted (why the bound is far above a route\'s sidecar count)', () => {
    const totals = new TargetTotals(2);
    totals.report('ns', 'pod-a', report('b', 2, '20'));
    totals.report('ns', 'pod-b', report('b', 3, '30'));
    expect(totals.totals('ns', 'r', 't').requests).toBe(5); // two processes: the bound, nothing folded
    totals.report('ns', 'pod-a', report('b', 4, '40'));
    expect(totals.totals('ns', 'r', 't').requests).toBe(7);
    totals.report('ns', 'pod-c', report('b', 1, '10')); // b (least recent) is folded: 3 kept
    totals.report('ns', 'pod-b', report('b', 5, '50')); // b again: 3 + 5; a (4) folded now
    expect(totals.totals('ns', 'r', 't')).toEqual({ requests: 13, successes: 9, errors: 4, costNano: 130n });
  });
});
