import type { ProviderBackoff, ProviderBackoffResource } from '../crds/src/protocol.js';

/**
 * Provider backoffs across the fleet (docs/architecture.md, section 5a): per namespace and
 * credential key (`providerBackoffKey`), the latest time until which a sidecar of the namespace
 * was told by the provider not to send. Sidecars report what they saw in their rate-limit
 * syncs; every sync of a sidecar of that namespace gets all of the namespace's live ones back,
 * and nothing of another namespace. In memory only: a new leader hears of them again from the
 * next syncs (sidecars report theirs while they last); one that leads again keeps what it heard,
 * as it is still true. Bounded: at most MAX_BACKOFFS_PER_NAMESPACE
 * per namespace and MAX_BACKOFFS in all; when full, a new one replaces the one ending soonest, if
 * it ends later.
 */

/** The longest backoff the operator keeps or hands on (sidecars clamp to the same). */
export const MAX_FLEET_BACKOFF_MS = 60_000;
export const MAX_BACKOFFS_PER_NAMESPACE = 256;
export const MAX_BACKOFFS = 4_096;

interface Held {
  until: number;
  resource: ProviderBackoffResource;
}

export class ProviderBackoffBook {
  private readonly byNamespace = new Map<string, Map<string, Held>>();
  private count = 0;

  constructor(private readonly now: () => number) {}

  /** How many backoffs the book holds (expired ones included until `expire`). */
  get size(): number {
    return this.count;
  }

  /** A sidecar of `namespace` reports `b` (its key already checked to be of that namespace). */
  report(namespace: string, b: ProviderBackoff): void {
    const now = this.now();
    const ms = Math.min(b.ms, MAX_FLEET_BACKOFF_MS);
    if (!(ms > 0)) return;
    const until = now + ms;
    const resource = b.resource ?? 'any';
    let ns = this.byNamespace.get(namespace);
    const held = ns?.get(b.key);
    if (held) {
      if (until > held.until) {
        held.until = until;
        held.resource = resource;
      }
      return;
    }
    if (ns && ns.size >= MAX_BACKOFFS_PER_NAMESPACE) {
      this.expire();
      if (ns.size >= MAX_BACKOFFS_PER_NAMESPACE && !this.evictSoonest(ns, until)) return;
    }
    if (this.count >= MAX_BACKOFFS) {
      this.expire();
      if (this.count >= MAX_BACKOFFS && !this.evictSoonest(undefined, until)) return;
    }
    if (!ns) this.byNamespace.set(namespace, (ns = new Map()));
    ns.set(b.key, { until, resource });
    this.count++;
  }

  /** Every live backoff of the namespace, as ms from now. */
  forNamespace(namespace: string): ProviderBackoff[] {
    const ns = this.byNamespace.get(namespace);
    if (!ns) return [];
    const now = this.now();
    const out: ProviderBackoff[] = [];
    for (const [key, h] of ns) if (h.until > now) out.push({ key, ms: Math.ceil(h.until - now), resource: h.resource });
    return out;
  }

  /** Drops the backoffs that are over (the leader's 1 s tick). */
  expire(): void {
    const now = this.now();
    for (const [namespace, ns] of this.byNamespace) {
      for (const [key, h] of ns) {
        if (h.until > now) continue;
        ns.delete(key);
        this.count--;
      }
      if (ns.size === 0) this.byNamespace.delete(namespace);
    }
  }

  /** Makes room for a backoff ending at `until`: drops the one ending soonest (in `only`, else anywhere), if it ends sooner. */
  private evictSoonest(only: Map<string, Held> | undefined, until: number): boolean {
    let soonest: { ns: Map<string, Held>; key: string; until: number } | undefined;
    for (const ns of only ? [only] : this.byNamespace.values()) {
      for (const [key, h] of ns) if (!soonest || h.until < soonest.until) soonest = { ns, key, until: h.until };
    }
    if (!soonest || soonest.until >= until) return false;
    soonest.ns.delete(soonest.key);
    this.count--;
    return true;
  }
}
