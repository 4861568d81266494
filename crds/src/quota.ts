import { z } from 'zod';

/** Limits per window (provider quotas and consumer rate limits): see ratelimit.ts. */

export const perWindow = (what: string, window: 'minute' | 'day') =>
  z
    .number()
    .int()
    .min(1)
    .max(1_000_000_000_000)
    .optional()
    .describe(`${what} per ${window}, at least 1. The bucket holds this many and refills continuously (this many per ${window}).`);

/** The four per-minute limits a provider puts on a key. */
export const QUOTA_FIELDS = ['requestsPerMinute', 'inputTokensPerMinute', 'outputTokensPerMinute', 'tokensPerMinute'] as const;
export type QuotaField = (typeof QUOTA_FIELDS)[number];

export const QuotaLimitsShape = {
  requestsPerMinute: perWindow('Requests', 'minute'),
  inputTokensPerMinute: perWindow('Input (prompt) tokens', 'minute'),
  outputTokensPerMinute: perWindow('Output (completion, reasoning included) tokens', 'minute'),
  tokensPerMinute: perWindow('Input plus output tokens', 'minute'),
};

export const atLeastOne =
  (fields: readonly string[], where: string) =>
  (value: Record<string, unknown>, ctx: z.RefinementCtx): void => {
    if (fields.some((f) => value[f] !== undefined)) return;
    ctx.addIssue({ code: 'custom', path: [], message: `${where} must set at least one of ${fields.join(', ')}` });
  };

/** A provider quota: ModelRoute spec.targets[].quota and ProviderQuota spec.limits. */
export const QuotaLimitsSchema = (where: string) => z.object(QuotaLimitsShape).superRefine(atLeastOne(QUOTA_FIELDS, where));
export type QuotaLimits = z.infer<ReturnType<typeof QuotaLimitsSchema>>;

