import { z } from 'zod';
import { BudgetSpecSchema } from './budget.js';
import { CatalogPriceSchema } from './catalog.js';
import { ModelRouteSpecSchema } from './modelroute.js';
import { ProviderQuotaSpecSchema, RateLimitSpecSchema } from './ratelimit.js';

/**
 * The sidecar configuration snapshot: the versioned data-plane contract between the operator
 * (or a standalone file) and a sidecar. It is not tied to Kubernetes: routes and budgets carry
 * their spec plus identity, and credentials are already resolved to key material.
 */
export const SnapshotRouteSchema = z.object({
  name: z.string().min(1),
  namespace: z.string().min(1),
  generation: z.number().int().optional(),
  spec: ModelRouteSpecSchema,
  /** API key per target name; absent when the target needs none or it could not be resolved. */
  credentials: z.record(z.string(), z.string()).default({}),
  /** Why a target's credentials are missing (names the Secret and key, never a value). */
  unresolved: z.record(z.string(), z.string()).default({}),
  /** Further credential parts per target name (bedrock: accessKeyId, sessionToken). */
  credentialParts: z.record(z.string(), z.record(z.string(), z.string())).optional(),
  /**
   * Catalog prices per target name, resolved for targets without `pricing` so that the sidecar
   * need not load the price catalog: null when the catalog has no price for the model; a target
   * that is absent is looked up by the sidecar itself (time-dependent catalog prices).
   */
  catalogPrices: z.record(z.string(), CatalogPriceSchema.nullable()).optional(),
});
export type SnapshotRoute = z.infer<typeof SnapshotRouteSchema>;

export const SnapshotBudgetSchema = z.object({
  name: z.string().min(1),
  namespace: z.string().min(1),
  generation: z.number().int().optional(),
  spec: BudgetSpecSchema,
});
export type SnapshotBudget = z.infer<typeof SnapshotBudgetSchema>;

export const SnapshotProviderQuotaSchema = z.object({
  name: z.string().min(1),
  namespace: z.string().min(1),
  generation: z.number().int().optional(),
  spec: ProviderQuotaSpecSchema,
});
export type SnapshotProviderQuota = z.infer<typeof SnapshotProviderQuotaSchema>;

export const SnapshotRateLimitSchema = z.object({
  name: z.string().min(1),
  namespace: z.string().min(1),
  generation: z.number().int().optional(),
  spec: RateLimitSpecSchema,
});
export type SnapshotRateLimit = z.infer<typeof SnapshotRateLimitSchema>;

export const SnapshotSchema = z.object({
  version: z.string().min(1),
  routes: z.array(SnapshotRouteSchema),
  budgets: z.array(SnapshotBudgetSchema).default([]),
  /** From the file, or the operator (the namespace's quotas, the RateLimits selecting the pod); absent when there are none. */
  providerQuotas: z.array(SnapshotProviderQuotaSchema).optional(),
  rateLimits: z.array(SnapshotRateLimitSchema).optional(),
});
export type Snapshot = z.infer<typeof SnapshotSchema>;
