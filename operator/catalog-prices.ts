import { calcPrice } from '@pydantic/genai-prices';
import { resolveCatalogPrice, type CatalogPrice, type ProviderName } from '../crds/src/index.js';

/**
 * Catalog prices for the snapshots the operator pushes, so that sidecars (one per pod) never load
 * the ≈ 10 MB price catalog for the targets the catalog prices; the operator loads it once. Cached per
 * provider and model, misses too; bounded because model names come from ModelRoutes.
 */
const MAX_ENTRIES = 4096;
const cache = new Map<string, CatalogPrice | null | undefined>();

export function catalogPrice(provider: ProviderName, model: string): CatalogPrice | null | undefined {
  const key = `${provider}\u0000${model}`;
  if (cache.has(key)) return cache.get(key);
  const price = resolveCatalogPrice(calcPrice, provider, model);
  if (cache.size >= MAX_ENTRIES) cache.clear();
  cache.set(key, price);
  return price;
}
