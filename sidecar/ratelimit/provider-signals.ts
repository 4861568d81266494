import type { ProviderBackoffResource } from '../../crds/src/protocol.js';
import type { UpstreamHeaders } from '../providers/types.js';
import { upstreamRetryAfter } from '../router/strategy.js';

/**
 * What a provider's answer says about its own rate limits, read from its headers on every
 * answer of a target (successes, errors and streams alike: headers come before the body):
 *
 * - OpenAI, Azure OpenAI and OpenAI-compatible hosts: `x-ratelimit-remaining-requests|tokens`
 *   with `x-ratelimit-reset-requests|tokens`, a Go duration (`6ms`, `1.5s`, `6m0s`, `1h2m3s`)
 *   until the limit is whole again, and `x-ratelimit-limit-requests|tokens`;
 * - Anthropic: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-remaining`
 *   with `-reset`, the RFC 3339 time it is whole again, and `-limit`;
 * - any provider's 429: `retry-after-ms` or `retry-after` (router/strategy.ts).
 *
 * A limit with nothing remaining, or a 429 with a Retry-After, means: do not send with this key
 * before then. Both providers refill continuously (a token bucket) and their reset is the time
 * until the limit is *whole* again, so an empty limit has one unit back after reset / limit (a
 * request every 100 ms at 600 a minute, not a minute's pause); without a limit header the
 * whole reset is taken. The headers are untrusted: values that do not parse are ignored, a wait
 * is never longer than the provider named nor longer than MAX_PROVIDER_BACKOFF_MS, and nothing
 * here logs or keeps a header's text.
 */

/** The longest a provider's word makes the sidecar hold back a credential. */
export const MAX_PROVIDER_BACKOFF_MS = 60_000;

/** A provider said: nothing of `resource` is left for `waitMs` (already clamped). */
export interface ProviderSignal {
  waitMs: number;
  resource: ProviderBackoffResource;
}

type Reset = (value: string, now: number) => number | undefined;

/** Header values longer than this are garbage (and not worth a regex). */
const MAX_VALUE_LENGTH = 64;

const GO_UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const GO_PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

/** A Go `time.Duration` string (unsigned) in ms: "6ms", "1.5s", "6m0s", "1h2m3s", "0"; undefined for anything else. */
export function parseGoDuration(text: string): number | undefined {
  const v = text.trim();
  if (v === '0') return 0;
  if (v.length === 0 || v.length > MAX_VALUE_LENGTH) return undefined;
  let total = 0;
  for (let i = 0; i < v.length; i = GO_PART.lastIndex) {
    GO_PART.lastIndex = i;
    const m = GO_PART.exec(v);
    if (!m) return undefined;
    total += Number(m[1]) * GO_UNIT_MS[m[2]!]!;
  }
  return Number.isFinite(total) ? total : undefined;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/** An RFC 3339 time as ms from `now` (negative when past); undefined for anything else. */
export function parseResetTime(text: string, now: number): number | undefined {
  const v = text.trim();
  if (v.length > MAX_VALUE_LENGTH || !RFC3339.test(v)) return undefined;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : at - now;
}

const untilDuration: Reset = (v) => parseGoDuration(v);

/** One limit's headers: what it counts, its limit, remaining and reset headers, how the reset is written. */
interface LimitHeaders {
  resource: ProviderBackoffResource;
  limit: string;
  remaining: string;
  reset: string;
  parse: Reset;
}

const openai = (resource: ProviderBackoffResource): LimitHeaders => ({
  resource,
  limit: `x-ratelimit-limit-${resource}`,
  remaining: `x-ratelimit-remaining-${resource}`,
  reset: `x-ratelimit-reset-${resource}`,
  parse: untilDuration,
});
const anthropic = (resource: ProviderBackoffResource, name: string): LimitHeaders => ({
  resource,
  limit: `anthropic-ratelimit-${name}-limit`,
  remaining: `anthropic-ratelimit-${name}-remaining`,
  reset: `anthropic-ratelimit-${name}-reset`,
  parse: parseResetTime,
});

const LIMIT_HEADERS: readonly LimitHeaders[] = [
  openai('requests'),
  openai('tokens'),
  anthropic('requests', 'requests'),
  anthropic('tokens', 'tokens'),
  anthropic('input_tokens', 'input-tokens'),
  anthropic('output_tokens', 'output-tokens'),
];

function single(v: string | string[] | undefined): string | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  return s !== undefined && s.length <= MAX_VALUE_LENGTH ? s : undefined;
}

/** A whole number ("0", "600"), else undefined. */
function whole(v: string | string[] | undefined): number | undefined {
  const s = single(v);
  return s !== undefined && /^\s*\d{1,15}\s*$/.test(s) ? Number(s) : undefined;
}

/**
 * The backoff an upstream answer asks for: the longest of its exhausted limits' waits (reset /
 * limit, or the reset without a limit) and, on a 429, its Retry-After, clamped to
 * MAX_PROVIDER_BACKOFF_MS; undefined when it asks for none.
 */
export function providerSignal(status: number, headers: UpstreamHeaders, now: number): ProviderSignal | undefined {
  let out: ProviderSignal | undefined;
  const consider = (resource: ProviderBackoffResource, ms: number | undefined) => {
    if (ms === undefined || !(ms > 0)) return;
    const waitMs = Math.ceil(Math.min(ms, MAX_PROVIDER_BACKOFF_MS));
    if (out === undefined || waitMs > out.waitMs) out = { waitMs, resource };
  };
  for (const h of LIMIT_HEADERS) {
    if (whole(headers[h.remaining]) !== 0) continue;
    const at = single(headers[h.reset]);
    const untilWhole = at === undefined ? undefined : h.parse(at, now);
    if (untilWhole === undefined) continue;
    // Until one unit is back when the limit is known, else until it is whole.
    const limit = whole(headers[h.limit]);
    consider(h.resource, limit ? untilWhole / limit : untilWhole);
  }
  if (status === 429) {
    const ms = single(headers['retry-after-ms']);
    const s = single(headers['retry-after']);
    consider('any', upstreamRetryAfter({ 'retry-after-ms': ms, 'retry-after': s }, now));
  }
  return out;
}
