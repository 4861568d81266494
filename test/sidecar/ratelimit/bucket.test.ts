import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../../sidecar/ratelimit/bucket.js';

describe('TokenBucket', () => {
  it('starts full and refills continuously at capacity per window', () => {
    const b = new TokenBucket(60, 60_000, 0);
    expect(b.available(0)).toBe(60);
    b.take(60, 0);
    expect(b.available(0)).toBe(0);
    expect(b.available(1_000)).toBe(1);
    expect(b.available(30_000)).toBe(30);
    expect(b.available(90_000)).toBe(60); // never above capacity
  });

  it('refills a per-day limit over 86400 s', () => {
    const b = new TokenBucket(86_400, 86_400_000, 0);
    b.take(86_400, 0);
    expect(b.available(3_600_000)).toBe(3_600);
  });

  it('says how long until an amount fits, Infinity when it never can', () => {
    const b = new TokenBucket(600, 60_000, 0);
    b.take(590, 0);
    expect(b.fits(10, 0)).toBe(true);
    expect(b.waitMs(10, 0)).toBe(0);
    expect(b.fits(40, 0)).toBe(false);
    expect(b.waitMs(40, 0)).toBe(3_000); // 30 more at 10 per second
    expect(b.waitMs(601, 0)).toBe(Infinity);
    expect(b.waitMs(41, 0)).toBe(3_100);
  });

  it('gives back at most up to capacity, and a settlement may take it below zero', () => {
    const b = new TokenBucket(100, 60_000, 0);
    b.take(30, 0);
    b.give(50, 0);
    expect(b.available(0)).toBe(100);
    b.take(130, 0);
    expect(b.available(0)).toBe(-30);
    expect(b.remaining(0)).toBe(0);
    expect(b.waitMs(10, 0)).toBe(24_000); // the debt first: 40 at 100 per minute
  });

  it('remaining is whole units, reset is the time until full', () => {
    const b = new TokenBucket(60, 60_000, 0);
    b.take(10, 0);
    expect(b.remaining(500)).toBe(50); // 50.5
    expect(b.resetMs(500)).toBe(9_500);
    expect(b.resetMs(10_000)).toBe(0);
  });

  it('does not go back in time', () => {
    const b = new TokenBucket(60, 60_000, 10_000);
    b.take(60, 10_000);
    expect(b.available(5_000)).toBe(0);
    expect(b.available(11_000)).toBe(1);
  });

  it('resize keeps what was used', () => {
    const b = new TokenBucket(100, 60_000, 0);
    b.take(40, 0);
    b.resize(200, 0);
    expect([b.capacity, b.available(0)]).toEqual([200, 160]);
    b.resize(50, 0);
    expect([b.capacity, b.available(0)]).toEqual([50, 10]);
    b.resize(50, 0);
    expect(b.available(0)).toBe(10);
  });

  it('setShare: a higher share comes filled only by the credit, a lower one keeps at most the new capacity', () => {
    const b = new TokenBucket(0, 60_000, 0);
    expect(b.waitMs(1, 0)).toBe(Infinity); // no share: nothing ever fits
    b.setShare(600, 100, 0);
    expect(b.capacity).toBe(600);
    expect(b.available(0)).toBe(100);
    expect(b.available(1_000)).toBe(110); // refills at the new share
    b.setShare(1_200, 5_000, 1_000);
    expect(b.available(1_000)).toBe(710); // credit never above the increase
    b.setShare(300, 999, 1_000);
    expect(b.available(1_000)).toBe(300);
    b.take(350, 1_000);
    b.setShare(200, 0, 1_000);
    expect(b.available(1_000)).toBe(-50); // a debt stays
    b.setShare(0, 0, 1_000);
    expect(b.available(61_000)).toBe(-50);
  });
});
