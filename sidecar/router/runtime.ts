import { CircuitBreakerSchema, RetrySchema, routeModelNames, targetName, type Pricing, type ProviderName, type Retry } from '../../crds/src/modelroute.js';
import { providerBackoffKey } from '../../crds/src/protocol.js';
import type { Snapshot, SnapshotRoute } from '../../crds/src/snapshot.js';
import { ADAPTERS } from '../providers/index.js';
import type { TargetSettings } from '../providers/types.js';
import { createSimulateTransport } from '../providers/simulate.js';
import type { ProviderAdapter } from '../providers/types.js';
import type { Transport } from '../transport.js';
import { CircuitBreaker } from './breaker.js';

/** A target ready to be called: adapter, transport, key and live health state. */
export interface RuntimeTarget {
  name: string;
  provider: ProviderName;
  model: string;
  baseURL: string;
  apiKey: string | undefined;
  /** Provider settings and credential parts, handed to the adapter with every request. */
  settings: TargetSettings;
  /** Why the target cannot be used (missing credentials); never contains a key. */
  unavailableReason: string | undefined;
  adapter: ProviderAdapter;
  transport: Transport;
  timeoutMs: number;
  weight: number;
  pricing: Pricing | undefined;
  health: TargetHealth;
  /** What the provider's own rate-limit signals apply to: its credential, or this target (crds/src/protocol.ts providerBackoffKey). */
  backoffKey: string;
}

/** Health survives config reloads for a target that keeps its identity. */
export interface TargetHealth {
  breaker: CircuitBreaker;
  latencyMs: number | undefined;
}

export interface RuntimeRoute {
  /** namespace/name of the ModelRoute. */
  id: string;
  name: string;
  namespace: string;
  strategy: SnapshotRoute['spec']['strategy'];
  targets: RuntimeTarget[];
  retry: Retry;
  limits: SnapshotRoute['spec']['limits'];
  cache: SnapshotRoute['spec']['cache'];
  requirePricing: boolean;
  /** spec.tracing.recordContent: prompts and completions go into this route's spans. */
  recordContent: boolean;
}

export interface RuntimeConfig {
  version: string;
  /** model name as apps send it → route */
  byModel: Map<string, RuntimeRoute>;
  snapshot: Snapshot;
}

const DEFAULT_TIMEOUT_MS = 60_000;

export class ConfigCompiler {
  private readonly health = new Map<string, TargetHealth>();

  constructor(private readonly httpTransport: Transport) {}

  /** Compiles a snapshot; throws an Error naming the problem when it cannot be served. */
  compile(snapshot: Snapshot): RuntimeConfig {
    const byModel = new Map<string, RuntimeRoute>();
    const liveKeys = new Set<string>();
    for (const route of snapshot.routes) {
      const spec = route.spec;
      const retry = RetrySchema.parse(spec.retry ?? {});
      const breakerSpec = CircuitBreakerSchema.parse(spec.circuitBreaker ?? {});
      const id = `${route.namespace}/${route.name}`;
      const targets = spec.targets.map((t, i): RuntimeTarget => {
        const name = targetName(t, i);
        const adapter = ADAPTERS[t.provider];
        const baseURL = (t.baseURL ?? adapter.defaultBaseURL ?? '').replace(/\/+$/, '');
        if (!baseURL) throw new Error(`ModelRoute ${id}: spec.targets[${i}].baseURL is required for provider ${t.provider}`);
        const key = `${id}/${name}/${t.provider}/${baseURL}/${t.model}`;
        liveKeys.add(key);
        let health = this.health.get(key);
        if (!health) {
          health = { breaker: new CircuitBreaker(breakerSpec.consecutiveFailures, breakerSpec.cooldownMs), latencyMs: undefined };
          this.health.set(key, health);
        } else {
          health.breaker.threshold = breakerSpec.consecutiveFailures;
          health.breaker.cooldownMs = breakerSpec.cooldownMs;
        }
        return {
          name,
          provider: t.provider,
          model: t.model,
          baseURL,
          apiKey: route.credentials[name],
          settings: { region: t.region, project: t.project, apiVersion: t.apiVersion, credentialParts: route.credentialParts?.[name] },
          unavailableReason: route.unresolved[name] ? `credentials unavailable: ${route.unresolved[name]}` : undefined,
          adapter,
          transport: t.provider === 'simulate' ? createSimulateTransport(t.simulate) : this.httpTransport,
          timeoutMs: t.timeoutMs ?? DEFAULT_TIMEOUT_MS,
          weight: t.weight ?? 1,
          pricing: t.pricing,
          health,
          backoffKey: providerBackoffKey(route.namespace, route.name, t, i),
        };
      });
      const runtime: RuntimeRoute = {
        id,
        name: route.name,
        namespace: route.namespace,
        strategy: spec.strategy,
        targets,
        retry,
        limits: spec.limits,
        cache: spec.cache,
        requirePricing: spec.requirePricing ?? false,
        recordContent: spec.tracing?.recordContent ?? false,
      };
      for (const model of routeModelNames(spec)) {
        const existing = byModel.get(model);
        if (existing) throw new Error(`model "${model}" is claimed by both ModelRoute ${existing.id} and ${id}`);
        byModel.set(model, runtime);
      }
    }
    for (const key of this.health.keys()) if (!liveKeys.has(key)) this.health.delete(key);
    return { version: snapshot.version, byModel, snapshot };
  }
}
