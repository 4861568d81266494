import { ApiError } from '../errors.js';
import { rateLimitHeaders } from './headers.js';
import type { Limit, Resource, Shortage } from './limits.js';
import type { ProviderBackoffResource } from '../../crds/src/protocol.js';
import type { RuntimeTarget } from '../router/runtime.js';
import type { Backoff } from './provider-backoffs.js';

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
function retryHeaders(waitMs: number): Record<string, string> {
  if (!Number.isFinite(waitMs)) return { 'x-should-retry': 'false' };
  return { 'retry-after': String(retryAfterSeconds(waitMs)), 'retry-after-ms': String(Math.ceil(waitMs)) };
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
    { ...rateLimitHeaders(limits, now), ...retryHeaders(s.waitMs) },
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
    retryHeaders(s.waitMs),
  );
}

const BACKOFF_TEXT: Record<ProviderBackoffResource, string> = {
  requests: 'its requests limit is used up',
  tokens: 'its tokens limit is used up',
  input_tokens: 'its input tokens limit is used up',
  output_tokens: 'its output tokens limit is used up',
  any: 'it answered 429 with Retry-After',
};

/**
 * No target of the route had room, the soonest one because its provider asked to back off
 * (its rate-limit headers or a 429, seen by this sidecar or another of the namespace): 429
 * with the time the provider named. Names the target, never the credential.
 */
export function providerBackoffExceeded(route: string, target: RuntimeTarget, b: Backoff): ApiError {
  return new ApiError(
    429,
    b.resource === 'requests' || b.resource === 'any' ? 'requests' : 'tokens',
    'rate_limit_exceeded',
    `Provider rate limit reached: no target of route "${route}" has room; the soonest is target "${target.name}" (${target.provider}), whose provider asked to back off (${BACKOFF_TEXT[b.resource]}); retry in ${retryAfterSeconds(b.waitMs)} s.`,
    null,
    retryHeaders(b.waitMs),
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
