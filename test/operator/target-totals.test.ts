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
