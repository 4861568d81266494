import { describe, expect, it } from 'vitest';
import { backoffMs, ewma, orderTargets, parseRetryAfter, upstreamRetryAfter, type Candidate } from '../../../sidecar/router/strategy.js';
import { CircuitBreaker } from '../../../sidecar/router/breaker.js';

const c = (index: number, over: Partial<Candidate> = {}): Candidate => ({ index, weight: 1, unitPrice: undefined, latencyMs: undefined, ...over });

/** A seeded PRNG so weighted draws are reproducible. */
function seeded(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  };
}

describe('orderTargets', () => {
  it('fallback keeps the declared order', () => {
    expect(orderTargets('fallback', [c(0), c(1), c(2)], Math.random).map((x) => x.index)).toEqual([0, 1, 2]);
  });

  it('cheapest orders by unit price, unknown prices last, ties stable', () => {
    const out = orderTargets('cheapest', [c(0, { unitPrice: 50n }), c(1), c(2, { unitPrice: 10n }), c(3, { unitPrice: 50n })], Math.random);
    expect(out.map((x) => x.index)).toEqual([2, 0, 3, 1]);
  });

  it('lowestLatency tries unmeasured targets first, then the fastest', () => {
    const out = orderTargets('lowestLatency', [c(0, { latencyMs: 300 }), c(1, { latencyMs: 20 }), c(2)], Math.random);
    expect(out.map((x) => x.index)).toEqual([2, 1, 0]);
  });

  it('weighted splits first picks by weight (seeded) and never picks weight 0', () => {
    const random = seeded(42);
    const firsts = [0, 0, 0];
    for (let i = 0; i < 10_000; i++) {
      const order = orderTargets('weighted', [c(0, { weight: 80 }), c(1, { weight: 20 }), c(2, { weight: 0 })], random);
      firsts[order[0]!.index]!++;
      expect(order).toHaveLength(2);
    }
    expect(firsts[2]).toBe(0);
    expect(firsts[0]! / 10_000).toBeGreaterThan(0.77);
    expect(firsts[0]! / 10_000).toBeLessThan(0.83);
  });

  it('weighted is deterministic for a given seed', () => {
    const run = () => {
      const r = seeded(7);
      return Array.from({ length: 20 }, () => orderTargets('weighted', [c(0, { weight: 1 }), c(1, { weight: 1 })], r)[0]!.index);
    };
    expect(run()).toEqual(run());
  });
});

describe('backoff, Retry-After and EWMA', () => {
  it('backs off exponentially with full jitter under the cap', () => {
    expect(backoffMs(0, 100, 2000, () => 0.999)).toBe(99);
    expect(backoffMs(3, 100, 2000, () => 0.999)).toBe(799);
    expect(backoffMs(10, 100, 2000, () => 0.5)).toBe(1000);
    expect(backoffMs(2, 100, 2000, () => 0)).toBe(0);
  });

  it('parses Retry-After seconds and HTTP dates', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('2', now)).toBe(2000);
    expect(parseRetryAfter('0.5', now)).toBe(500);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:03 GMT', now)).toBe(3000);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });

  it('prefers retry-after-ms (Azure OpenAI, OpenAI) over the whole seconds of retry-after', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(upstreamRetryAfter({ 'retry-after-ms': '200', 'retry-after': '1' }, now)).toBe(200);
    expect(upstreamRetryAfter({ 'retry-after': '1' }, now)).toBe(1000);
    expect(upstreamRetryAfter({ 'retry-after-ms': 'soon', 'retry-after': '2' }, now)).toBe(2000);
    expect(upstreamRetryAfter({}, now)).toBeUndefined();
  });

  it('averages latency exponentially', () => {
    expect(ewma(undefined, 100)).toBe(100);
    expect(ewma(100, 200)).toBeCloseTo(130);
  });
});

describe('CircuitBreaker', () => {
  it('opens after N consecutive failures, probes once after the cooldown, closes on success', () => {
    const b = new CircuitBreaker(3, 1000);
    expect(b.onFailure(0)).toBe(false);
    b.onSuccess(); // resets the count
    b.onFailure(0);
    b.onFailure(0);
    expect(b.onFailure(10)).toBe(true);
    expect(b.state).toBe('open');
    expect(b.tryAcquire(500)).toBe(false);
    expect(b.available(1010)).toBe(true);
    expect(b.tryAcquire(1010)).toBe(true);
    expect(b.state).toBe('half-open');
    expect(b.tryAcquire(1011)).toBe(false); // one probe at a time
    b.onSuccess();
    expect(b.state).toBe('closed');
    expect(b.tryAcquire(1012)).toBe(true);
  });

  it('re-opens when the half-open probe fails', () => {
    const b = new CircuitBreaker(1, 100);
    b.onFailure(0);
    expect(b.tryAcquire(100)).toBe(true);
    expect(b.onFailure(100)).toBe(true);
    expect(b.tryAcquire(150)).toBe(false);
    expect(b.tryAcquire(200)).toBe(true);
  });

  it('release() frees the probe without judging the target', () => {
    const b = new CircuitBreaker(1, 100);
    b.onFailure(0);
    expect(b.tryAcquire(100)).toBe(true);
    b.release();
    expect(b.tryAcquire(101)).toBe(true);
  });
});

/** A random() that returns the given values in turn (and fails loudly when they run out). */
function script(...values: number[]): () => number {
  return () => {
    const v = values.shift();
    if (v === undefined) throw new Error('random() called more often than scripted');
    return v;
  };
}

const indexes = (out: Candidate[]) => out.map((x) => x.index);

describe('orderTargets: exact orders', () => {
  it('fallback copies the declared order and draws no random number', () => {
    const input = [c(2), c(0), c(1)];
    const out = orderTargets('fallback', input, script());
    expect(indexes(out)).toEqual([2, 0, 1]);
    expect(out).not.toBe(input);
  });

  it('cheapest puts unknown prices last wherever they are declared, ties in declared order', () => {
    const p = (i: number, unitPrice?: bigint) => c(i, { unitPrice });
    expect(indexes(orderTargets('cheapest', [p(0), p(1, 20n), p(2), p(3, 10n)], script()))).toEqual([3, 1, 0, 2]);
    expect(indexes(orderTargets('cheapest', [p(0), p(1), p(2)], script()))).toEqual([0, 1, 2]);
    expect(indexes(orderTargets('cheapest', [p(0, 30n), p(1, 20n), p(2, 10n)], script()))).toEqual([2, 1, 0]);
    expect(indexes(orderTargets('cheapest', [p(0, 10n), p(1, 20n), p(2, 30n)], script()))).toEqual([0, 1, 2]);
    expect(indexes(orderTargets('cheapest', [p(0, 5n), p(1, 5n), p(2, 5n)], script()))).toEqual([0, 1, 2]);
    expect(indexes(orderTargets('cheapest', [p(0), p(1, 0n)], script()))).toEqual([1, 0]); // a price of 0 is known
    expect(indexes(orderTargets('cheapest', [p(0, 7n), p(1), p(2, 7n), p(3), p(4, 1n)], script()))).toEqual([4, 0, 2, 1, 3]);
  });

  it('cheapest leaves the input array as it was', () => {
    const input = [c(0, { unitPrice: 9n }), c(1, { unitPrice: 1n })];
    orderTargets('cheapest', input, script());
    expect(indexes(input)).toEqual([0, 1]);
  });

  it('lowestLatency: unmeasured first (before even a 0 ms target), then ascending, ties stable', () => {
    const l = (i: number, latencyMs?: number) => c(i, { latencyMs });
    expect(indexes(orderTargets('lowestLatency', [l(0, 0.5), l(1), l(2, 0)], script()))).toEqual([1, 2, 0]);
    expect(indexes(orderTargets('lowestLatency', [l(0, 30), l(1, 10), l(2, 20)], script()))).toEqual([1, 2, 0]);
    expect(indexes(orderTargets('lowestLatency', [l(0, 10), l(1, 20), l(2, 30)], script()))).toEqual([0, 1, 2]);
    expect(indexes(orderTargets('lowestLatency', [l(0, 10), l(1, 10), l(2), l(3)], script()))).toEqual([2, 3, 0, 1]);
    const input = [l(0, 50), l(1, 5)];
    orderTargets('lowestLatency', input, script());
    expect(indexes(input)).toEqual([0, 1]);
  });

  it('weighted: each draw picks by weight among the targets left, one random number per pick', () => {
    const w = (i: number, weight: number) => c(i, { weight });
    // weights 1,2,1 (total 4): 0.5 → r = 2 → past 0 (1), inside 1 (1+2); then 1,1 (total 2): 0.75 → r = 1.5 → 2; then 0.
    expect(indexes(orderTargets('weighted', [w(0, 1), w(1, 2), w(2, 1)], script(0.5, 0.75, 0)))).toEqual([1, 2, 0]);
    // r = 0 picks the first; a draw just below 1 picks the last.
    expect(indexes(orderTargets('weighted', [w(0, 1), w(1, 2), w(2, 1)], script(0, 0.99, 0.2)))).toEqual([0, 2, 1]);
    expect(indexes(orderTargets('weighted', [w(0, 3), w(1, 1)], script(0.7499, 0)))).toEqual([0, 1]);
    expect(indexes(orderTargets('weighted', [w(0, 3), w(1, 1)], script(0.75, 0)))).toEqual([1, 0]); // a boundary belongs to the next target
    expect(indexes(orderTargets('weighted', [w(0, 1), w(1, 1)], script(0.5, 0)))).toEqual([1, 0]);
  });

  it('weighted leaves out weight-0 targets and draws only for the rest', () => {
    const w = (i: number, weight: number) => c(i, { weight });
    expect(indexes(orderTargets('weighted', [w(0, 0), w(1, 5), w(2, 0), w(3, 5)], script(0.6, 0)))).toEqual([3, 1]);
    expect(orderTargets('weighted', [w(0, 0)], script())).toEqual([]);
    expect(orderTargets('weighted', [], script())).toEqual([]);
  });
});

describe('backoffMs: exact', () => {
  it('is floor(random × min(max, initial·2^retry))', () => {
    expect(backoffMs(0, 100, 2000, () => 0.5)).toBe(50);
    expect(backoffMs(1, 100, 2000, () => 0.5)).toBe(100);
    expect(backoffMs(4, 100, 2000, () => 0.5)).toBe(800);
    expect(backoffMs(5, 100, 2000, () => 0.5)).toBe(1000); // 3200 capped at 2000
    expect(backoffMs(1, 100, 150, () => 0.999)).toBe(149);
    expect(backoffMs(0, 0, 2000, () => 0.9)).toBe(0);
  });
});

describe('ewma: exact', () => {
  it('is the first sample, then 0.3·sample + 0.7·previous', () => {
    expect(ewma(undefined, 42)).toBe(42);
    expect(ewma(0, 100)).toBeCloseTo(30, 10);
    expect(ewma(100, 0)).toBeCloseTo(70, 10);
    expect(ewma(100, 200, 0.5)).toBeCloseTo(150, 10);
  });
});

describe('Retry-After: exact', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');

  it('retry-after-ms: whole and fractional ms (rounded up), surrounding space, first of repeated headers', () => {
    expect(upstreamRetryAfter({ 'retry-after-ms': '1500' }, now)).toBe(1500);
    expect(upstreamRetryAfter({ 'retry-after-ms': '1.2' }, now)).toBe(2);
    expect(upstreamRetryAfter({ 'retry-after-ms': '1.25' }, now)).toBe(2);
    expect(upstreamRetryAfter({ 'retry-after-ms': '0' }, now)).toBe(0);
    expect(upstreamRetryAfter({ 'retry-after-ms': ' 250 ' }, now)).toBe(250);
    expect(upstreamRetryAfter({ 'retry-after-ms': ['300', '900'] }, now)).toBe(300);
  });

  it('a retry-after-ms that is not a plain number falls back to retry-after', () => {
    for (const bad of ['x200', '200x', '1.', '.5', '1.2.3', '-5', '1e3', '', ' ']) {
      expect(upstreamRetryAfter({ 'retry-after-ms': bad, 'retry-after': '3' }, now)).toBe(3000);
    }
    expect(upstreamRetryAfter({ 'retry-after-ms': [], 'retry-after': '3' }, now)).toBe(3000);
    expect(upstreamRetryAfter({ 'retry-after-ms': 'soon' }, now)).toBeUndefined();
  });

  it('retry-after: seconds (fractions rounded up to the ms), multi-digit, first of repeated headers', () => {
    expect(parseRetryAfter('12', now)).toBe(12_000);
    expect(parseRetryAfter('0', now)).toBe(0);
    expect(parseRetryAfter('1.0005', now)).toBe(1001);
    expect(parseRetryAfter(' 7 ', now)).toBe(7000);
    expect(parseRetryAfter(['4', '9'], now)).toBe(4000);
    expect(parseRetryAfter([], now)).toBeUndefined();
    expect(parseRetryAfter('', now)).toBeUndefined();
  });

  it('retry-after: an HTTP date in the future is the time until it; one in the past is 0', () => {
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:01:00 GMT', now)).toBe(60_000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:59:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:00 GMT', now)).toBe(0);
  });

  it('retry-after: neither seconds nor a date is no Retry-After', () => {
    for (const bad of ['x5', '5x', '1e3', 'soon']) expect(parseRetryAfter(bad, now)).toBeUndefined();
  });
});
