import { z } from 'zod';
import {
  API_VERSION,
  ConditionSchema,
  LabelSelectorSchema,
  ObjectMetaSchema,
  SecretKeyRefSchema,
  dnsLabel,
  usdAmount,
  type SecretKeyRef,
} from './meta.js';
import { QuotaLimitsSchema } from './quota.js';

export const PROVIDERS = [
  'openai',
  'anthropic',
  'gemini',
  'deepseek',
  'qwen',
  'mistral',
  'openrouter',
  'xai',
  'groq',
  'together',
  'fireworks',
  'cerebras',
  'perplexity',
  'cohere',
  'bedrock',
  'vertex',
  'vertex-anthropic',
  'azure',
  'openai-compatible',
  'simulate',
] as const;
export const ProviderNameSchema = z
  .enum(PROVIDERS)
  .describe(
    'Which provider API the target speaks. anthropic, gemini and cohere (v2 Chat) are translated natively; the others speak the OpenAI Chat Completions wire format with their own default base URL; openai-compatible requires baseURL; azure (Azure OpenAI) sends it to a deployment of the resource in baseURL (required); vertex (Gemini) and vertex-anthropic (Claude) call Google Vertex AI in region (required) with an OAuth token; bedrock calls the Amazon Bedrock Converse API in region (required), signed with AWS SigV4; simulate is an in-process fake.',
  );
export type ProviderName = z.infer<typeof ProviderNameSchema>;

export const STRATEGIES = ['fallback', 'weighted', 'cheapest', 'lowestLatency'] as const;

/** Price per million tokens, as decimal USD strings. */
const perMillion = (field: string) => usdAmount(field).describe(`USD per million ${field} tokens, as a decimal string.`);

export const PriceTierSchema = z.object({
  aboveInputTokens: z
    .number()
    .int()
    .min(1)
    .describe('This tier applies when the prompt has more than this many input tokens (e.g. 200000).'),
  input: perMillion('input').optional(),
  output: perMillion('output').optional(),
  cachedInput: perMillion('cached input').optional(),
  cacheWrite: perMillion('cache write').optional(),
});

export const PricingSchema = z
  .object({
    input: perMillion('input').describe('USD per million uncached input (prompt) tokens, e.g. "2.50".'),
    output: perMillion('output').describe('USD per million output (completion, including reasoning) tokens.'),
    cachedInput: perMillion('cached input')
      .optional()
      .describe('USD per million input tokens read from the provider cache; defaults to the input price.'),
    cacheWrite: perMillion('cache write')
      .optional()
      .describe('USD per million input tokens written to the provider cache; defaults to the input price.'),
    tiers: z
      .array(PriceTierSchema)
      .max(8)
      .optional()
      .describe('Long-context tiers: the highest tier whose threshold the prompt exceeds replaces the prices it names.'),
  })
  .describe('Price override for this target; wins over the built-in catalog.');
export type Pricing = z.infer<typeof PricingSchema>;

export const SimulateSchema = z
  .object({
    latencyMs: z.number().int().min(0).max(60_000).optional().describe('Delay before a non-stream response (ms).'),
    ttftMs: z.number().int().min(0).max(60_000).optional().describe('Delay before the first streamed token (ms).'),
    tokensPerSecond: z
      .number()
      .min(0)
      .max(1_000_000)
      .optional()
      .describe('Streaming speed; 0 streams as fast as possible.'),
    outputTokens: z.number().int().min(0).max(100_000).optional().describe('Completion tokens to generate (capped by max_tokens).'),
    errorRate: z.number().min(0).max(1).optional().describe('Fraction of requests that fail with errorStatus.'),
    errorStatus: z.number().int().min(400).max(599).optional().describe('HTTP status of simulated failures (default 503).'),
    seed: z.number().int().optional().describe('Seed for the deterministic error draw.'),
  })
  .describe('Behaviour of the simulate provider (ignored by real providers).');
export type SimulateOptions = z.infer<typeof SimulateSchema>;

/** The parts of a target's credentials besides secretRef, by the name the adapter knows them by. */
export const CREDENTIAL_PARTS = { accessKeyId: 'accessKeyIdRef', sessionToken: 'sessionTokenRef' } as const;
export type CredentialPart = keyof typeof CREDENTIAL_PARTS;

export const CredentialsSchema = z
  .object({
    secretRef: SecretKeyRefSchema.describe(
      'The API key; for bedrock the secret access key (e.g. key AWS_SECRET_ACCESS_KEY); for vertex and vertex-anthropic a service-account JSON key; for azure the api-key of the resource.',
    ),
    accessKeyIdRef: SecretKeyRefSchema.optional().describe('bedrock: the access key id that goes with secretRef (e.g. key AWS_ACCESS_KEY_ID).'),
    sessionTokenRef: SecretKeyRefSchema.optional().describe('bedrock: the session token of temporary credentials (e.g. key AWS_SESSION_TOKEN).'),
  })
  .describe(
    'Where the key is. Absent for providers that need none (simulate, some local hosts) or that take the pod identity (bedrock: web identity; vertex: workload identity; azure: Microsoft Entra Workload ID).',
  );
export type Credentials = z.infer<typeof CredentialsSchema>;

/** Every Secret key a target's credentials name: the API key first, then the parts. */
export function targetSecretRefs(t: Pick<Target, 'credentials'>): Array<{ part: 'key' | CredentialPart; ref: SecretKeyRef }> {
  const c = t.credentials;
  if (!c) return [];
  const out: Array<{ part: 'key' | CredentialPart; ref: SecretKeyRef }> = [{ part: 'key', ref: c.secretRef }];
  for (const [part, field] of Object.entries(CREDENTIAL_PARTS) as Array<[CredentialPart, (typeof CREDENTIAL_PARTS)[CredentialPart]]>) {
    const ref = c[field];
    if (ref) out.push({ part, ref });
  }
  return out;
}

export const TargetSchema = z
  .object({
    name: dnsLabel('targets[].name')
      .optional()
      .describe('Name of the target, unique in the route; defaults to "<provider>-<index>".'),
    provider: ProviderNameSchema,
    model: z.string().min(1).max(256).describe("The provider's model id, e.g. gpt-4o-mini or claude-sonnet-4-5."),
    weight: z
      .number()
      .int()
      .min(0)
      .max(10_000)
      .optional()
      .describe('Relative share of traffic for the weighted strategy (required there).'),
    baseURL: z
      .url()
      .optional()
      .describe(
        "Override of the provider's endpoint, following its SDK convention: OpenAI-style providers include the version path (https://api.openai.com/v1; perplexity has none: https://api.perplexity.ai); anthropic, gemini and cohere take the bare host; azure (required) the resource endpoint https://<resource>.openai.azure.com; vertex and vertex-anthropic a scheme and host replacing https://<region>-aiplatform.googleapis.com (private or VPC-SC endpoints); bedrock the bare host replacing https://bedrock-runtime.{region}.amazonaws.com (e.g. a VPC endpoint).",
      ),
    credentials: CredentialsSchema.optional(),
    region: z
      .string()
      .regex(/^[a-z0-9-]{2,40}$/, 'must be a cloud region or location such as us-east-1 or us-central1')
      .optional()
      .describe('bedrock: the AWS region (us-east-1); vertex and vertex-anthropic: the Google Cloud location (us-central1, global).'),
    project: z
      .string()
      .regex(/^[a-z][a-z0-9-]{4,61}[a-z0-9]$/, 'must be a Google Cloud project id')
      .optional()
      .describe("vertex and vertex-anthropic: the Google Cloud project id (default: the service-account key's project_id)."),
    apiVersion: z
      .string()
      .regex(/^[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview)?$/, 'must be an api-version such as 2024-10-21')
      .optional()
      .describe('azure: the api-version query parameter of Azure OpenAI.'),
    timeoutMs: z
      .number()
      .int()
      .min(1)
      .max(600_000)
      .optional()
      .describe('Per-attempt timeout until the response headers arrive (ms); default 60000.'),
    pricing: PricingSchema.optional(),
    simulate: SimulateSchema.optional(),
    quota: QuotaLimitsSchema('spec.targets[].quota')
      .optional()
      .describe(
        "The provider's rate limits for this target, per minute (one bucket per target). A target without room is skipped like one whose circuit is open; when no target has room the request waits briefly, else is refused with 429 rate_limit_exceeded. For a key several targets share, use a ProviderQuota.",
      ),
  })
  .describe('One upstream model that can serve the route.');
export type Target = z.infer<typeof TargetSchema>;

export const RETRY_ON = ['429', '5xx', 'timeout', 'connect'] as const;

export const RetrySchema = z
  .object({
    attempts: z
      .number()
      .int()
      .min(1)
      .max(10)
      .default(2)
      .describe('Attempts per target, the first included; then the route fails over to the next target.'),
    initialBackoffMs: z.number().int().min(0).max(60_000).default(100).describe('Backoff before the first retry (ms).'),
    maxBackoffMs: z.number().int().min(0).max(300_000).default(2_000).describe('Upper bound of one backoff (ms).'),
    retryOn: z
      .array(z.enum(RETRY_ON))
      .default([...RETRY_ON])
      .describe('Failures that are retried or failed over: 429, 5xx (and 529), timeout, connect.'),
    totalTimeoutMs: z
      .number()
      .int()
      .min(1)
      .max(900_000)
      .default(120_000)
      .describe('Deadline for all attempts of one request until the first byte (ms).'),
  })
  .describe('How failed attempts are retried.');
export type Retry = z.infer<typeof RetrySchema>;

export const CircuitBreakerSchema = z
  .object({
    consecutiveFailures: z
      .number()
      .int()
      .min(1)
      .max(1000)
      .default(5)
      .describe('Consecutive failures of a target that open its circuit.'),
    cooldownMs: z
      .number()
      .int()
      .min(1)
      .max(3_600_000)
      .default(30_000)
      .describe('How long an open circuit skips the target before one probe request is let through (ms).'),
  })
  .describe('Per-target circuit breaker.');

export const LimitsSchema = z
  .object({
    maxOutputTokens: z
      .number()
      .int()
      .min(1)
      .max(10_000_000)
      .optional()
      .describe('Cap on max_tokens per request; injected when the client sends none.'),
    maxInputTokens: z
      .number()
      .int()
      .min(1)
      .max(100_000_000)
      .optional()
      .describe('Requests whose prompt exceeds this many tokens are refused with 400.'),
    maxRequestBytes: z
      .number()
      .int()
      .min(1024)
      .max(100 * 1024 * 1024)
      .optional()
      .describe('Requests whose body exceeds this many bytes are refused with 413.'),
  })
  .describe('Per-request limits.');

export const CacheSchema = z
  .object({
    ttlSeconds: z.number().int().min(1).max(604_800).describe('How long a stored response is served again, in seconds (at most 7 days).'),
    maxEntries: z.number().int().min(1).max(100_000).default(1000).describe('Most responses kept per sidecar; the least recently used goes first.'),
    maxBytes: z
      .number()
      .int()
      .min(1024)
      .max(1024 * 1024 * 1024)
      .default(16 * 1024 * 1024)
      .describe('Most bytes of stored responses per sidecar; the least recently used go first.'),
  })
  .describe(
    'Exact-match response cache for non-streaming chat completions: a request identical to an earlier one (after limits apply) is answered from the sidecar memory without an upstream call and costs nothing. Streams are neither served nor stored. Emptied when the configuration changes.',
  );

export const TracingSchema = z
  .object({
    recordContent: z
      .boolean()
      .default(false)
      .describe(
        "Record the prompt and completion text in this route's OpenTelemetry spans (gen_ai.input.messages, gen_ai.output.messages); off by default: spans carry models, tokens, cost and outcomes, never the text.",
      ),
  })
  .describe("What this route's requests put into OpenTelemetry traces when the sidecar exports them (--otlp-endpoint).");

export const ModelRouteSpecSchema = z
  .object({
    model: z
      .union([z.string().min(1).max(256), z.array(z.string().min(1).max(256)).min(1).max(64)])
      .describe('The model name (or names) that applications send, e.g. "support-bot".'),
    podSelector: LabelSelectorSchema.optional().describe(
      "Which pods' sidecars receive this route; default: every pod in the namespace.",
    ),
    strategy: z
      .enum(STRATEGIES)
      .default('fallback')
      .describe(
        'How a target is picked: fallback (in order), weighted (split by weight), cheapest (by price), lowestLatency (by measured latency).',
      ),
    targets: z.array(TargetSchema).min(1).max(16).describe('The upstream models that serve this route.'),
    retry: RetrySchema.optional(),
    circuitBreaker: CircuitBreakerSchema.optional(),
    limits: LimitsSchema.optional(),
    cache: CacheSchema.optional(),
    tracing: TracingSchema.optional(),
    requirePricing: z
      .boolean()
      .optional()
      .describe('Refuse targets whose price is unknown (no catalog entry and no override) instead of serving them unpriced.'),
  })
  .superRefine((spec, ctx) => {
    const names = new Set<string>();
    spec.targets.forEach((t, i) => {
      const name = t.name ?? `${t.provider}-${i}`;
      if (names.has(name)) {
        ctx.addIssue({ code: 'custom', path: ['targets', i, 'name'], message: `spec.targets[${i}].name "${name}" is not unique` });
      }
      names.add(name);
      if (spec.strategy === 'weighted' && t.weight === undefined) {
        ctx.addIssue({ code: 'custom', path: ['targets', i, 'weight'], message: `spec.targets[${i}].weight is required when strategy is weighted` });
      }
      if (t.provider === 'openai-compatible' && !t.baseURL) {
        ctx.addIssue({ code: 'custom', path: ['targets', i, 'baseURL'], message: `spec.targets[${i}].baseURL is required for provider openai-compatible` });
      }
      if (t.provider === 'azure' && !t.baseURL) {
        ctx.addIssue({ code: 'custom', path: ['targets', i, 'baseURL'], message: `spec.targets[${i}].baseURL is required for provider azure (the resource endpoint, e.g. https://my-resource.openai.azure.com)` });
      }
      if (t.provider === 'bedrock' && !t.region) {
        ctx.addIssue({ code: 'custom', path: ['targets', i, 'region'], message: `spec.targets[${i}].region is required for provider bedrock (the AWS region, e.g. us-east-1)` });
      }
      if (t.provider === 'bedrock' && t.credentials && !t.credentials.accessKeyIdRef) {
        ctx.addIssue({ code: 'custom', path: ['targets', i, 'credentials', 'accessKeyIdRef'], message: `spec.targets[${i}].credentials.accessKeyIdRef is required for provider bedrock with credentials (secretRef is the secret access key)` });
      }
      if ((t.provider === 'vertex' || t.provider === 'vertex-anthropic') && !t.region) {
        ctx.addIssue({ code: 'custom', path: ['targets', i, 'region'], message: `spec.targets[${i}].region is required for provider ${t.provider} (the Vertex AI location, e.g. us-central1 or global)` });
      }
      if ((t.provider === 'vertex' || t.provider === 'vertex-anthropic') && !t.project && !t.credentials) {
        ctx.addIssue({ code: 'custom', path: ['targets', i, 'project'], message: `spec.targets[${i}].project is required for provider ${t.provider} without credentials (workload identity)` });
      }
    });
    if (spec.strategy === 'weighted' && spec.targets.every((t) => (t.weight ?? 0) === 0)) {
      ctx.addIssue({ code: 'custom', path: ['targets'], message: 'spec.targets: at least one weight must be positive when strategy is weighted' });
    }
  });
export type ModelRouteSpec = z.infer<typeof ModelRouteSpecSchema>;

export const TargetStatusSchema = z.object({
  name: z.string(),
  requests: z.number().int(),
  errors: z.number().int(),
  cost: z.string().describe('Total cost in USD (decimal string).'),
  costPerSuccess: z.string().optional().describe('Average cost of a successful response in USD.'),
});

export const ModelRouteStatusSchema = z.object({
  observedGeneration: z.number().int().optional(),
  conditions: z.array(ConditionSchema).optional(),
  sidecars: z
    .object({ desired: z.number().int(), synced: z.number().int(), rejected: z.number().int() })
    .optional(),
  targets: z.array(TargetStatusSchema).optional(),
  targetCount: z.number().int().optional().describe('Number of entries in spec.targets (the TARGETS column of kubectl get).'),
});

export const ModelRouteSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('ModelRoute'),
  metadata: ObjectMetaSchema,
  spec: ModelRouteSpecSchema,
  status: ModelRouteStatusSchema.optional(),
});
export type ModelRoute = z.infer<typeof ModelRouteSchema>;

/** The model names a route answers to. */
export function routeModelNames(spec: Pick<ModelRouteSpec, 'model'>): string[] {
  return typeof spec.model === 'string' ? [spec.model] : spec.model;
}

/** The effective name of target i (explicit or "<provider>-<i>"). */
export function targetName(t: Pick<Target, 'name' | 'provider'>, index: number): string {
  return t.name ?? `${t.provider}-${index}`;
}
