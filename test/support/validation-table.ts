/**
 * One table of ModelRoute and Budget documents that the zod schemas (crds/src) and the real API
 * server with the generated CRDs (OpenAPI schema + CEL rules) must judge alike: both accept, or
 * both refuse naming the same field. test/crds/validation-table.test.ts runs it through zod,
 * test/e2e/validation.test.ts through kube-apiserver (`kubectl create --dry-run=server`).
 */
export interface ValidationCase {
  name: string;
  kind: 'ModelRoute' | 'Budget' | 'ProviderQuota' | 'RateLimit';
  spec: Record<string, unknown>;
  /** Undefined: valid. Else the field both must name in their refusal. */
  field?: string;
}

const sim = { provider: 'simulate', model: 'x' };
const route = (name: string, spec: Record<string, unknown>, field?: string): ValidationCase => ({ name, kind: 'ModelRoute', spec: { model: 'm', targets: [sim], ...spec }, field });
const budget = (name: string, spec: Record<string, unknown>, field?: string): ValidationCase => ({ name, kind: 'Budget', spec: { period: 'daily', limit: '5', ...spec }, field });
const secretRef = { name: 's', key: 'k' };
const providerQuota = (name: string, spec: Record<string, unknown>, field?: string): ValidationCase => ({ name, kind: 'ProviderQuota', spec: { credentials: { secretRef }, limits: { requestsPerMinute: 60 }, ...spec }, field });
const rateLimit = (name: string, spec: Record<string, unknown>, field?: string): ValidationCase => ({ name, kind: 'RateLimit', spec: { limits: { tokensPerMinute: 200000 }, ...spec }, field });

export const VALIDATION_CASES: ValidationCase[] = [
  // ModelRoute: accepted
  route('minimal route', {}),
  route('model as a list', { model: ['a', 'b'] }),
  route('openai-compatible with baseURL', { targets: [{ provider: 'openai-compatible', model: 'x', baseURL: 'http://127.0.0.1:1/v1' }] }),
  route('azure with its endpoint', { targets: [{ provider: 'azure', model: 'gpt-4o', baseURL: 'https://r.openai.azure.com' }] }),
  route('bedrock with region and a key pair', { targets: [{ provider: 'bedrock', model: 'anthropic.claude', region: 'us-east-1', credentials: { secretRef, accessKeyIdRef: secretRef } }] }),
  route('bedrock with region and web identity', { targets: [{ provider: 'bedrock', model: 'anthropic.claude', region: 'us-east-1' }] }),
  route('vertex with region and project', { targets: [{ provider: 'vertex', model: 'gemini-2.0-flash', region: 'us-central1', project: 'my-project-1' }] }),
  route('vertex-anthropic with a service-account key', { targets: [{ provider: 'vertex-anthropic', model: 'claude', region: 'global', credentials: { secretRef } }] }),
  route('weighted with one positive weight', { strategy: 'weighted', targets: [{ ...sim, weight: 1 }, { ...sim, name: 'b', weight: 0 }] }),
  route('named and unnamed targets with distinct names', { targets: [sim, { ...sim, name: 'simulate-5' }, { ...sim, name: 'other' }] }),
  route('every optional block', { retry: { attempts: 3 }, circuitBreaker: { consecutiveFailures: 2 }, limits: { maxOutputTokens: 10, maxRequestBytes: 1024 }, cache: { ttlSeconds: 60 }, requirePricing: true }),
  route('a target with a provider quota', { targets: [{ ...sim, quota: { requestsPerMinute: 500, tokensPerMinute: 30000 } }] }),
  // ModelRoute: refused by a CEL rule
  route('a target quota with no limit', { targets: [{ ...sim, quota: {} }] }, 'spec.targets[0].quota'),
  route('openai-compatible without baseURL', { targets: [{ provider: 'openai-compatible', model: 'x' }] }, 'spec.targets[0].baseURL'),
  route('azure without its endpoint', { targets: [{ provider: 'azure', model: 'gpt-4o' }] }, 'spec.targets[0].baseURL'),
  route('bedrock without region', { targets: [{ provider: 'bedrock', model: 'm' }] }, 'spec.targets[0].region'),
  route('bedrock credentials without the access key id', { targets: [{ provider: 'bedrock', model: 'm', region: 'us-east-1', credentials: { secretRef } }] }, 'spec.targets[0].credentials'),
  route('vertex without region', { targets: [{ provider: 'vertex', model: 'm', project: 'my-project-1' }] }, 'spec.targets[0].region'),
  route('vertex without project or credentials', { targets: [{ provider: 'vertex', model: 'm', region: 'us-central1' }] }, 'spec.targets[0].project'),
  route('two targets with one name', { targets: [{ ...sim, name: 'a' }, { ...sim, name: 'a' }] }, 'spec.targets'),
  route('an explicit name taking an unnamed target’s default name', { targets: [sim, { ...sim, name: 'simulate-0' }] }, 'spec.targets'),
  route('weighted with a target without weight', { strategy: 'weighted', targets: [{ ...sim, weight: 1 }, { ...sim, name: 'b' }] }, 'spec.targets'),
  route('weighted with every weight 0', { strategy: 'weighted', targets: [{ ...sim, weight: 0 }, { ...sim, name: 'b', weight: 0 }] }, 'spec.targets'),
  // ModelRoute: refused by the schema
  route('unknown provider', { targets: [{ provider: 'nope', model: 'x' }] }, 'spec.targets[0].provider'),
  route('no targets', { targets: [] }, 'spec.targets'),
  route('unknown strategy', { strategy: 'random' }, 'spec.strategy'),
  route('negative weight', { strategy: 'weighted', targets: [{ ...sim, weight: -1 }] }, 'spec.targets[0].weight'),
  route('a project id Google Cloud would refuse', { targets: [{ provider: 'vertex', model: 'm', region: 'us-central1', project: 'P' }] }, 'spec.targets[0].project'),
  route('empty model name', { model: '' }, 'spec.model'),
  route('zero retry attempts', { retry: { attempts: 0 } }, 'spec.retry.attempts'),
  route('cache without ttlSeconds', { cache: {} }, 'spec.cache.ttlSeconds'),
  route('maxRequestBytes below 1 KiB', { limits: { maxRequestBytes: 10 } }, 'spec.limits.maxRequestBytes'),
  route('a target quota of 0 requests per minute', { targets: [{ ...sim, quota: { requestsPerMinute: 0 } }] }, 'spec.targets[0].quota.requestsPerMinute'),
  route('a fractional token quota', { targets: [{ ...sim, quota: { tokensPerMinute: 1.5 } }] }, 'spec.targets[0].quota.tokensPerMinute'),
  // Budget: accepted
  budget('minimal budget', {}),
  budget('downgrade with downgradeTo', { action: 'downgrade', downgradeTo: 'cheap' }),
  budget('scoped alert budget', { action: 'alert', alertThresholds: [50, 100], scope: { routes: ['r'], models: ['m'] }, maxOutputTokensPerRequest: 100 }),
  // Budget: refused
  budget('downgrade without downgradeTo', { action: 'downgrade' }, 'spec.downgradeTo'),
  budget('limit in exponent notation', { limit: '1.5e3' }, 'spec.limit'),
  budget('negative limit', { limit: '-1' }, 'spec.limit'),
  budget('unknown period', { period: 'hourly' }, 'spec.period'),
  budget('threshold 0', { alertThresholds: [0] }, 'spec.alertThresholds[0]'),
  budget('output cap 0', { maxOutputTokensPerRequest: 0 }, 'spec.maxOutputTokensPerRequest'),
  budget('unknown action', { action: 'pause' }, 'spec.action'),
  // ProviderQuota
  providerQuota('minimal provider quota', {}),
  providerQuota('every limit, one provider', { provider: 'openai', limits: { requestsPerMinute: 500, inputTokensPerMinute: 1, outputTokensPerMinute: 2, tokensPerMinute: 3 } }),
  providerQuota('no limit', { limits: {} }, 'spec.limits'),
  providerQuota('a limit of 0', { limits: { tokensPerMinute: 0 } }, 'spec.limits.tokensPerMinute'),
  providerQuota('no credentials', { credentials: undefined }, 'spec.credentials'),
  providerQuota('a secretRef without key', { credentials: { secretRef: { name: 's' } } }, 'spec.credentials.secretRef.key'),
  providerQuota('unknown provider', { provider: 'nope' }, 'spec.provider'),
  // RateLimit
  rateLimit('minimal rate limit', {}),
  rateLimit('scoped, every limit', { scope: { routes: ['r'], models: ['m'], serviceAccounts: ['app'], podSelector: { matchLabels: { team: 'a' } } }, limits: { requestsPerMinute: 1, tokensPerMinute: 2, requestsPerDay: 3, tokensPerDay: 4 } }),
  rateLimit('no limit', { limits: {} }, 'spec.limits'),
  rateLimit('negative requests per day', { limits: { requestsPerDay: -1 } }, 'spec.limits.requestsPerDay'),
  rateLimit('a ServiceAccount name Kubernetes would refuse', { scope: { serviceAccounts: ['App_1'] } }, 'spec.scope.serviceAccounts[0]'),
];

/**
 * Where the two must differ, and why (each also documented in the README and `kubectl explain`):
 * the API server has no time-zone database, so only the operator can refuse an unknown zone
 * (it sets Ready=False/Invalid and does not enforce the Budget).
 */
export const KNOWN_DIVERGENCES: Array<ValidationCase & { why: string }> = [
  { ...budget('unknown time zone', { timeZone: 'Mars/Olympus_Mons' }, 'spec.timeZone'), why: 'CEL has no IANA zone database' },
];

export function validationDocument(c: ValidationCase, index: number): Record<string, unknown> {
  return { apiVersion: 'paygo.dev/v1alpha1', kind: c.kind, metadata: { name: `case-${index}`, namespace: 'default' }, spec: c.spec };
}
