import fc from 'fast-check';

/**
 * Settings of the property-based tests (fast-check): a fixed seed and a bounded number of runs in
 * `make test`'s unit tier; `make fuzz` sets FUZZ_RUNS (and FUZZ_SEED for another sample).
 */
export const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 20_260_106);
export const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? 100);

/** fc.assert parameters for a property: the suite's seed, `scale` × FUZZ_RUNS runs. */
export function fuzzParams(scale = 1): fc.Parameters<unknown> {
  return { seed: FUZZ_SEED, numRuns: Math.max(1, Math.round(FUZZ_RUNS * scale)), endOnFailure: true };
}

/** Cuts bytes at the given offsets (any order, duplicates and out-of-range ones allowed): empty pieces included. */
export function cutAt(bytes: Uint8Array, offsets: readonly number[]): Uint8Array[] {
  // Duplicates stay: a repeated point is an empty piece (undici may hand over empty chunks).
  const points = offsets.map((o) => Math.min(bytes.length, Math.max(0, o))).sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let from = 0;
  for (const p of points) {
    pieces.push(bytes.subarray(from, p));
    from = p;
  }
  pieces.push(bytes.subarray(from));
  return pieces;
}

/** Arbitrary cut points for a byte stream of up to `max` bytes. */
export const cuts = (max: number) => fc.array(fc.nat({ max }), { maxLength: 40 });

/** Bytes that are not valid UTF-8 on their own: lone continuation bytes, truncated sequences, overlongs, surrogates. */
export const badUtf8 = fc.constantFrom(
  Uint8Array.of(0x80),
  Uint8Array.of(0xbf, 0xbf),
  Uint8Array.of(0xc0, 0xaf),
  Uint8Array.of(0xe2, 0x82),
  Uint8Array.of(0xed, 0xa0, 0x80),
  Uint8Array.of(0xf0, 0x9f, 0x98),
  Uint8Array.of(0xff, 0xfe),
  Uint8Array.of(0xf8, 0x88, 0x80, 0x80, 0x80),
);

/** JSON nested `depth` levels deep (arrays, or objects under key "a"). */
export function deepJson(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array' ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
}
