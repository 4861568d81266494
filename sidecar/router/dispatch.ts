import type { CancelSignal } from '../cancel.js';
import { ApiError } from '../errors.js';
import { UpstreamHttpError, UpstreamProtocolError, UpstreamStreamError } from '../providers/errors.js';
import { TransportError } from '../transport.js';
import type { RuntimeRoute, RuntimeTarget } from './runtime.js';
import { backoffMs, ewma, orderTargets, type Candidate } from './strategy.js';

/**
 * Why an attempt failed. `overloaded` is the provider saying "busy, come back" (HTTP 503,
 * Anthropic's 529, an `overloaded_error` stream event); `5xx` is any other server failure.
 */
export type FailureKind = '429' | 'overloaded' | '5xx' | 'timeout' | 'connect' | 'protocol' | 'auth' | 'translate' | 'client';

/** HTTP statuses by which providers say they are overloaded or unavailable for now. */
const OVERLOADED_STATUSES = new Set([503, 529]);

export interface DispatchHooks {
  onRetry?(route: RuntimeRoute, target: RuntimeTarget, kind: FailureKind): void;
  onFailover?(route: RuntimeRoute, from: RuntimeTarget, kind: FailureKind): void;
  onCircuitOpen?(route: RuntimeRoute, target: RuntimeTarget): void;
  onAttemptFailed?(route: RuntimeRoute, target: RuntimeTarget, kind: FailureKind, error: Error): void;
}

/** How an attempt ended: `success` (the router committed to it), a failure class, or `aborted` (the client left). */
export type AttemptOutcome = 'success' | FailureKind | 'aborted';

/** A per-request observer told about each attempt as it starts and ends (attempts are sequential). */
export interface AttemptObserver {
  attemptStarted(target: RuntimeTarget): void;
  attemptEnded(outcome: AttemptOutcome, error?: Error): void;
}

/**
 * A target's provider quota has no room now, or its provider asked to back off: how long until it
 * would have room (Infinity: never, for this request).
 */
export interface QuotaShortage {
  waitMs: number;
}

/** One request's provider quotas and provider backoffs (ratelimit/holds.ts ProviderQuotaGate), as dispatch sees them. */
export interface QuotaGate {
  /** Takes room for one attempt at the target; the shortage when there is none. */
  take(target: RuntimeTarget, now: number): QuotaShortage | undefined;
  /** The attempt failed: what it took comes back (its request only when nothing was sent). */
  failed(sent: boolean, now: number): void;
  /** A target was skipped (failed_over), the request waited (waited) or was refused (limited). */
  limited(short: QuotaShortage, reason: 'limited' | 'waited' | 'failed_over'): void;
  /** The error when no target has room: 429 with Retry-After. */
  exhausted(route: RuntimeRoute, short: QuotaShortage): Error;
}

/** The longest a request waits for a provider quota when no target of its route has room (ms). */
export const MAX_QUOTA_WAIT_MS = 2_000;

export interface DispatchOptions {
  signal: CancelSignal;
  now: () => number;
  random: () => number;
  sleep: (ms: number, signal: CancelSignal) => Promise<void>;
  /** Comparable unit price for the cheapest strategy. */
  unitPrice: (t: RuntimeTarget) => bigint | undefined;
  hooks?: DispatchHooks;
  /** This request's attempts (the request's trace). */
  attempts?: AttemptObserver;
  /** This request's provider quotas and backoffs; absent when there are none to check. */
  quota?: QuotaGate;
}

export interface Dispatched<T> {
  value: T;
  target: RuntimeTarget;
  attempts: number;
}

/** One attempt against one target: sends, and checks the answer enough to commit to it. */
export type Attempt<T> = (target: RuntimeTarget, signal: CancelSignal, deadlineMs: number) => Promise<T>;

function classify(err: unknown): { kind: FailureKind; retryAfterMs?: number } {
  if (err instanceof UpstreamHttpError) {
    if (err.status === 429) return { kind: '429', retryAfterMs: err.retryAfterMs };
    if (OVERLOADED_STATUSES.has(err.status)) return { kind: 'overloaded', retryAfterMs: err.retryAfterMs };
    // 408: the provider timed out (Bedrock ModelTimeoutException); 424: its model failed
    // (Bedrock ModelErrorException). Transient, not the request's fault.
    if (err.status === 408) return { kind: 'timeout' };
    if (err.status === 424) return { kind: '5xx', retryAfterMs: err.retryAfterMs };
    if (err.status >= 500) return { kind: '5xx', retryAfterMs: err.retryAfterMs };
    if (err.status === 401 || err.status === 403 || err.status === 404) return { kind: 'auth' };
    return { kind: 'client' };
  }
  if (err instanceof TransportError) {
    if (err.failure === 'timeout') return { kind: 'timeout' };
    return { kind: 'connect' };
  }
  if (err instanceof UpstreamStreamError && err.errorType === 'overloaded_error') return { kind: 'overloaded' };
  if (err instanceof UpstreamStreamError || err instanceof UpstreamProtocolError) return { kind: 'protocol' };
  if (err instanceof ApiError) return { kind: 'translate' };
  return { kind: 'protocol' };
}

/** Which failure kinds the route's retryOn list covers. Overload and protocol garbage count as 5xx. */
function retryable(route: RuntimeRoute, kind: FailureKind): boolean {
  const on = route.retry.retryOn;
  switch (kind) {
    case '429':
      return on.includes('429');
    case 'overloaded':
    case '5xx':
    case 'protocol':
      return on.includes('5xx');
    case 'timeout':
      return on.includes('timeout');
    case 'connect':
      return on.includes('connect');
    default:
      return false;
  }
}

/**
 * Runs attempts over the route's targets in strategy order: retries a target with backoff
 * (honouring Retry-After) while the failure is retryable, then fails over to the next one,
 * skipping targets whose circuit is open or whose provider quota has no room, all within the
 * route's total deadline. When only quotas stood in the way, it waits once for the soonest one
 * (at most MAX_QUOTA_WAIT_MS, within the deadline) and tries again, else answers 429.
 */
export async function dispatch<T>(route: RuntimeRoute, attempt: Attempt<T>, o: DispatchOptions): Promise<Dispatched<T>> {
  const start = o.now();
  const deadline = start + route.retry.totalTimeoutMs;
  const candidates: Candidate[] = route.targets.map((t, index) => ({
    index,
    weight: t.weight,
    unitPrice: route.strategy === 'cheapest' ? o.unitPrice(t) : undefined,
    latencyMs: t.health.latencyMs,
  }));
  const order = orderTargets(route.strategy, candidates, o.random).map((c) => route.targets[c.index]!);
  /**
   * A failed attempt on the target's breaker; true when it opened the circuit. A 429 that says
   * when to come back is the provider's rate limit, not its health: the provider backoff holds
   * the key until then (ratelimit/provider-backoffs.ts), while an open circuit would keep the
   * target out for the whole cooldown (30 s by default) — a fleet stopped by its own breakers
   * when the provider has room again in a fraction of a second.
   */
  const judge = (target: RuntimeTarget, kind: FailureKind, retryAfterMs: number | undefined, probe: boolean): boolean => {
    if (kind === '429' && retryAfterMs !== undefined) {
      if (probe) target.health.breaker.release();
      return false;
    }
    if (!target.health.breaker.onFailure(o.now())) return false;
    o.hooks?.onCircuitOpen?.(route, target);
    return true;
  };
  let attempts = 0;
  let lastError: Error | undefined;
  let lastKind: FailureKind | undefined;
  let translateError: ApiError | undefined;
  const skipped: string[] = [];
  const quota = o.quota;
  // The provider quota that frees up soonest among the targets skipped for one.
  let shortest: QuotaShortage | undefined;

  for (let pass = 0; ; pass++) {
    for (let ti = 0; ti < order.length; ti++) {
      const target = order[ti]!;
      if (target.unavailableReason) {
        skipped.push(`${target.name}: ${target.unavailableReason}`);
        continue;
      }
      if (route.requirePricing && o.unitPrice(target) === undefined) {
        skipped.push(`${target.name}: no known price for ${target.provider} model "${target.model}" and the route sets requirePricing (add spec.targets[].pricing)`);
        continue;
      }
      // This target's own last failure: only a target that was tried and failed is failed over from.
      let failedWith: FailureKind | undefined;
      for (let retry = 0; retry < route.retry.attempts; retry++) {
        if (o.signal.aborted) throw new TransportError('aborted', 'client went away');
        const now = o.now();
        if (now >= deadline) break;
        if (!target.health.breaker.tryAcquire(now)) {
          skipped.push(`${target.name}: circuit open`);
          break;
        }
        // Whether this attempt holds the half-open probe: only its holder may give that back.
        const probe = target.health.breaker.state === 'half-open';
        if (quota) {
          const short = quota.take(target, now);
          if (short) {
            // Like an open circuit: the next target, or a wait when none has room.
            if (probe) target.health.breaker.release();
            if (shortest === undefined || short.waitMs < shortest.waitMs) shortest = short;
            skipped.push(`${target.name}: provider rate limit reached`);
            if (ti + 1 < order.length) quota.limited(short, 'failed_over');
            break;
          }
        }
        attempts++;
        const started = now;
        o.attempts?.attemptStarted(target);
        try {
          const value = await attempt(target, o.signal, deadline);
          o.attempts?.attemptEnded('success');
          target.health.breaker.onSuccess();
          // Only successes feed the latency average (time until the attempt committed).
          target.health.latencyMs = ewma(target.health.latencyMs, o.now() - started);
          return { value, target, attempts };
        } catch (err) {
          const error = err instanceof Error ? err : new Error(String(err));
          // A translate error is the adapter refusing before anything was sent.
          quota?.failed(!(err instanceof ApiError), o.now());
          if (o.signal.aborted || (err instanceof TransportError && err.failure === 'aborted')) {
            if (probe) target.health.breaker.release();
            o.attempts?.attemptEnded('aborted', error);
            throw new TransportError('aborted', 'client went away', { cause: err });
          }
          const { kind, retryAfterMs } = classify(err);
          o.attempts?.attemptEnded(kind, error);
          o.hooks?.onAttemptFailed?.(route, target, kind, error);
          if (kind === 'client') {
            if (probe) target.health.breaker.release();
            throw err; // the request itself is wrong: no other target will like it better
          }
          if (kind === 'translate') {
            if (probe) target.health.breaker.release();
            translateError ??= err as ApiError;
            break; // this provider cannot take the request; another may
          }
          lastError = error;
          lastKind = kind;
          failedWith = kind;
          if (kind === 'auth' || !retryable(route, kind)) {
            judge(target, kind, retryAfterMs, probe);
            break;
          }
          if (judge(target, kind, retryAfterMs, probe)) break;
          if (retry + 1 >= route.retry.attempts) break;
          const wait = Math.max(
            retryAfterMs ?? 0,
            backoffMs(retry, route.retry.initialBackoffMs, route.retry.maxBackoffMs, o.random),
          );
          // A Retry-After beyond the deadline or the backoff cap means: fail over now instead.
          if (o.now() + wait >= deadline || wait > route.retry.maxBackoffMs) break;
          o.hooks?.onRetry?.(route, target, kind);
          await o.sleep(wait, o.signal);
        }
      }
      if (ti + 1 < order.length && failedWith) o.hooks?.onFailover?.(route, target, failedWith);
    }
    // Only provider quotas stood in the way (nothing was tried and failed): wait once for the soonest.
    if (!quota || !shortest || lastError || translateError) break;
    const wait = shortest.waitMs;
    if (pass > 0 || !(wait <= MAX_QUOTA_WAIT_MS) || o.now() + wait >= deadline) {
      quota.limited(shortest, 'limited');
      throw quota.exhausted(route, shortest);
    }
    quota.limited(shortest, 'waited');
    await o.sleep(wait, o.signal);
    shortest = undefined;
    skipped.length = 0;
  }
  throw finalError(route, lastError, lastKind, translateError, skipped, attempts);
}

function finalError(
  route: RuntimeRoute,
  lastError: Error | undefined,
  lastKind: FailureKind | undefined,
  translateError: ApiError | undefined,
  skipped: string[],
  attempts: number,
): ApiError {
  const tried = `after ${attempts} attempt${attempts === 1 ? '' : 's'}`;
  if (!lastError) {
    if (translateError) return translateError;
    return new ApiError(
      503,
      'upstream_error',
      'no_available_target',
      `No target of route "${route.name}" is available: ${skipped.join('; ') || 'deadline exceeded'}.`,
    );
  }
  const detail = lastError.message;
  // The provider's own Retry-After (seconds) is passed on where it gave one.
  const retryAfter: Record<string, string> = lastError instanceof UpstreamHttpError && lastError.retryAfterMs ? { 'retry-after': String(Math.ceil(lastError.retryAfterMs / 1000)) } : {};
  switch (lastKind) {
    case '429':
      return new ApiError(429, 'rate_limit_error', 'upstream_rate_limited', `Every target of route "${route.name}" is rate limited ${tried}: ${detail}`, null, retryAfter);
    case 'overloaded':
      return new ApiError(503, 'upstream_error', 'upstream_overloaded', `Every target of route "${route.name}" is overloaded or unavailable ${tried}: ${detail}`, null, retryAfter);
    case 'timeout':
      return new ApiError(504, 'timeout_error', 'upstream_timeout', `Every target of route "${route.name}" timed out ${tried}.`);
    case 'auth':
      return new ApiError(502, 'upstream_error', 'upstream_auth_failed', `The provider refused the request ${tried}: ${detail}`);
    default:
      return new ApiError(502, 'upstream_error', 'upstream_failed', `Every target of route "${route.name}" failed ${tried}: ${detail}`);
  }
}
