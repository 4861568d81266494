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
