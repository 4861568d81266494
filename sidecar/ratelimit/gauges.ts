import type { SidecarMetrics } from '../metering/metrics.js';
import type { Limit, LimitedBy, LimitedReason, RateLimiter } from './limits.js';

/**
 * paygo_ratelimit_remaining is computed at scrape time from the buckets of the current config;
 * paygo_ratelimit_provider_backoff_seconds from the credentials backing off now.
 */
export function collectRateLimitGauges(metrics: SidecarMetrics, limiter: RateLimiter): void {
  (metrics.rateLimitRemaining as unknown as { collect?: () => void }).collect = () => {
    metrics.rateLimitRemaining.reset();
    const now = limiter.clock();
    for (const l of limiter.all()) metrics.rateLimitRemaining.set(limitLabels(l), l.bucket.remaining(now));
  };
  const backoffs = limiter.backoffs;
  if (!backoffs) return;
  (metrics.rateLimitBackoff as unknown as { collect?: () => void }).collect = () => {
    metrics.rateLimitBackoff.reset();
    for (const b of backoffs.live(backoffs.clock())) metrics.rateLimitBackoff.set({ limit: b.key }, b.waitMs / 1000);
  };
}

/** The labels of one bucket (bounded by configuration). */
export function limitLabels(l: Limit): { kind: string; limit: string; resource: string; window: string } {
  return { kind: l.kind, limit: l.name, resource: l.resource, window: l.window };
}

/** Counts refusals, waits and failovers by the limit (or provider backoff) that caused them. */
export function countLimited(metrics: SidecarMetrics): (by: LimitedBy, reason: LimitedReason) => void {
  return (by, reason) => metrics.rateLimited.inc({ kind: by.kind, limit: by.name, resource: by.resource, reason });
}
