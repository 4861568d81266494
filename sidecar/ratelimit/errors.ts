import { ApiError } from '../errors.js';
import { rateLimitHeaders } from './headers.js';
import type { Limit, Resource, Shortage } from './limits.js';

const RESOURCE_TEXT: Record<Resource, string> = {
  requests: 'requests',
  tokens: 'tokens',
  input_tokens: 'input tokens',
  output_tokens: 'output tokens',
};

/** "tokens per minute: limit 200000, requested 1200, remaining 310; retry in 4 s" */
export function shortageText(s: Shortage): string {
  const what = `${RESOURCE_TEXT[s.limit.resource]} per ${s.limit.window}: limit ${s.limit.ceiling}, requested ${s.requested}, remaining ${s.remaining}`;
  if (!Number.isFinite(s.waitMs)) return `${what}; the request alone exceeds the limit`;
  return `${what}; retry in ${retryAfterSeconds(s.waitMs)} s`;
}

/** Whole seconds a client should wait: enough has refilled by then (at least 1). */
export function retryAfterSeconds(waitMs: number): number {
  return Math.max(1, Math.ceil(waitMs / 1000));
}

/** Retry-After (seconds) and retry-after-ms, or, when waiting cannot help, x-should-retry: false (read by OpenAI's SDKs). */
function retryHeaders(s: Shortage): Record<string, string> {
  if (!Number.isFinite(s.waitMs)) return { 'x-should-retry': 'false' };
  return { 'retry-after': String(retryAfterSeconds(s.waitMs)), 'retry-after-ms': String(Math.ceil(s.waitMs)) };
}

/** OpenAI's error type for a rate limit: "requests" or "tokens". */
function errorType(s: Shortage): string {
  return s.limit.resource === 'requests' ? 'requests' : 'tokens';
}

/** A consumer limit (RateLimit) refused the request: 429 naming it and the limit, with the headers of every limit the request is under. */
export function consumerLimitExceeded(s: Shortage, limits: readonly Limit[], now: number): ApiError {
  return new ApiError(
    429,
    errorType(s),
    'rate_limit_exceeded',
    `Rate limit reached: RateLimit ${s.limit.name}, ${shortageText(s)}.`,
    null,
    { ...rateLimitHeaders(limits, now), ...retryHeaders(s) },
  );
}

/** No target of the route had room in its provider quota (after waiting what the route allows). */
export function providerQuotaExceeded(route: string, s: Shortage): ApiError {
  const owner = s.limit.name.split('/').length === 3 ? `the quota of target ${s.limit.name}` : `ProviderQuota ${s.limit.name}`;
  return new ApiError(
    429,
    errorType(s),
    'rate_limit_exceeded',
    `Provider rate limit reached: no target of route "${route}" has room; the soonest is ${owner}, ${shortageText(s)}.`,
    null,
    retryHeaders(s),
  );
}

/**
 * A fleet-wide limit (operator mode) of which this process holds no valid share: the operator
 * could not be reached in time. Refused (fail closed), never let through unlimited.
 */
export function rateLimitUnavailable(s: Shortage): ApiError {
  const owner = s.limit.kind === 'consumer' ? `RateLimit ${s.limit.name}` : s.limit.name.split('/').length === 3 ? `the quota of target ${s.limit.name}` : `ProviderQuota ${s.limit.name}`;
  return new ApiError(
    503,
    'upstream_error',
    'ratelimit_unavailable',
    `${owner} is enforced across the fleet by the paygo operator, which could not be reached; the request was not sent. Retry shortly.`,
    null,
    { 'retry-after': String(retryAfterSeconds(s.waitMs)) },
  );
}
