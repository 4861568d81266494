import { describe, expect, it } from 'vitest';
import { CircuitBreaker } from '../../../sidecar/router/breaker.js';

/** A breaker opened by `threshold` failures at time `at`. */
function opened(threshold: number, cooldownMs: number, at: number): CircuitBreaker {
  const b = new CircuitBreaker(threshold, cooldownMs);
  for (let i = 0; i < threshold; i++) b.onFailure(at);
  expect(b.state).toBe('open');
  return b;
}

describe('CircuitBreaker: closed', () => {
  it('lets everything through and stays closed below the threshold', () => {
    const b = new CircuitBreaker(3, 1000);
    expect(b.available(0)).toBe(true);
    expect(b.tryAcquire(0)).toBe(true);
    expect(b.tryAcquire(0)).toBe(true); // no probe reservation while closed
    expect(b.onFailure(0)).toBe(false);
    expect(b.onFailure(0)).toBe(false);
    expect(b.state).toBe('closed');
    expect(b.available(1)).toBe(true);
    expect(b.tryAcquire(1)).toBe(true);
  });

  it('opens on exactly the threshold-th consecutive failure', () => {
    const b = new CircuitBreaker(2, 1000);
    expect(b.onFailure(0)).toBe(false);
    expect(b.onFailure(0)).toBe(true);
    expect(b.state).toBe('open');
  });

  it('a success resets the count: failures must be consecutive', () => {
    const b = new CircuitBreaker(2, 1000);
    b.onFailure(0);
    b.onSuccess();
    expect(b.onFailure(0)).toBe(false);
    expect(b.state).toBe('closed');
    expect(b.onFailure(0)).toBe(true);
  });

  it('a threshold of 1 opens on the first failure', () => {
    const b = new CircuitBreaker(1, 1000);
    expect(b.onFailure(5)).toBe(true);
    expect(b.state).toBe('open');
  });
});

describe('CircuitBreaker: open', () => {
  it('refuses until the cooldown, counted from the failure that opened it, has passed', () => {
    const b = opened(2, 1000, 5000);
    expect(b.available(5000)).toBe(false);
    expect(b.tryAcquire(5000)).toBe(false);
    expect(b.available(5999)).toBe(false);
    expect(b.tryAcquire(5999)).toBe(false);
    expect(b.state).toBe('open');
    expect(b.available(6000)).toBe(true); // exactly the cooldown later
    expect(b.state).toBe('open'); // available() reserves nothing
    expect(b.tryAcquire(6000)).toBe(true);
    expect(b.state).toBe('half-open');
  });

  it('a late failure of a request sent while closed neither re-opens nor extends the cooldown', () => {
    const b = opened(1, 1000, 0);
    expect(b.onFailure(900)).toBe(false); // already open: not "this failure opened it"
    expect(b.state).toBe('open');
    expect(b.tryAcquire(1000)).toBe(true); // still 1000 ms after the opening, not after 900
  });
});

describe('CircuitBreaker: half-open', () => {
  it('lets exactly one probe through', () => {
    const b = opened(1, 100, 0);
    expect(b.tryAcquire(100)).toBe(true);
    expect(b.state).toBe('half-open');
    expect(b.available(100)).toBe(false);
    expect(b.tryAcquire(100)).toBe(false);
    expect(b.tryAcquire(10_000)).toBe(false); // the probe is still out, however long
  });

  it('closes when the probe succeeds, and then needs the full threshold again to open', () => {
    const b = opened(2, 100, 0);
    b.tryAcquire(100);
    b.onSuccess();
    expect(b.state).toBe('closed');
    expect(b.available(100)).toBe(true);
    expect(b.tryAcquire(100)).toBe(true);
    expect(b.tryAcquire(100)).toBe(true);
    expect(b.onFailure(101)).toBe(false);
    expect(b.onFailure(102)).toBe(true);
  });

  it('re-opens at once when the probe fails, with a fresh cooldown', () => {
    const b = opened(3, 100, 0);
    expect(b.tryAcquire(250)).toBe(true);
    expect(b.onFailure(260)).toBe(true); // one failure is enough in half-open
    expect(b.state).toBe('open');
    expect(b.available(359)).toBe(false);
    expect(b.tryAcquire(359)).toBe(false);
    expect(b.available(360)).toBe(true);
    expect(b.tryAcquire(360)).toBe(true);
    expect(b.state).toBe('half-open');
  });

  it('release() frees the probe without judging the target: still half-open', () => {
    const b = opened(1, 100, 0);
    b.tryAcquire(100);
    b.release();
    expect(b.state).toBe('half-open');
    expect(b.available(101)).toBe(true);
    expect(b.tryAcquire(101)).toBe(true);
    expect(b.available(101)).toBe(false);
  });

  it('takes a changed threshold and cooldown (a config reload)', () => {
    const b = new CircuitBreaker(5, 100);
    b.threshold = 1;
    b.cooldownMs = 50;
    expect(b.onFailure(0)).toBe(true);
    expect(b.tryAcquire(50)).toBe(true);
  });
});
