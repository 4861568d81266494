import { z } from 'zod';
import type { calcPrice as CalcPrice, ModelInfo, ModelPrice, Provider as CatalogProvider } from '@pydantic/genai-prices';
import type { ProviderName } from './modelroute.js';

/**
 * How a paygo target is looked up in the `@pydantic/genai-prices` catalog, shared by the operator
 * (which resolves catalog prices for the targets it pushes, so sidecars need not load the
 * catalog) and the sidecar (which looks up what was not pushed). Only types are imported here:
 * the caller passes the catalog's `calcPrice`, so neither side loads the catalog through this module.
 */

/** paygo provider → how to look a model up in the catalog; null: never in the catalog. */
export const CATALOG_MAPPING: Record<ProviderName, { providerId?: string; rewrite?: (model: string) => string } | null> = {
  openai: { providerId: 'openai' },
  anthropic: { providerId: 'anthropic' },
  gemini: { providerId: 'google', rewrite: (m) => m.replace(/^models\//, '') },
  deepseek: { providerId: 'deepseek' },
  mistral: { providerId: 'mistral' },
  openrouter: { providerId: 'openrouter' },
  qwen: { providerId: 'openrouter', rewrite: (m) => (m.includes('/') ? m : `qwen/${m}`) },
  // @pydantic/genai-prices 0.1.8 provider ids. Fireworks models are matched by their resource
  // names (accounts/fireworks/models/<model>), the only ids its API takes.
  xai: { providerId: 'x-ai' },
  groq: { providerId: 'groq' },
  together: { providerId: 'together' },
  fireworks: { providerId: 'fireworks' },
  // The catalog has no Cerebras provider (only HuggingFace-routed Cerebras entries, under
  // HuggingFace model names and prices): a route needs `pricing` to meter Cerebras targets.
  cerebras: null,
  perplexity: { providerId: 'perplexity' },
  cohere: { providerId: 'cohere' },
  // The catalog's AWS Bedrock provider ("aws") matches Bedrock model ids as they are, geographic
  // and global inference profile prefixes (us., eu., apac., global.) and ARNs included.
  bedrock: { providerId: 'aws' },
  // The catalog's google provider matches Vertex AI too (provider_match "vertex") and prices Claude
  // on Vertex under Vertex's own entries (claude-3-5-haiku@20241022 → claude-3-5-haiku), falling
  // back to its anthropic entries for the others (fallback_model_providers).
  vertex: { providerId: 'google' },
  'vertex-anthropic': { providerId: 'google' },
  // Azure OpenAI targets name a deployment, whose name is the customer's choice and says nothing
  // reliable about the model behind it (the catalog's "azure" provider matches model ids, not
  // deployment names): a route needs `pricing` to meter Azure targets.
  azure: null,
  'openai-compatible': {},
  simulate: null,
};

/** Whether targets of this provider can be priced from the catalog at all. */
export function catalogued(provider: ProviderName): boolean {
  return CATALOG_MAPPING[provider] !== null;
}

/**
 * Whether a target still needs its catalog price looked up: no `pricing`, a catalogued provider,
 * and nothing about it in the route's `catalogPrices` (a price, or null for none).
 */
export function awaitsCatalogPrice(t: { provider: ProviderName; pricing?: unknown }, name: string, catalogPrices: Record<string, unknown> | undefined): boolean {
  return !t.pricing && catalogued(t.provider) && catalogPrices?.[name] === undefined;
}

export interface CatalogMatch {
  providerId: string;
  model: ModelInfo;
  /** The model name the catalog matched (after provider-specific rewriting). */
  lookupModel: string;
  /** A one-model provider, to let the catalog resolve time-dependent prices cheaply. */
  single: CatalogProvider;
}

/** The catalog model for a paygo provider and model name; undefined when the catalog has none. */
export function matchCatalog(calcPrice: typeof CalcPrice, provider: ProviderName, model: string): CatalogMatch | undefined {
  const mapping = CATALOG_MAPPING[provider];
  if (!mapping) return undefined;
  const lookupModel = mapping.rewrite ? mapping.rewrite(model) : model;
  try {
    // Usage {} prices nothing: the call only matches provider and model.
    const r = calcPrice({}, lookupModel, mapping.providerId ? { providerId: mapping.providerId } : {});
    if (!r) return undefined;
    return {
      providerId: r.provider.id,
      model: r.model,
      lookupModel,
      single: { id: r.provider.id, name: r.provider.name, api_pattern: r.provider.api_pattern, models: [r.model] },
    };
  } catch {
    return undefined;
  }
}

const TieredPriceSchema = z.object({
  base: z.number().nonnegative(),
  tiers: z.array(z.object({ start: z.number().int().nonnegative(), price: z.number().nonnegative() })),
});

/**
 * A catalog model's prices as the operator pushes them in a snapshot: the catalog's own price
 * set (USD per million tokens, per thousand requests, tiers), for models whose prices do not
 * depend on the date or time of day. Those with start-date or time-of-day prices are not pushed:
 * the sidecar resolves them with the catalog itself.
 */
export const CatalogPriceSchema = z.object({
  /** Catalog provider id and model id that matched. */
  provider: z.string().min(1),
  model: z.string().min(1),
  prices: z.record(z.string(), z.union([z.number().nonnegative(), TieredPriceSchema])),
});
export type CatalogPrice = z.infer<typeof CatalogPriceSchema>;

/**
 * What a snapshot carries for one target: its catalog price, null when the catalog has none,
 * undefined when its prices depend on time (the sidecar then resolves them with the catalog).
 */
export function resolveCatalogPrice(calcPrice: typeof CalcPrice, provider: ProviderName, model: string): CatalogPrice | null | undefined {
  if (!catalogued(provider)) return null;
  const match = matchCatalog(calcPrice, provider, model);
  return match ? catalogPriceOf(match) : null;
}

/** The pushable price of a match; undefined when its prices depend on time (see CatalogPriceSchema). */
export function catalogPriceOf(match: CatalogMatch): CatalogPrice | undefined {
  const prices = match.model.prices;
  if (Array.isArray(prices)) return undefined;
  const plain: CatalogPrice['prices'] = {};
  for (const [key, value] of Object.entries(prices as ModelPrice)) {
    if (value === undefined) continue;
    plain[key] = typeof value === 'number' ? value : { base: value.base, tiers: value.tiers.map((t) => ({ start: t.start, price: t.price })) };
  }
  return { provider: match.providerId, model: match.model.id, prices: plain };
}
