import { createHash } from 'node:crypto';
import { parseAllDocuments } from 'yaml';
import { BudgetSchema, type Budget } from './budget.js';
import { API_VERSION, formatIssues } from './meta.js';
import type { CatalogPrice } from './catalog.js';
import { ModelRouteSchema, targetName, targetSecretRefs, type ModelRoute, type ProviderName } from './modelroute.js';
import { ProviderQuotaSchema, RateLimitSchema, type ProviderQuota, type RateLimit } from './ratelimit.js';
import { SecretSchema, secretValues, type Secret } from './secret.js';
import type { Snapshot, SnapshotRoute } from './snapshot.js';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export interface ConfigDocuments {
  routes: ModelRoute[];
  budgets: Budget[];
  secrets: Secret[];
  providerQuotas: ProviderQuota[];
  rateLimits: RateLimit[];
}

const KINDS = {
  [`${API_VERSION}/ModelRoute`]: ModelRouteSchema,
  [`${API_VERSION}/Budget`]: BudgetSchema,
  [`${API_VERSION}/ProviderQuota`]: ProviderQuotaSchema,
  [`${API_VERSION}/RateLimit`]: RateLimitSchema,
  ['v1/Secret']: SecretSchema,
} as const;

/**
 * Parses a multi-document YAML config (the very objects a user applies to a cluster) and
 * validates every document. Throws ConfigError naming the document and field on any problem.
 */
export function parseConfigDocuments(text: string, defaultNamespace = 'default'): ConfigDocuments {
  const out: ConfigDocuments = { routes: [], budgets: [], secrets: [], providerQuotas: [], rateLimits: [] };
  const docs = parseAllDocuments(text);
  const seen = new Set<string>();
  docs.forEach((doc, index) => {
    if (doc.errors.length > 0) throw new ConfigError(`document ${index + 1}: YAML error: ${doc.errors[0]!.message}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) return; // empty document (e.g. trailing ---)
    if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`document ${index + 1}: expected a Kubernetes object`);
    const obj = value as { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown } };
    const key = `${String(obj.apiVersion)}/${String(obj.kind)}`;
    const schema = KINDS[key as keyof typeof KINDS];
    const label = `document ${index + 1} (${String(obj.kind)} ${JSON.stringify(obj.metadata?.name ?? '?')})`;
    if (!schema) {
      throw new ConfigError(
        `${label}: unsupported apiVersion/kind "${key}"; expected ${API_VERSION} ModelRoute, Budget, ProviderQuota or RateLimit, or v1 Secret`,
      );
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) throw new ConfigError(`${label}: ${formatIssues(parsed.error)}`);
    const object = parsed.data;
    object.metadata.namespace ??= defaultNamespace;
    const id = `${object.kind}/${object.metadata.namespace}/${object.metadata.name}`;
    if (seen.has(id)) throw new ConfigError(`${label}: duplicate ${object.kind} ${object.metadata.namespace}/${object.metadata.name}`);
    seen.add(id);
    if (object.kind === 'ModelRoute') out.routes.push(object);
    else if (object.kind === 'Budget') out.budgets.push(object);
    else if (object.kind === 'ProviderQuota') out.providerQuotas.push(object);
    else if (object.kind === 'RateLimit') out.rateLimits.push(object);
    else out.secrets.push(object);
  });
  return out;
}

/**
 * The environment variable a missing secretRef falls back to: `<NAME>_<KEY>` upper-cased with
 * every other character than A-Z and 0-9 turned into `_`. Secret "openai", key "api-key"
 * → OPENAI_API_KEY.
 */
export function secretEnvName(name: string, key: string): string {
  return `${name}_${key}`.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

export interface SnapshotInput {
  routes: ModelRoute[];
  budgets: Budget[];
  /** Provider quotas and consumer rate limits (the operator passes those applying to the pod). */
  providerQuotas?: ProviderQuota[];
  rateLimits?: RateLimit[];
  /** Secrets visible to the routes (same namespace). */
  secrets: Secret[];
  /** Fallback for secretRefs with no Secret (standalone mode); omit in a cluster. */
  env?: Record<string, string | undefined>;
  /** Resolves the catalog price of a target without `pricing` (see SnapshotRoute.catalogPrices). */
  catalogPrice?: (provider: ProviderName, model: string) => CatalogPrice | null | undefined;
}

/** Resolves credentials and builds the versioned snapshot a sidecar runs on. */
export function buildSnapshot(input: SnapshotInput): Snapshot {
  const secretsById = new Map(input.secrets.map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, secretValues(s)]));
  const routes: SnapshotRoute[] = input.routes.map((route) => {
    const namespace = route.metadata.namespace ?? 'default';
    const credentials: Record<string, string> = {};
    const unresolved: Record<string, string> = {};
    const credentialParts: Record<string, Record<string, string>> = {};
    const catalogPrices: Record<string, CatalogPrice | null> = {};
    route.spec.targets.forEach((target, i) => {
      const name = targetName(target, i);
      const price = target.pricing ? undefined : input.catalogPrice?.(target.provider, target.model);
      if (price !== undefined) catalogPrices[name] = price;
      const missing: string[] = [];
      for (const { part, ref } of targetSecretRefs(target)) {
        const fromSecret = secretsById.get(`${namespace}/${ref.name}`);
        const envName = secretEnvName(ref.name, ref.key);
        const value = fromSecret?.[ref.key] ?? (fromSecret ? undefined : input.env?.[envName]);
        if (value) {
          if (part === 'key') credentials[name] = value;
          else (credentialParts[name] ??= {})[part] = value;
        } else if (fromSecret) missing.push(`Secret ${namespace}/${ref.name} has no key "${ref.key}"`);
        else if (input.env) missing.push(`Secret ${namespace}/${ref.name} not found and environment variable ${envName} is not set`);
        else missing.push(`Secret ${namespace}/${ref.name} not found`);
      }
      if (missing.length > 0) {
        // A target with part of its credentials is as unusable as one with none.
        unresolved[name] = [...new Set(missing)].join('; ');
        delete credentials[name];
        delete credentialParts[name];
      }
    });
    return {
      name: route.metadata.name,
      namespace,
      generation: route.metadata.generation,
      spec: route.spec,
      credentials,
      unresolved,
      ...(Object.keys(credentialParts).length > 0 ? { credentialParts } : {}),
      ...(Object.keys(catalogPrices).length > 0 ? { catalogPrices } : {}),
    };
  });
  const budgets = input.budgets.map((b) => ({
    name: b.metadata.name,
    namespace: b.metadata.namespace ?? 'default',
    generation: b.metadata.generation,
    spec: b.spec,
  }));
  const identity = <T extends { metadata: { name: string; namespace?: string; generation?: number } }>(o: T) => ({
    name: o.metadata.name,
    namespace: o.metadata.namespace ?? 'default',
    generation: o.metadata.generation,
  });
  const providerQuotas = (input.providerQuotas ?? []).map((q) => ({ ...identity(q), spec: q.spec }));
  const rateLimits = (input.rateLimits ?? []).map((l) => ({ ...identity(l), spec: l.spec }));
  // Present only when there are some, so a config without them keeps its version.
  const body = {
    routes,
    budgets,
    ...(providerQuotas.length > 0 ? { providerQuotas } : {}),
    ...(rateLimits.length > 0 ? { rateLimits } : {}),
  };
  // Content-addressed version: the same objects always give the same version.
  const version = createHash('sha256').update(JSON.stringify(body)).digest('hex').slice(0, 16);
  return { version, ...body };
}
