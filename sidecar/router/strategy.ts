/**
 * Orders a route's targets for one request. The first is tried first; the rest are the
 * failover order. Pure functions of their inputs (randomness injected) so tests are exact.
 */
export interface Candidate {
  index: number;
  weight: number;
  /** Comparable unit price (e.g. nano-USD per million input+output tokens); undefined when unknown. */
  unitPrice: bigint | undefined;
  /** EWMA latency in ms; undefined before the first measurement. */
  latencyMs: number | undefined;
}

export type StrategyName = 'fallback' | 'weighted' | 'cheapest' | 'lowestLatency';

export function orderTargets(strategy: StrategyName, candidates: Candidate[], random: () => number): Candidate[] {
  switch (strategy) {
    case 'fallback':
      return [...candidates];
    case 'weighted':
      return weightedOrder(candidates, random);
    case 'cheapest':
      // Unknown prices go last; ties keep the declared order (sort is stable).
      return [...candidates].sort((a, b) => {
        if (a.unitPrice === undefined) return b.unitPrice === undefined ? 0 : 1;
        if (b.unitPrice === undefined) return -1;
        return a.unitPrice < b.unitPrice ? -1 : a.unitPrice > b.unitPrice ? 1 : 0;
      });
    case 'lowestLatency':
      // Unmeasured targets first, so every target gets measured; then fastest first.
      return [...candidates].sort((a, b) => (a.latencyMs ?? -1) - (b.latencyMs ?? -1));
  }
}

/** Weighted draw without replacement: the A/B split decides the first target; the rest fail over by weight. */
function weightedOrder(candidates: Candidate[], random: () => number): Candidate[] {
  const pool = candidates.filter((c) => c.weight > 0);
  const out: Candidate[] = [];
  while (pool.length > 0) {
    const total = pool.reduce((s, c) => s + c.weight, 0);
    let r = random() * total;
    let pick = pool.length - 1;
    for (let i = 0; i < pool.length; i++) {
      r -= pool[i]!.weight;
      if (r < 0) {
        pick = i;
        break;
      }
    }
    out.push(pool.splice(pick, 1)[0]!);
  }
  return out;
}

/** Exponentially weighted moving average of latency. */
export function ewma(previous: number | undefined, sample: number, alpha = 0.3): number {
  return previous === undefined ? sample : alpha * sample + (1 - alpha) * previous;
}

/** Exponential backoff with full jitter: random in [0, min(max, initial·2^retry)]. */
export function backoffMs(retry: number, initialMs: number, maxMs: number, random: () => number): number {
  const cap = Math.min(maxMs, initialMs * 2 ** retry);
  return Math.floor(random() * cap);
}

/**
 * How long the provider asks to wait, in ms: `retry-after-ms` (Azure OpenAI, OpenAI) when
 * present — finer than the whole seconds of `retry-after` — else `retry-after`.
 */
export function upstreamRetryAfter(headers: Record<string, string | string[] | undefined>, now: number): number | undefined {
  const ms = headers['retry-after-ms'];
  const v = Array.isArray(ms) ? ms[0] : ms;
  if (v && /^\d+(\.\d+)?$/.test(v.trim())) return Math.ceil(Number(v));
  return parseRetryAfter(headers['retry-after'], now);
}

/** Retry-After (seconds or HTTP date) → ms, or undefined. */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Math.ceil(Number(v) * 1000);
  const date = Date.parse(v);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
