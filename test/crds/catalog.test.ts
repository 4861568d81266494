import { calcPrice, findProvider } from '@pydantic/genai-prices';
import { describe, expect, it } from 'vitest';
import { CATALOG_MAPPING, CatalogPriceSchema, catalogPriceOf, matchCatalog, type ProviderName } from '../../crds/src/index.js';
import { loadCatalog, Pricer } from '../../sidecar/metering/pricing.js';

/**
 * Catalog prices the operator pushes must price exactly as the sidecar's own catalog look-up:
 * every model of every catalogued provider, with usage that touches every price line and tier.
 */
await loadCatalog();
const AT = new Date('2025-09-01T12:00:00Z');
const usages = [
  { inputTokens: 1234, outputTokens: 567, cacheReadTokens: 200, cacheWriteTokens: 100, reasoningTokens: 50 },
  { inputTokens: 1_500_000, outputTokens: 9_000, cacheReadTokens: 400_000, cacheWriteTokens: 0, reasoningTokens: 0 },
];

function catalogModels(): Array<[ProviderName, string]> {
  const out: Array<[ProviderName, string]> = [];
  for (const [provider, mapping] of Object.entries(CATALOG_MAPPING) as Array<[ProviderName, (typeof CATALOG_MAPPING)[ProviderName]]>) {
    if (!mapping?.providerId || mapping.rewrite) continue;
    for (const m of findProvider({ providerId: mapping.providerId })?.models ?? []) out.push([provider, m.id]);
  }
  return out;
}

describe('catalog prices pushed in snapshots', () => {
  const models = catalogModels();

  it('covers the catalog (sanity: hundreds of models across providers)', () => {
    expect(models.length).toBeGreaterThan(300);
  });

  it('price, worst case and unit prices from pushed prices equal the catalog look-up for every plain-priced model', () => {
    let compared = 0;
    let timeDependent = 0;
    for (const [provider, model] of models) {
      const match = matchCatalog(calcPrice, provider, model);
      if (!match) continue;
      const pushed = catalogPriceOf(match);
      if (!pushed) {
        timeDependent++;
        expect(Array.isArray(match.model.prices)).toBe(true);
        continue;
      }
      // what travels is JSON, and it passes the snapshot schema
      const wire = CatalogPriceSchema.parse(JSON.parse(JSON.stringify(pushed)));
      const fromCatalog = new Pricer({ clock: () => AT });
      const fromPush = new Pricer({ clock: () => AT });
      fromPush.usePushedPrices([{ spec: { targets: [{ name: 't', provider, model }] }, catalogPrices: { t: wire } }]);
      for (const u of usages) expect(fromPush.price(provider, model, u, undefined, AT), `${provider} ${model}`).toEqual(fromCatalog.price(provider, model, u, undefined, AT));
      expect(fromPush.worstCaseCost(provider, model, 300_000, 4096, undefined, AT)).toEqual(fromCatalog.worstCaseCost(provider, model, 300_000, 4096, undefined, AT));
      expect(fromPush.unitPrices(provider, model, undefined, AT)).toEqual(fromCatalog.unitPrices(provider, model, undefined, AT));
      compared++;
    }
    expect(compared).toBeGreaterThan(300);
    expect(timeDependent).toBeGreaterThan(0);
  });

  it('models with start-date or time-of-day prices are not pushed (the sidecar resolves them with the catalog)', () => {
    const deepseek = matchCatalog(calcPrice, 'deepseek', 'deepseek-chat');
    expect(deepseek && Array.isArray(deepseek.model.prices)).toBe(true);
    expect(catalogPriceOf(deepseek!)).toBeUndefined();
  });

  it('providers the catalog does not price, and unknown models, have no match', () => {
    expect(matchCatalog(calcPrice, 'simulate', 'anything')).toBeUndefined();
    expect(matchCatalog(calcPrice, 'azure', 'my-deployment')).toBeUndefined();
    expect(matchCatalog(calcPrice, 'openai', 'no-such-model-xyz')).toBeUndefined();
  });

  it('the snapshot schema refuses negative or non-numeric prices', () => {
    expect(CatalogPriceSchema.safeParse({ provider: 'openai', model: 'x', prices: { input_mtok: -1 } }).success).toBe(false);
    expect(CatalogPriceSchema.safeParse({ provider: 'openai', model: 'x', prices: { input_mtok: '1' } }).success).toBe(false);
  });
});
