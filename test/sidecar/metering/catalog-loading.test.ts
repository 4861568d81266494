import { describe, expect, it } from 'vitest';
import { catalogLoaded, loadCatalog, Pricer } from '../../../sidecar/metering/pricing.js';

/** The price catalog is loaded only when a config needs it (its own module instance in this file). */
const usage = { inputTokens: 1000, outputTokens: 100, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 };

describe('price catalog loading', () => {
  it('a config needs the catalog only for a target without a pricing override on a catalogued provider', () => {
    expect(Pricer.needsCatalog([{ provider: 'simulate' }])).toBe(false);
    expect(Pricer.needsCatalog([{ provider: 'openai', pricing: { input: '1', output: '2' } }])).toBe(false);
    expect(Pricer.needsCatalog([{ provider: 'simulate' }, { provider: 'anthropic' }])).toBe(true);
    expect(Pricer.needsCatalog([{ provider: 'openai-compatible' }])).toBe(true);
  });

  it('until loaded, catalog prices are unknown (never $0) and overrides still price; once loaded, the catalog prices', async () => {
    const pricer = new Pricer();
    expect(catalogLoaded()).toBe(false);
    expect(pricer.price('openai', 'gpt-4o-mini', usage)).toMatchObject({ known: false, source: 'unknown' });
    expect(pricer.price('openai', 'gpt-4o-mini', usage, { input: '1', output: '2' })).toMatchObject({ known: true, source: 'override', costNano: 1_200_000n });
    await loadCatalog();
    expect(catalogLoaded()).toBe(true);
    expect(pricer.price('openai', 'gpt-4o-mini', usage)).toMatchObject({ known: true, source: 'catalog' });
  });
});
