import { RetrySchema, type Retry } from '../../crds/src/index.js';
import { TokenBucket } from '../../sidecar/ratelimit/bucket.js';
import type { Limit } from '../../sidecar/ratelimit/limits.js';
import { CircuitBreaker } from '../../sidecar/router/breaker.js';
import type { RuntimeRoute, RuntimeTarget } from '../../sidecar/router/runtime.js';

/** A compiled target for router and chat tests: simulate, no key, a breaker opening after 3 failures; `over` replaces any of it. */
export function testTarget(name: string, over: Partial<RuntimeTarget> = {}): RuntimeTarget {
  return {
    name,
    provider: 'simulate',
    model: name,
    baseURL: 'simulate://local',
    apiKey: undefined,
    settings: {},
    unavailableReason: undefined,
    adapter: {} as RuntimeTarget['adapter'],
    transport: {} as RuntimeTarget['transport'],
    timeoutMs: 1000,
    weight: 1,
    pricing: undefined,
    health: { breaker: new CircuitBreaker(3, 10_000), latencyMs: undefined },
    backoffKey: `default/target/r/${name}`,
    ...over,
  };
}

/** Route default/r over `targets` (fallback), with the default retry policy changed by `retry`. */
export function testRoute(targets: RuntimeTarget[], retry: Partial<Retry> = {}): RuntimeRoute {
  return {
    id: 'default/r',
    name: 'r',
    namespace: 'default',
    strategy: 'fallback',
    targets,
    retry: { ...RetrySchema.parse({}), ...retry },
    limits: undefined,
    cache: undefined,
    requirePricing: false,
    recordContent: false,
  };
}

/** A rate limit whose bucket starts full at time 0 (capacity = the limit, refilled over its window). */
export function testLimit(kind: Limit['kind'], name: string, resource: Limit['resource'], window: Limit['window'], capacity: number): Limit {
  return { kind, name, resource, window, ceiling: capacity, bucket: new TokenBucket(capacity, window === 'minute' ? 60_000 : 86_400_000, 0) };
}
