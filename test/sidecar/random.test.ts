import { describe, expect, it } from 'vitest';
import { randomToken, seededRandom } from '../../sidecar/random.js';

describe('randomToken', () => {
  it('gives each id its own bytes, across the pool refills', () => {
    // 24 bytes × 1,000 ids: the 4 KiB pool is refilled five times on the way.
    const ids = Array.from({ length: 1000 }, () => randomToken(24, 'hex'));
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{48}$/);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('encodes as asked, also for more bytes than the pool holds', () => {
    expect(randomToken(18, 'base64url')).toMatch(/^[A-Za-z0-9_-]{24}$/);
    const big = randomToken(5000, 'hex');
    expect(big).toMatch(/^[0-9a-f]{10000}$/);
    // Not a run of one byte (a pool never filled would be zeros or stale memory repeated).
    expect(new Set(big).size).toBeGreaterThan(8);
  });
});

describe('seededRandom', () => {
  it('repeats its sequence for a seed and stays in [0, 1)', () => {
    const a = seededRandom(7);
    const b = seededRandom(7);
    const xs = Array.from({ length: 100 }, () => a());
    expect(Array.from({ length: 100 }, () => b())).toEqual(xs);
    for (const x of xs) expect(x >= 0 && x < 1).toBe(true);
  });
});
