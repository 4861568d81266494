import type { ApiError } from '../errors.js';
import { countPromptTokens } from '../metering/tokens.js';
import type { RequestRecord } from '../metering/record.js';
import type { ChatRequest } from '../openai-schema.js';
import type { RuntimeRoute, RuntimeTarget } from '../router/runtime.js';
import { consumerLimitExceeded, providerBackoffExceeded, providerQuotaExceeded, rateLimitUnavailable } from './errors.js';
import { rateLimitHeaders } from './headers.js';
import { DEFAULT_RATE_LIMIT_MAX_TOKENS, settleAll, shortageOf, takeAll, type Demand, type Limit, type LimitedReason, type RateLimiter, type Shortage } from './limits.js';
import type { Backoff } from './provider-backoffs.js';

/**
 * What a chat request may use, counted as providers count it: its prompt with the tokenizer of
 * the route's first target (as applyLimits counts it), and its output cap
 * (max_completion_tokens ?? max_tokens ?? DEFAULT_RATE_LIMIT_MAX_TOKENS).
 */
export async function requestDemand(route: RuntimeRoute, req: ChatRequest): Promise<Demand> {
  return {
    inputTokens: await countPromptTokens(req, route.targets[0]?.model ?? req.model),
    outputTokens: req.max_completion_tokens ?? req.max_tokens ?? DEFAULT_RATE_LIMIT_MAX_TOKENS,
  };
}

/** What a metered request used: undefined when it was never sent upstream (it gives everything back). */
export function usedBy(rec: Pick<RequestRecord, 'target' | 'usage'>): Demand | undefined {
  if (rec.target === undefined) return undefined;
  return { inputTokens: rec.usage?.inputTokens ?? 0, outputTokens: rec.usage?.outputTokens ?? 0 };
}

/**
 * Takes a request's demand from its consumer limits (RateLimit), all or nothing: the hold to
 * settle once the request is metered, or 429 naming the RateLimit and the limit.
 */
export function reserveConsumer(limiter: RateLimiter, limits: readonly Limit[], demand: Demand): ConsumerHold {
  const now = limiter.clock();
  const short = takeAll(limits, demand, now);
  if (short) {
    limiter.events.onLimited?.(short.limit, 'limited');
    throw short.unavailable ? rateLimitUnavailable(short) : consumerLimitExceeded(short, limits, now);
  }
  return new ConsumerHold(limits, demand, limiter.clock, rateLimitHeaders(limits, now));
}

/** What a request holds of its consumer limits until it is metered. */
export class ConsumerHold {
  private settled = false;

  constructor(
    readonly limits: readonly Limit[],
    readonly demand: Demand,
    private readonly now: () => number,
    /** OpenAI's x-ratelimit-* headers of the tightest limits, as they stood right after this request took its share. */
    readonly headers: Record<string, string>,
  ) {}

  /** The request is over: `used` undefined when it was never sent upstream (everything comes back). */
  settle(used: Demand | undefined): void {
    if (this.settled) return;
    this.settled = true;
    settleAll(this.limits, this.demand, used ?? { inputTokens: 0, outputTokens: 0 }, used !== undefined, this.now());
  }
}

/** A target skipped because its credential backs off (provider-backoffs.ts): what the provider said, and which target. */
export interface BackoffShortage {
  backoff: Backoff;
  target: RuntimeTarget;
  waitMs: number;
}

/** Why a target had no room: its provider quota, or its provider's own backoff. */
export type ProviderShortage = Shortage | BackoffShortage;

function isBackoff(s: ProviderShortage): s is BackoffShortage {
  return 'backoff' in s;
}

/**
 * One request's provider quotas, as the router tries its targets: an attempt takes room at its
 * target (or learns how long until there is some), a failed attempt gives its tokens back (and
 * its request when it never left), and the attempt the router committed to settles with the
 * answer's usage. A target whose credential backs off (the provider said so) has no room until
 * then, whatever its quotas hold.
 */
export class ProviderQuotaGate {
  private held: readonly Limit[] | undefined;

  constructor(
    private readonly limiter: RateLimiter,
    /** What the request may use; undefined when only provider backoffs apply (no quota on the route, embeddings). */
    readonly demand: Demand | undefined,
  ) {}

  /** Takes room for one attempt at the target; the shortage when it has none. */
  take(target: RuntimeTarget, now: number): ProviderShortage | undefined {
    const backoff = this.limiter.backoffs?.check(target.backoffKey, now);
    const limits = this.demand ? this.limiter.target(target) : undefined;
    if (backoff) {
      // Nothing is taken; the shortage named is whichever keeps the request waiting longer.
      const short = limits && shortageOf(limits, this.demand!, now);
      return short && short.waitMs > backoff.waitMs ? short : { backoff, target, waitMs: backoff.waitMs };
    }
    if (!limits) return undefined;
    const short = takeAll(limits, this.demand!, now);
    if (!short) this.held = limits;
    return short;
  }

  /** The attempt failed: its tokens come back; its request too when nothing was sent. */
  failed(sent: boolean, now: number): void {
    const held = this.held;
    if (!held) return;
    this.held = undefined;
    settleAll(held, this.demand!, { inputTokens: 0, outputTokens: 0 }, sent, now);
  }

  /** The committed attempt is metered: `used` undefined when nothing was sent. */
  settle(used: Demand | undefined, now: number): void {
    const held = this.held;
    if (!held) return;
    this.held = undefined;
    settleAll(held, this.demand!, used ?? { inputTokens: 0, outputTokens: 0 }, used !== undefined, now);
  }

  /** Tells the limiter's events about a skipped target, a wait or a refusal. */
  limited(short: ProviderShortage, reason: LimitedReason): void {
    if (isBackoff(short)) this.limiter.events.onLimited?.({ kind: 'provider_backoff', name: short.backoff.key, resource: short.backoff.resource }, reason);
    else this.limiter.events.onLimited?.(short.limit, reason);
  }

  /** No target had room: 429 with Retry-After (503 when a fleet quota's share is unavailable). */
  exhausted(route: RuntimeRoute, short: ProviderShortage): ApiError {
    if (isBackoff(short)) return providerBackoffExceeded(route.name, short.target, short.backoff);
    return short.unavailable ? rateLimitUnavailable(short) : providerQuotaExceeded(route.name, short);
  }
}
