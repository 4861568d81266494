/**
 * Money in paygo: an integer number of nano-dollars (1 nano-USD = 1e-9 USD), always a `bigint`.
 *
 * Why bigint throughout, never `number`:
 *  - Intermediate products overflow 2^53 in ordinary use. A price is held as nano-USD per
 *    million tokens (e.g. $75/M = 75_000_000_000); times a 1M-token prompt that is 7.5e16,
 *    already above Number.MAX_SAFE_INTEGER (9.007e15). The rounding rule below divides only
 *    once, after summing such products, so they must be exact.
 *  - Totals are safe as `number` only up to ~$9 million; cluster-wide spend counters can grow
 *    past that, and a second representation invites mixing. One type, no proofs needed.
 *  - Conversion to a float happens only at the very edge that demands one (the Prometheus
 *    counter), never before summing.
 *
 * Prices are kept as nano-USD per MILLION units (tokens), as bigint: a CRD decimal such as
 * "0.15" (USD per million tokens, at most 9 decimals) is exactly 150_000_000n nano-USD/M.
 *
 * THE ROUNDING RULE (one request, one rounding):
 *
 *     costNano = roundHalfUp( Σ_kinds tokens_kind × priceNanoPerMillion_kind  /  1_000_000 )
 *
 * The sum of the exact integer products is formed first; it is divided by 1e6 once and rounded
 * to a whole nano-dollar, half up (x.5 → x+1). So a request never gains or loses more than half a
 * nano-dollar, the result does not depend on how the usage is split into kinds, and the same
 * usage always costs the same. Example: 1 token at $0.15/M is 150_000_000 / 1e6 = 150 nano;
 * 3 tokens at $0.0000005/M (500 nano/M) is 1500 / 1e6 = 0.0015 → 0; 1 token at $0.0005/M is
 * 500_000 / 1e6 = 0.5 → 1 nano (half up). See `costFromPerMillion`.
 *
 * Formatting: `formatUsd` always prints a fixed number of decimals (9 by default, e.g.
 * "0.000123450"), never exponent notation and never trimmed, so headers, CRD status and logs
 * are stable, sort lexically within equal integer widths, and parse back exactly with `parseUsd`.
 */

export const NANO_PER_USD = 1_000_000_000n;
export const UNITS_PER_MILLION = 1_000_000n;
const USD_DECIMALS = 9;

const DECIMAL_RE = /^(\d+)(?:\.(\d{1,9}))?$/;

/**
 * Exact decimal USD string → nano-USD. Accepts digits with an optional fraction of 1 to 9
 * digits ("250", "250.00", "0.000000001"). Rejects negatives, signs, exponents, whitespace,
 * empty parts ("1.", ".5"), more than 9 decimals and anything else, with a RangeError.
 */
export function parseUsd(decimal: string): bigint {
  if (typeof decimal !== 'string') throw new TypeError(`USD amount must be a string, got ${typeof decimal}`);
  const m = DECIMAL_RE.exec(decimal);
  if (!m) {
    throw new RangeError(`invalid USD amount ${JSON.stringify(decimal)}: expected a non-negative decimal with at most 9 decimals, e.g. "250.00"`);
  }
  const whole = m[1] ?? '0';
  const frac = (m[2] ?? '').padEnd(USD_DECIMALS, '0');
  return BigInt(whole) * NANO_PER_USD + BigInt(frac);
}

/** USD per million tokens as a decimal string (CRD pricing) → nano-USD per million tokens. Same grammar as parseUsd. */
export const parsePerMillionUsd = parseUsd;

/**
 * nano-USD → decimal USD string with exactly `decimals` decimals (0..9, default 9), no
 * exponent, no thousands separators, "-" for negative amounts. With fewer than 9 decimals the
 * amount is rounded half away from zero; a result that rounds to zero has no sign.
 *   formatUsd(123_450n) === "0.000123450"; formatUsd(250_000_000_000n, 2) === "250.00"
 */
export function formatUsd(nano: bigint, decimals: number = USD_DECIMALS): string {
  if (!Number.isInteger(decimals) || decimals < 0 || decimals > USD_DECIMALS) {
    throw new RangeError(`decimals must be an integer from 0 to ${USD_DECIMALS}, got ${decimals}`);
  }
  const neg = nano < 0n;
  let abs = neg ? -nano : nano;
  const drop = 10n ** BigInt(USD_DECIMALS - decimals);
  abs = divRoundHalfUp(abs, drop);
  const s = abs.toString().padStart(decimals + 1, '0');
  const sign = neg && abs !== 0n ? '-' : '';
  return decimals === 0 ? `${sign}${s}` : `${sign}${s.slice(0, -decimals)}.${s.slice(-decimals)}`;
}

/**
 * numerator / denominator rounded to the nearest integer, halves away from zero (for the
 * non-negative amounts of money this is "half up"). denominator must be positive.
 */
export function divRoundHalfUp(numerator: bigint, denominator: bigint): bigint {
  if (denominator <= 0n) throw new RangeError('denominator must be positive');
  const neg = numerator < 0n;
  const n = neg ? -numerator : numerator;
  const q = n / denominator;
  const r = n % denominator;
  const rounded = r * 2n >= denominator ? q + 1n : q;
  return neg ? -rounded : rounded;
}

/** One priced quantity: `quantity` units (tokens; requests) at `nanoPerMillion` nano-USD per million units. */
export interface PricedQuantity {
  quantity: bigint;
  nanoPerMillion: bigint;
}

/** THE rounding rule: Σ quantity × nanoPerMillion, exactly, then ÷ 1e6 once, rounded half up. */
export function costFromPerMillion(lines: Iterable<PricedQuantity>): bigint {
  let numerator = 0n;
  for (const l of lines) numerator += l.quantity * l.nanoPerMillion;
  return divRoundHalfUp(numerator, UNITS_PER_MILLION);
}

/**
 * A token count from a provider as a bigint: NaN, infinities and negatives count as 0; a
 * fractional count (no provider sends one) is rounded half up.
 */
export function tokenCount(n: number): bigint {
  if (!Number.isFinite(n) || n <= 0) return 0n;
  return BigInt(Math.round(n));
}

/**
 * A USD amount the price catalog holds as a JavaScript number (e.g. 0.15 per million tokens)
 * → nano-USD, without float arithmetic: the number is read as its shortest round-trip decimal
 * (`String(x)`: exactly the literal in the catalog's data, e.g. "0.15", "0.0028", "1e-7") and
 * that decimal is scaled by 1e9 with integers. Exact for up to 9 decimals, which covers the
 * catalog's token prices; the few with more (e.g. 0.08333333333333334) are rounded half up to
 * a whole nano-USD per million units (an error below 1e-15 USD per token).
 */
export function usdNumberToNano(x: number): bigint {
  if (!Number.isFinite(x) || x < 0) throw new RangeError(`invalid USD amount ${x}: expected a finite non-negative number`);
  const m = /^(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$/.exec(String(x));
  if (!m) throw new RangeError(`cannot read USD amount ${x}`);
  const digits = (m[1] ?? '0') + (m[2] ?? '');
  // value = digits × 10^(exp − fractionDigits); nano = value × 10^9
  const shift = Number(m[3] ?? '0') - (m[2] ?? '').length + USD_DECIMALS;
  const n = BigInt(digits);
  return shift >= 0 ? n * 10n ** BigInt(shift) : divRoundHalfUp(n, 10n ** BigInt(-shift));
}
