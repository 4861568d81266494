import { describe, expect, it } from 'vitest';
import {
  NANO_PER_USD,
  costFromPerMillion,
  divRoundHalfUp,
  formatUsd,
  parseUsd,
  tokenCount,
  usdNumberToNano,
} from '../../crds/src/money.js';

describe('parseUsd', () => {
  it.each([
    ['250.00', 250_000_000_000n],
    ['250', 250_000_000_000n],
    ['0', 0n],
    ['0.0', 0n],
    ['0.000000001', 1n],
    ['1.5', 1_500_000_000n],
    ['0.15', 150_000_000n],
    ['007.50', 7_500_000_000n],
    ['123456789012.123456789', 123_456_789_012_123_456_789n],
    ['99999999999999999999', 99_999_999_999_999_999_999n * NANO_PER_USD],
  ])('%s → %s nano', (s, nano) => {
    expect(parseUsd(s)).toBe(nano);
  });

  it.each(['1.0000000001', '-1', '-0.5', '+1', '1e3', ' 1', '1 ', '1.', '.5', '', 'abc', '1,5', '0x10', '1.2.3', 'NaN', 'Infinity', '١'])(
    'rejects %j',
    (s) => {
      expect(() => parseUsd(s)).toThrow(RangeError);
    },
  );

  it('rejects non-strings at runtime', () => {
    expect(() => parseUsd(12 as unknown as string)).toThrow(TypeError);
  });
});

describe('formatUsd', () => {
  it('always prints 9 decimals by default', () => {
    expect(formatUsd(123_450n)).toBe('0.000123450');
    expect(formatUsd(0n)).toBe('0.000000000');
    expect(formatUsd(1n)).toBe('0.000000001');
    expect(formatUsd(250_000_000_000n)).toBe('250.000000000');
    expect(formatUsd(-1_500_000_000n)).toBe('-1.500000000');
    expect(formatUsd(10n ** 30n)).toBe('1000000000000000000000.000000000');
  });

  it('rounds half away from zero with fewer decimals, never prints -0', () => {
    expect(formatUsd(250_000_000_000n, 2)).toBe('250.00');
    expect(formatUsd(4_999_999n, 2)).toBe('0.00');
    expect(formatUsd(5_000_000n, 2)).toBe('0.01');
    expect(formatUsd(-5_000_000n, 2)).toBe('-0.01');
    expect(formatUsd(-4_000_000n, 2)).toBe('0.00');
    expect(formatUsd(1_500_000_000n, 0)).toBe('2');
    expect(formatUsd(1_499_999_999n, 0)).toBe('1');
    expect(formatUsd(123_456_789n, 6)).toBe('0.123457');
  });

  it('round-trips through parseUsd', () => {
    for (const n of [0n, 1n, 999_999_999n, 1_000_000_000n, 123_456_789_012_345n, 10n ** 25n + 7n]) {
      expect(parseUsd(formatUsd(n))).toBe(n);
    }
  });

  it('rejects bad decimals', () => {
    expect(() => formatUsd(1n, 10)).toThrow(RangeError);
    expect(() => formatUsd(1n, -1)).toThrow(RangeError);
    expect(() => formatUsd(1n, 1.5)).toThrow(RangeError);
  });
});

describe('divRoundHalfUp', () => {
  it.each([
    [0n, 10n, 0n],
    [4n, 10n, 0n],
    [5n, 10n, 1n],
    [14n, 10n, 1n],
    [15n, 10n, 2n],
    [-5n, 10n, -1n],
    [-4n, 10n, 0n],
    [999_999n, 1_000_000n, 1n],
    [499_999n, 1_000_000n, 0n],
    [500_000n, 1_000_000n, 1n],
  ])('%s / %s → %s', (n, d, q) => {
    expect(divRoundHalfUp(n, d)).toBe(q);
  });

  it('rejects a non-positive denominator', () => {
    expect(() => divRoundHalfUp(1n, 0n)).toThrow(RangeError);
  });
});

describe('costFromPerMillion (the rounding rule)', () => {
  it('prices exactly: 1000 tokens at $0.15/M = 150000 nano', () => {
    expect(costFromPerMillion([{ quantity: 1000n, nanoPerMillion: 150_000_000n }])).toBe(150_000n);
  });

  it('rounds a half nano-dollar up', () => {
    // 1 token at $0.0005/M = 500_000 nano/M → 0.5 nano → 1
    expect(costFromPerMillion([{ quantity: 1n, nanoPerMillion: 500_000n }])).toBe(1n);
    // 1 token at $0.000499999/M → 0.499999 nano → 0
    expect(costFromPerMillion([{ quantity: 1n, nanoPerMillion: 499_999n }])).toBe(0n);
  });

  it('rounds once, after summing all kinds (not per kind)', () => {
    // 0.4 nano + 0.1 nano = 0.5 → 1 (per-kind rounding would give 0 + 0)
    expect(
      costFromPerMillion([
        { quantity: 1n, nanoPerMillion: 400_000n },
        { quantity: 1n, nanoPerMillion: 100_000n },
      ]),
    ).toBe(1n);
    // 3 × 0.4 nano: per-kind rounding would give 0; the rule gives round(1.2) = 1
    expect(
      costFromPerMillion([
        { quantity: 1n, nanoPerMillion: 400_000n },
        { quantity: 1n, nanoPerMillion: 400_000n },
        { quantity: 1n, nanoPerMillion: 400_000n },
      ]),
    ).toBe(1n);
  });

  it('tiny usage at the smallest price', () => {
    // $0.000000001/M = 1 nano per million tokens
    expect(costFromPerMillion([{ quantity: 499_999n, nanoPerMillion: 1n }])).toBe(0n);
    expect(costFromPerMillion([{ quantity: 500_000n, nanoPerMillion: 1n }])).toBe(1n);
    expect(costFromPerMillion([{ quantity: 0n, nanoPerMillion: 75_000_000_000n }])).toBe(0n);
    expect(costFromPerMillion([])).toBe(0n);
  });

  it('stays exact past 2^53', () => {
    // 10M tokens at $75/M: the product 7.5e17 is far above Number.MAX_SAFE_INTEGER
    expect(costFromPerMillion([{ quantity: 10_000_000n, nanoPerMillion: 75_000_000_000n }])).toBe(750_000_000_000n);
    expect(costFromPerMillion([{ quantity: 9_007_199_254_740_993n, nanoPerMillion: 1_000_000n }])).toBe(9_007_199_254_740_993n);
  });
});

describe('tokenCount', () => {
  it.each([
    [7, 7n],
    [0, 0n],
    [-5, 0n],
    [Number.NaN, 0n],
    [Number.POSITIVE_INFINITY, 0n],
    [2.5, 3n],
    [2.4, 2n],
  ])('%s → %s', (n, t) => {
    expect(tokenCount(n)).toBe(t);
  });
});

describe('usdNumberToNano (catalog floats)', () => {
  it.each([
    [0.15, 150_000_000n],
    [0.075, 75_000_000n],
    [22.5, 22_500_000_000n],
    [0.135, 135_000_000n],
    [28e-4, 2_800_000n],
    [3625e-6, 3_625_000n],
    [0.1 + 0.2, 300_000_000n], // 0.30000000000000004: shortest decimal has 17 places, rounded at 9
    [1e-7, 100n],
    [1e-9, 1n],
    [5e-10, 1n],
    [4e-10, 0n],
    [0.08333333333333334, 83_333_333n],
    [0, 0n],
    [1e21, 10n ** 30n],
  ])('%s → %s', (x, nano) => {
    expect(usdNumberToNano(x)).toBe(nano);
  });

  it('rejects non-finite and negative numbers', () => {
    for (const x of [Number.NaN, Number.POSITIVE_INFINITY, -1]) expect(() => usdNumberToNano(x)).toThrow(RangeError);
  });
});
