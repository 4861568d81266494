import type { ProviderBackoff, ProviderBackoffResource } from '../../crds/src/protocol.js';
import type { UpstreamHeaders } from '../providers/types.js';
import { MAX_PROVIDER_BACKOFF_MS, providerSignal } from './provider-signals.js';

/**
 * Provider backoffs (docs/architecture.md, section 5a): per credential (crds/src/protocol.ts
 * `providerBackoffKey`, the target's `backoffKey`), the time until which the provider asked not
 * to be sent to — from its own rate-limit headers or a 429's Retry-After (provider-signals.ts),
 * seen by this process (`observe`) or by another sidecar of the namespace and handed on by the
 * operator (`receive`). Dispatch skips a target while its credential backs off, like a provider
 * quota without room (ratelimit/holds.ts ProviderQuotaGate). Operator mode: the process reports
 * what it saw itself in its next rate-limit sync (ratelimit/remote-shares.ts), at once for a new
 * one, and applies the fleet's.
 */

/** A backoff shorter than this is kept here but not reported: it is over before the fleet would hear of it. */
export const MIN_REPORTED_BACKOFF_MS = 1_000;
/** The most credentials one process keeps backoffs for. */
export const MAX_BACKOFF_ENTRIES = 1_024;
/** The most backoffs one sync reports. */
export const MAX_REPORTED_BACKOFFS = 256;

/** A credential that backs off now: for how much longer, and what its provider said ran out. */
export interface Backoff {
  key: string;
  resource: ProviderBackoffResource;
  waitMs: number;
}

interface Entry {
  /** Until when (process clock) the credential backs off: the latest of everything heard. */
  until: number;
  resource: ProviderBackoffResource;
  /** Until when the provider told this process itself (what it reports). */
  own: number;
  ownResource: ProviderBackoffResource;
}

export class ProviderBackoffs {
  private readonly entries = new Map<string, Entry>();
  /** Bumped by every backoff this process saw that the fleet should hear of. */
  private seen = 0;
  private reportedSeen = 0;
  private listener: (() => void) | undefined;
  /**
   * Whether the config has targets (operator mode: the process then syncs even without rate
   * limits, to hear of the fleet's backoffs); set by RateLimiter.apply.
   */
  watching = false;

  constructor(readonly clock: () => number) {}

  /** Called when this process saw a new backoff worth reporting (operator mode: starts a sync). */
  onOwn(listener: () => void): void {
    this.listener = listener;
  }

  /** An upstream answer of a target using credential `key`: what its headers say, if anything. */
  observe(key: string, status: number, headers: UpstreamHeaders): void {
    const now = this.clock();
    const s = providerSignal(status, headers, now);
    if (s) this.note(key, now + s.waitMs, s.resource, true, now);
  }

  /** Backoffs the operator handed on (other sidecars of the namespace saw them). */
  receive(list: readonly ProviderBackoff[]): void {
    const now = this.clock();
    for (const b of list) {
      const ms = Math.min(b.ms, MAX_PROVIDER_BACKOFF_MS);
      if (ms > 0) this.note(b.key, now + ms, b.resource ?? 'any', false, now);
    }
  }

  private note(key: string, until: number, resource: ProviderBackoffResource, own: boolean, now: number): void {
    let e = this.entries.get(key);
    if (!e) {
      if (this.entries.size >= MAX_BACKOFF_ENTRIES) this.prune(now);
      if (this.entries.size >= MAX_BACKOFF_ENTRIES) return;
      e = { until: 0, resource, own: 0, ownResource: resource };
      this.entries.set(key, e);
    }
    if (until > e.until) {
      e.until = until;
      e.resource = resource;
    }
    if (!own || until <= e.own) return;
    e.own = until;
    e.ownResource = resource;
    if (until - now < MIN_REPORTED_BACKOFF_MS) return;
    this.seen++;
    this.listener?.();
  }

  /** The credential's backoff now, if it has one. */
  check(key: string, now: number): Backoff | undefined {
    if (this.entries.size === 0) return undefined;
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.until <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return { key, resource: e.resource, waitMs: e.until - now };
  }

  /** Every credential backing off now (the gauge). */
  live(now: number): Backoff[] {
    this.prune(now);
    return [...this.entries].map(([key, e]) => ({ key, resource: e.resource, waitMs: e.until - now }));
  }

  /** Whether the fleet should hear from this process soon: a backoff it saw is unreported, or one is live. */
  busy(now: number): boolean {
    if (this.seen !== this.reportedSeen) return true;
    this.prune(now);
    return this.entries.size > 0;
  }

  /**
   * What this process saw itself that is still worth reporting (ms from now), and the mark to
   * hand to `reported` once the operator took it.
   */
  report(now: number): { backoffs: ProviderBackoff[]; mark: number } {
    const backoffs: ProviderBackoff[] = [];
    for (const [key, e] of this.entries) {
      const ms = Math.ceil(e.own - now);
      if (ms >= MIN_REPORTED_BACKOFF_MS && backoffs.length < MAX_REPORTED_BACKOFFS) backoffs.push({ key, ms, resource: e.ownResource });
    }
    return { backoffs, mark: this.seen };
  }

  /** The operator answered the sync that carried `report(…)`'s backoffs. */
  reported(mark: number): void {
    this.reportedSeen = mark;
  }

  private prune(now: number): void {
    for (const [key, e] of this.entries) if (e.until <= now) this.entries.delete(key);
  }
}
