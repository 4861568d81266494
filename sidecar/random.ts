import { randomBytes, randomFillSync } from 'node:crypto';

/** mulberry32: a tiny seeded PRNG in [0, 1), for reproducible routing draws and simulated errors. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Cryptographically random bytes, handed out once each, from a pool refilled 4 KiB at a time. */
const POOL = Buffer.allocUnsafe(4096);
let poolOffset = POOL.length;

/**
 * `bytes` random bytes as hex or base64url, for the ids the sidecar issues (resp_…, msg_…).
 * From a pool, as crypto.randomUUID does: crypto.randomBytes per id (a job in C++ each call)
 * cost ≈ 70 µs of a stream's first byte once the sidecar had idled; the pool ≈ 1 µs.
 */
export function randomToken(bytes: number, encoding: 'hex' | 'base64url'): string {
  if (bytes > POOL.length) return randomBytes(bytes).toString(encoding);
  if (poolOffset + bytes > POOL.length) {
    randomFillSync(POOL);
    poolOffset = 0;
  }
  const id = POOL.toString(encoding, poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return id;
}
