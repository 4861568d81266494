import { z } from 'zod';
import { API_VERSION, ConditionSchema, LabelSelectorSchema, ObjectMetaSchema, SecretKeyRefSchema, dnsSubdomain } from './meta.js';
import { ProviderNameSchema } from './modelroute.js';
import { QuotaLimitsSchema, atLeastOne, perWindow } from './quota.js';

/**
 * Rate limits: provider quotas (what a provider allows a key: `spec.targets[].quota` of a
 * ModelRoute, and ProviderQuota for a key several targets share) and consumer limits
 * (RateLimit: what a set of routes, models or pods may use). Counts of requests and tokens per
 * minute or day, integers; enforced by token buckets with continuous refill.
 */

/** The per-minute and per-day limits of a RateLimit. */
export const RATE_LIMIT_FIELDS = ['requestsPerMinute', 'tokensPerMinute', 'requestsPerDay', 'tokensPerDay'] as const;
export type RateLimitField = (typeof RATE_LIMIT_FIELDS)[number];

// ---------------------------------------------------------------------------------------------
// ProviderQuota
// ---------------------------------------------------------------------------------------------

export const ProviderQuotaSpecSchema = z
  .object({
    credentials: z
      .object({
        secretRef: SecretKeyRefSchema.describe(
          'The Secret key holding the API key the provider limits: every target in this namespace whose credentials.secretRef names exactly this Secret and key is under this quota, in every ModelRoute.',
        ),
      })
      .describe('The credential (API key) the quota belongs to.'),
    provider: ProviderNameSchema.optional().describe('Only targets of this provider are under the quota; default: every target using the key.'),
    limits: QuotaLimitsSchema('spec.limits').describe(
      "The provider's limits on the key, per minute. Every selected target shares them; a target also under its own spec.targets[].quota needs room in both.",
    ),
  })
  .describe('A provider quota on a credential that several targets share.');
export type ProviderQuotaSpec = z.infer<typeof ProviderQuotaSpecSchema>;

/** Current use of one limit, as the operator observes it across the fleet. */
export const LimitUsageSchema = z
  .object({
    resource: z.enum(['requests', 'tokens', 'input_tokens', 'output_tokens']).describe('What is counted: requests, tokens (input plus output), input_tokens or output_tokens.'),
    window: z.enum(['minute', 'day']).describe('The window of the limit: minute or day.'),
    limit: z.number().int().min(0).describe('The limit per window.'),
    used: z.number().int().min(0).describe('How much of it the fleet used in the last window, from the use rates sidecars report to the operator (only since the operator became leader).'),
    remaining: z.number().int().min(0).describe("What the operator can still hand out now: capacity no sidecar holds as a share and that has refilled (what sidecars' shares hold is not included)."),
  })
  .describe('The use of one limit.');

const statusFields = {
  observedGeneration: z.number().int().optional().describe('The .metadata.generation the operator last processed.'),
  conditions: z.array(ConditionSchema).optional(),
  limits: z.array(LimitUsageSchema).max(8).optional().describe('Current use of each limit set in spec.limits, in the order of spec.limits (written by the operator).'),
};

export const ProviderQuotaStatusSchema = z.object({
  ...statusFields,
  targets: z
    .number()
    .int()
    .min(0)
    .optional()
    .describe('How many targets (of every ModelRoute in the namespace) the quota selects.'),
});

export const ProviderQuotaSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('ProviderQuota'),
  metadata: ObjectMetaSchema,
  spec: ProviderQuotaSpecSchema,
  status: ProviderQuotaStatusSchema.optional(),
});
export type ProviderQuota = z.infer<typeof ProviderQuotaSchema>;

// ---------------------------------------------------------------------------------------------
// RateLimit
// ---------------------------------------------------------------------------------------------

export const RateLimitSpecSchema = z
  .object({
    scope: z
      .object({
        podSelector: LabelSelectorSchema.optional().describe(
          'Only requests of these pods count; default all pods of the namespace. A standalone sidecar is one pod and treats any selector as matching.',
        ),
        routes: z.array(z.string().min(1)).max(64).optional().describe('Only requests to these ModelRoutes (by name) count.'),
        models: z.array(z.string().min(1)).max(64).optional().describe('Only requests for these model names (as apps send them) count.'),
        serviceAccounts: z
          .array(dnsSubdomain('spec.scope.serviceAccounts[]'))
          .max(64)
          .optional()
          .describe('Only requests of pods running as these ServiceAccounts (of the namespace) count. A standalone sidecar cannot tell and treats the list as matching.'),
      })
      .default({})
      .describe('Which requests share the limits; by default every request in its namespace. Everything selected shares one set of limits.'),
    limits: z
      .object({
        requestsPerMinute: perWindow('Requests', 'minute'),
        tokensPerMinute: perWindow('Input plus output tokens', 'minute'),
        requestsPerDay: perWindow('Requests', 'day'),
        tokensPerDay: perWindow('Input plus output tokens', 'day'),
      })
      .superRefine(atLeastOne(RATE_LIMIT_FIELDS, 'spec.limits'))
      .describe('The limits, as token buckets: a request takes 1 request and its input tokens plus its max output tokens, and gives back what it did not use once answered. A request that does not fit is refused with 429 rate_limit_exceeded and Retry-After.'),
  })
  .describe('Limits on the requests and tokens of what the scope selects.');
export type RateLimitSpec = z.infer<typeof RateLimitSpecSchema>;

export const RateLimitStatusSchema = z.object(statusFields);

export const RateLimitSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('RateLimit'),
  metadata: ObjectMetaSchema,
  spec: RateLimitSpecSchema,
  status: RateLimitStatusSchema.optional(),
});
export type RateLimit = z.infer<typeof RateLimitSchema>;
