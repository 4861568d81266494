import type { SidecarMetrics } from '../metering/metrics.js';
import type { Limit, RateLimiter } from './limits.js';

/** paygo_ratelimit_remaining is computed at scrape time from the buckets of the current config. */
export function collectRateLimitGauges(metrics: SidecarMetrics, limiter: RateLimiter): void {
  (metrics.rateLimitRemaining as unknown as { collect?: () => void }).collect = () => {
    metrics.rateLimitRemaining.reset();
    const now = limiter.clock();
    for (const l of limiter.all()) metrics.rateLimitRemaining.set(limitLabels(l), l.bucket.remaining(now));
  };
}

/** The labels of one bucket (bounded by configuration). */
export function limitLabels(l: Limit): { kind: string; limit: string; resource: string; window: string } {
  return { kind: l.kind, limit: l.name, resource: l.resource, window: l.window };
}

/** Counts refusals, waits and failovers by the limit that caused them. */
export function countLimited(metrics: SidecarMetrics): (l: Limit, reason: 'limited' | 'waited' | 'failed_over') => void {
  return (l, reason) => metrics.rateLimited.inc({ kind: l.kind, limit: l.name, resource: l.resource, reason });
}
