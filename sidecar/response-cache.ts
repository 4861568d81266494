import { createHash } from 'node:crypto';
import { canonicalJson } from '../crds/src/canonical-json.js';
import type { ChatRequest } from './openai-schema.js';
import type { RuntimeRoute } from './router/runtime.js';

/** A stored non-stream chat completion: the JSON body as sent, and the headers that describe it. */
export interface CachedResponse {
  body: Buffer;
  /** x-paygo-target / x-paygo-provider of the target that produced it. */
  target: string;
  provider: string;
  /** Its model id, for the usage log and metrics. */
  responseModel: string | undefined;
}

interface Entry {
  value: CachedResponse;
  expiresAt: number;
}

/** One route's responses: least recently used first (Map order), bounded by count and bytes. */
class RouteCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
    private readonly maxBytes: number,
  ) {}

  get(key: string, now: number): CachedResponse | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    this.entries.delete(key);
    if (e.expiresAt <= now) {
      this.bytes -= e.value.body.length;
      return undefined;
    }
    this.entries.set(key, e); // most recently used
    return e.value;
  }

  set(key: string, value: CachedResponse, now: number): void {
    if (value.body.length > this.maxBytes) return;
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.bytes -= old.value.body.length;
    }
    this.entries.set(key, { value, expiresAt: now + this.ttlMs });
    this.bytes += value.body.length;
    for (const [k, e] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= e.value.body.length;
    }
  }

  get size(): number {
    return this.entries.size;
  }
}

/**
 * Exact-match response cache of the routes that set spec.cache (non-stream chat completions
 * only). Caches belong to the compiled route objects, so a new configuration starts empty and
 * the old one's memory goes with it.
 */
export class ResponseCache {
  private readonly routes = new WeakMap<RuntimeRoute, RouteCache>();

  constructor(private readonly now: () => number) {}

  /** The cache key of a request on a caching route, or undefined when the request is not cacheable. */
  keyOf(route: RuntimeRoute, req: ChatRequest): string | undefined {
    if (!route.cache || req.stream) return undefined;
    return createHash('sha256').update(canonicalJson(req)).digest('base64url');
  }

  get(route: RuntimeRoute, key: string): CachedResponse | undefined {
    return this.routes.get(route)?.get(key, this.now());
  }

  set(route: RuntimeRoute, key: string, value: CachedResponse): void {
    const spec = route.cache;
    if (!spec) return;
    let c = this.routes.get(route);
    if (!c) this.routes.set(route, (c = new RouteCache(spec.ttlSeconds * 1000, spec.maxEntries, spec.maxBytes)));
    c.set(key, value, this.now());
  }

  /** Entries held for a route. */
  size(route: RuntimeRoute): number {
    return this.routes.get(route)?.size ?? 0;
  }
}
