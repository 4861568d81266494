/**
 * Reading untyped JSON values (provider answers, usage objects). A leaf module: usage.ts and the
 * adapters' providers/wire.ts both read wire JSON, and neither imports the other.
 */

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A finite number from a wire field, else 0 (usage counters may be absent or null). */
export function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}
