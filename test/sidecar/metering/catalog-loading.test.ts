import { describe, expect, it } from 'vitest';
import type { CatalogPrice, Pricing, ProviderName } from '../../../crds/src/index.js';
import { catalogLoaded, loadCatalog, Pricer, type PricedRoute } from '../../../sidecar/metering/pricing.js';

/** The price catalog is loaded only when a config needs it (its own module instance in this file). */
const usage = { inputTokens: 1000, outputTokens: 100, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 };

const route = (targets: Array<{ provider: ProviderName; model?: string; name?: string; pricing?: Pricing }>, catalogPrices?: Record<string, CatalogPrice>): PricedRoute => ({
  spec: { targets: targets.map((t) => ({ model: 'm', ...t })) },
  ...(catalogPrices ? { catalogPrices } : {}),
});

/** gpt-4o-mini as the operator pushes it (the catalog's own numbers). */
const GPT_4O_MINI: CatalogPrice = { provider: 'openai', model: 'gpt-4o-mini', prices: { input_mtok: 0.15, cache_read_mtok: 0.075, output_mtok: 0.6 } };

describe('price catalog loading', () => {
  it('a config needs the catalog only for a target without pricing or pushed catalog prices on a catalogued provider', () => {
    expect(Pricer.needsCatalog([route([{ provider: 'simulate' }])])).toBe(false);
    expect(Pricer.needsCatalog([route([{ provider: 'openai', pricing: { input: '1', output: '2' } }])])).toBe(false);
    expect(Pricer.needsCatalog([route([{ provider: 'simulate' }, { provider: 'anthropic' }])])).toBe(true);
    expect(Pricer.needsCatalog([route([{ provider: 'openai-compatible' }])])).toBe(true);
    // pushed prices are looked up by target name (name, else provider, else provider-index)
    expect(Pricer.needsCatalog([route([{ provider: 'openai', name: 'a' }], { a: GPT_4O_MINI })])).toBe(false);
    expect(Pricer.needsCatalog([route([{ provider: 'openai', name: 'a' }, { provider: 'anthropic', name: 'b' }], { a: GPT_4O_MINI })])).toBe(true);
    expect(Pricer.needsCatalog([route([{ provider: 'openai', name: 'a' }], { other: GPT_4O_MINI })])).toBe(true);
  });

  it('pushed catalog prices price without the catalog; a new snapshot replaces them', () => {
    const pricer = new Pricer();
    pricer.usePushedPrices([route([{ provider: 'openai', model: 'gpt-4o-mini', name: 'a' }], { a: GPT_4O_MINI })]);
    // 1000 × $0.15 + 100 × $0.60 per million = $0.00021
    expect(pricer.price('openai', 'gpt-4o-mini', usage)).toMatchObject({
      known: true,
      source: 'catalog',
      costNano: 210_000n,
      breakdown: { catalogProvider: 'openai', catalogModel: 'gpt-4o-mini' },
    });
    // the same model on another provider was not pushed
    expect(pricer.price('openai-compatible', 'gpt-4o-mini', usage)).toMatchObject({ known: false });
    // a target with its own pricing never uses pushed prices
    pricer.usePushedPrices([route([{ provider: 'openai', model: 'gpt-4o-mini', name: 'a', pricing: { input: '1', output: '1' } }], { a: GPT_4O_MINI })]);
    expect(pricer.price('openai', 'gpt-4o-mini', usage)).toMatchObject({ known: false });
    expect(catalogLoaded()).toBe(false);
  });

  it('until loaded, catalog prices are unknown (never $0) and overrides still price; once loaded, the catalog prices', async () => {
    const pricer = new Pricer();
    expect(catalogLoaded()).toBe(false);
    expect(pricer.price('openai', 'gpt-4o-mini', usage)).toMatchObject({ known: false, source: 'unknown' });
    expect(pricer.price('openai', 'gpt-4o-mini', usage, { input: '1', output: '2' })).toMatchObject({ known: true, source: 'override', costNano: 1_200_000n });
    await loadCatalog();
    expect(catalogLoaded()).toBe(true);
    expect(pricer.price('openai', 'gpt-4o-mini', usage)).toMatchObject({ known: true, source: 'catalog', costNano: 210_000n });
  });
});
