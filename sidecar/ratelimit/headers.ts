import type { Limit } from './limits.js';

/**
 * A duration as OpenAI's x-ratelimit-reset-* headers write it (Go's time.Duration format, to
 * the millisecond): "0s", "20ms", "1s", "1.5s", "6m0s", "1h2m3s".
 */
export function formatResetDuration(ms: number): string {
  const total = Math.max(0, Math.ceil(ms));
  if (total === 0) return '0s';
  if (total < 1000) return `${total}ms`;
  const hours = Math.floor(total / 3_600_000);
  const minutes = Math.floor((total % 3_600_000) / 60_000);
  const millis = total % 60_000;
  const whole = Math.floor(millis / 1000);
  const frac = millis % 1000;
  const seconds = frac === 0 ? `${whole}` : `${whole}.${String(frac).padStart(3, '0').replace(/0+$/, '')}`;
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${minutes}m${seconds}s`;
  return `${seconds}s`;
}

/** The limit of a resource with the least left now; undefined when none counts that resource. */
export function tightest(limits: readonly Limit[], resource: 'requests' | 'tokens', now: number): Limit | undefined {
  let best: Limit | undefined;
  let bestLeft = Infinity;
  for (const l of limits) {
    if (l.resource !== resource) continue;
    const left = l.bucket.available(now);
    // Ties: the smaller limit (its reset comes sooner and says more).
    if (left < bestLeft || (left === bestLeft && best !== undefined && l.bucket.capacity < best.bucket.capacity)) {
      best = l;
      bestLeft = left;
    }
  }
  return best;
}

/**
 * OpenAI's rate-limit headers from the tightest request and token limits that apply (either
 * pair is left out when no limit counts it), so clients' own backoff works.
 */
export function rateLimitHeaders(limits: readonly Limit[], now: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const resource of ['requests', 'tokens'] as const) {
    const l = tightest(limits, resource, now);
    if (!l) continue;
    out[`x-ratelimit-limit-${resource}`] = String(l.ceiling);
    out[`x-ratelimit-remaining-${resource}`] = String(l.bucket.remaining(now));
    out[`x-ratelimit-reset-${resource}`] = formatResetDuration(l.bucket.resetMs(now));
  }
  return out;
}
