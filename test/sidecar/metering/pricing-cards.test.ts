import { describe, expect, it } from 'vitest';
import type { CatalogPrice, Pricing, ProviderName } from '../../../crds/src/index.js';
import { Pricer, type PricedRoute } from '../../../sidecar/metering/pricing.js';
import type { Usage } from '../../../sidecar/usage.js';

/**
 * Catalog price semantics on synthetic price sets, pushed the way the operator pushes them (no
 * catalog loaded in this file): reasoning and per-request prices, tiers (the last tier whose start
 * is below the whole prompt, for every token of that kind), unit-only and empty price sets.
 * USD per million tokens ⇒ nano-USD per token: 1 → 1000.
 */

const u = (inputTokens: number, outputTokens: number, cacheReadTokens = 0, cacheWriteTokens = 0, reasoningTokens = 0): Usage => ({
  inputTokens,
  outputTokens,
  cacheReadTokens,
  cacheWriteTokens,
  reasoningTokens,
});

function pricerWith(prices: Record<string, unknown> | null, provider: ProviderName = 'openai', model = 'm'): Pricer {
  const p = new Pricer({ clock: () => new Date('2026-01-01T00:00:00Z') });
  const route: PricedRoute = {
    spec: { targets: [{ name: 't', provider, model }] },
    catalogPrices: { t: prices && ({ provider: 'cat-provider', model: 'cat-model', prices } as CatalogPrice) },
  };
  p.usePushedPrices([route]);
  return p;
}

describe('catalog price sets', () => {
  it('a reasoning price bills the reasoning part of the output apart', () => {
    const p = pricerWith({ input_mtok: 1, output_mtok: 2, output_reasoning_mtok: 3 });
    const q = p.price('openai', 'm', u(1000, 500, 0, 0, 200));
    expect(q).toEqual({
      costNano: 1000n * 1000n + 300n * 2000n + 200n * 3000n,
      known: true,
      source: 'catalog',
      breakdown: {
        catalogProvider: 'cat-provider',
        catalogModel: 'cat-model',
        lines: [
          { kind: 'input', quantity: 1000, nanoPerMillion: 1_000_000_000n },
          { kind: 'output', quantity: 300, nanoPerMillion: 2_000_000_000n },
          { kind: 'reasoning', quantity: 200, nanoPerMillion: 3_000_000_000n },
        ],
      },
    });
    // reported reasoning above the output is capped at the output
    expect(p.price('openai', 'm', u(0, 500, 0, 0, 900)).costNano).toBe(500n * 3000n);
    // without a reasoning price, reasoning is output
    expect(pricerWith({ input_mtok: 1, output_mtok: 2 }).price('openai', 'm', u(0, 500, 0, 0, 200)).costNano).toBe(500n * 2000n);
  });

  it('a per-request fee (per thousand requests) is one more line', () => {
    const p = pricerWith({ input_mtok: 1, output_mtok: 2, requests_kcount: 2 });
    const q = p.price('openai', 'm', u(100, 10));
    // $2 per thousand requests = 2,000,000 nano-USD per request
    expect(q.costNano).toBe(100n * 1000n + 10n * 2000n + 2_000_000n);
    expect(q.breakdown!.lines.at(-1)).toEqual({ kind: 'request', quantity: 1, nanoPerMillion: 2_000_000_000_000n });
    expect(p.worstCaseCost('openai', 'm', 100, 10)).toEqual({
      costNano: 100n * 1000n + 10n * 2000n + 2_000_000n,
      known: true,
      source: 'catalog',
      breakdown: {
        catalogProvider: 'cat-provider',
        catalogModel: 'cat-model',
        lines: [
          { kind: 'input', quantity: 100, nanoPerMillion: 1_000_000_000n },
          { kind: 'output', quantity: 10, nanoPerMillion: 2_000_000_000n },
          { kind: 'request', quantity: 1, nanoPerMillion: 2_000_000_000_000n },
        ],
      },
    });
  });

  it('tiers: the last one whose start is below the whole prompt, for all tokens of the kind', () => {
    const p = pricerWith({
      // tiers out of order on purpose
      input_mtok: { base: 1, tiers: [{ start: 1000, price: 2 }, { start: 500, price: 1.5 }] },
      cache_read_mtok: 0.5,
      output_mtok: { base: 4, tiers: [{ start: 500, price: 5 }] },
    });
    expect(p.price('openai', 'm', u(500, 10)).costNano).toBe(500n * 1000n + 10n * 4000n);
    expect(p.price('openai', 'm', u(500, 10)).breakdown!.tierAboveInputTokens).toBeUndefined();
    expect(p.price('openai', 'm', u(501, 10)).costNano).toBe(501n * 1500n + 10n * 5000n);
    expect(p.price('openai', 'm', u(501, 10)).breakdown!.tierAboveInputTokens).toBe(500);
    expect(p.price('openai', 'm', u(1000, 10)).costNano).toBe(1000n * 1500n + 10n * 5000n);
    const high = p.price('openai', 'm', u(1001, 10, 600));
    expect(high.costNano).toBe(401n * 2000n + 600n * 500n + 10n * 5000n);
    expect(high.breakdown!.tierAboveInputTokens).toBe(1000);
    // the prompt is never smaller than its reported parts
    expect(p.price('openai', 'm', u(100, 0, 600)).costNano).toBe(0n * 1500n + 600n * 500n);
    expect(p.price('openai', 'm', u(100, 0, 600)).breakdown!.tierAboveInputTokens).toBe(500);
  });

  it('worst case: the highest input-side and output price of every tier the prompt can reach', () => {
    const p = pricerWith({
      input_mtok: { base: 1, tiers: [{ start: 1000, price: 2 }] },
      cache_write_mtok: 1.25,
      cache_read_mtok: 0.1,
      output_mtok: { base: 4, tiers: [{ start: 1000, price: 3 }] },
      output_reasoning_mtok: 4.5,
    });
    // base tier only: cache write (1.25) beats input (1); reasoning (4.5) beats output (4)
    expect(p.worstCaseCost('openai', 'm', 1000, 10).costNano).toBe(1000n * 1250n + 10n * 4500n);
    // both tiers: input 2 beats 1.25
    expect(p.worstCaseCost('openai', 'm', 1001, 10).costNano).toBe(1001n * 2000n + 10n * 4500n);
    expect(p.worstCaseCost('openai', 'm', 1001, 10).breakdown!.lines).toEqual([
      { kind: 'input', quantity: 1001, nanoPerMillion: 2_000_000_000n },
      { kind: 'output', quantity: 10, nanoPerMillion: 4_500_000_000n },
    ]);
  });

  it('cache reads priced, cache writes not: the writes stay in the input part', () => {
    const p = pricerWith({ input_mtok: 1, cache_read_mtok: 0.1, output_mtok: 2 });
    expect(p.price('openai', 'm', u(1000, 0, 300, 200)).breakdown!.lines).toEqual([
      { kind: 'input', quantity: 700, nanoPerMillion: 1_000_000_000n },
      { kind: 'cacheRead', quantity: 300, nanoPerMillion: 100_000_000n },
      { kind: 'output', quantity: 0, nanoPerMillion: 2_000_000_000n },
    ]);
    expect(p.unitPrices('openai', 'm')).toEqual({ input: 1_000_000_000n, output: 2_000_000_000n, cachedInput: 100_000_000n, cacheWrite: 1_000_000_000n, source: 'catalog' });
    const w = pricerWith({ input_mtok: 1, cache_write_mtok: 1.25, output_mtok: 2 });
    expect(w.price('openai', 'm', u(1000, 0, 300, 200)).costNano).toBe(800n * 1000n + 200n * 1250n);
    expect(w.unitPrices('openai', 'm')).toMatchObject({ cachedInput: 1_000_000_000n, cacheWrite: 1_250_000_000n });
  });

  it('only an output price, or an empty price set (free): known; only units paygo does not meter: unknown', () => {
    expect(pricerWith({ output_mtok: 2 }).price('openai', 'm', u(1000, 10)).costNano).toBe(10n * 2000n);
    expect(pricerWith({ input_mtok: 2 }).price('openai', 'm', u(1000, 10)).costNano).toBe(1000n * 2000n);
    expect(pricerWith({}).price('openai', 'm', u(1000, 10))).toMatchObject({ known: true, costNano: 0n });
    expect(pricerWith({}).unitPrice('openai', 'm')).toBe(0n);
    const audio = pricerWith({ input_audio_mtok: 5 });
    expect(audio.price('openai', 'm', u(1000, 10))).toEqual({ costNano: 0n, known: false, source: 'unknown' });
    expect(audio.worstCaseCost('openai', 'm', 1000, 10)).toEqual({ costNano: 0n, known: false, source: 'unknown' });
    expect(audio.unitPrices('openai', 'm')).toBeUndefined();
    // an unmetered unit next to token prices is ignored
    expect(pricerWith({ input_mtok: 1, output_mtok: 2, input_audio_mtok: 5 }).price('openai', 'm', u(1000, 10)).costNano).toBe(1000n * 1000n + 10n * 2000n);
  });

  it('pushed "no price" (null) is unknown; other providers and models are not pushed', () => {
    const none = pricerWith(null);
    expect(none.price('openai', 'm', u(1, 1))).toEqual({ costNano: 0n, known: false, source: 'unknown' });
    expect(none.worstCaseCost('openai', 'm', 1, 1).known).toBe(false);
    const p = pricerWith({ input_mtok: 1, output_mtok: 2 });
    expect(p.price('anthropic', 'm', u(1, 1)).known).toBe(false);
    expect(p.price('openai', 'other', u(1, 1)).known).toBe(false);
    expect(p.unitPrice('openai', 'm')).toBe(3_000_000_000n);
  });

  it('a target with pricing and a target without pushed prices push nothing', () => {
    const p = new Pricer();
    p.usePushedPrices([
      {
        spec: {
          targets: [
            { name: 'a', provider: 'openai', model: 'x', pricing: { input: '9', output: '9' } },
            { name: 'b', provider: 'openai', model: 'y' },
          ],
        },
        catalogPrices: { a: { provider: 'openai', model: 'x', prices: { input_mtok: 1 } }, c: { provider: 'openai', model: 'y', prices: { input_mtok: 1 } } },
      },
      { spec: { targets: [{ provider: 'openai', model: 'z' }] } },
    ]);
    expect(p.price('openai', 'x', u(1, 1)).known).toBe(false);
    expect(p.price('openai', 'y', u(1, 1)).known).toBe(false);
    expect(p.price('openai', 'z', u(1, 1)).known).toBe(false);
  });
});

describe('overrides: breakdown and worst case', () => {
  it('an override\'s breakdown has the lines and the tier, no catalog names', () => {
    const pricing: Pricing = { input: '1', output: '2', cachedInput: '0.5', tiers: [{ aboveInputTokens: 100, output: '3', cacheWrite: '4' }] };
    const p = new Pricer();
    expect(p.price('simulate', 's', u(200, 10, 50, 20), pricing)).toEqual({
      costNano: 130n * 1000n + 50n * 500n + 20n * 4000n + 10n * 3000n,
      known: true,
      source: 'override',
      breakdown: {
        tierAboveInputTokens: 100,
        lines: [
          { kind: 'input', quantity: 130, nanoPerMillion: 1_000_000_000n },
          { kind: 'cacheRead', quantity: 50, nanoPerMillion: 500_000_000n },
          { kind: 'cacheWrite', quantity: 20, nanoPerMillion: 4_000_000_000n },
          { kind: 'output', quantity: 10, nanoPerMillion: 3_000_000_000n },
        ],
      },
    });
    expect(p.worstCaseCost('simulate', 's', 200, 10, pricing)).toEqual({
      costNano: 200n * 4000n + 10n * 3000n,
      known: true,
      source: 'override',
      breakdown: {
        lines: [
          { kind: 'input', quantity: 200, nanoPerMillion: 4_000_000_000n },
          { kind: 'output', quantity: 10, nanoPerMillion: 3_000_000_000n },
        ],
      },
    });
    // the tier is out of reach of a prompt of 100
    expect(p.worstCaseCost('simulate', 's', 100, 10, pricing).costNano).toBe(100n * 1000n + 10n * 2000n);
    expect(p.unitPrices('simulate', 's', pricing)).toEqual({ input: 1_000_000_000n, output: 2_000_000_000n, cachedInput: 500_000_000n, cacheWrite: 1_000_000_000n, source: 'override' });
  });

  it('a tier naming an output price or cached input only, a base naming cache write', () => {
    const pricing: Pricing = { input: '1', output: '2', cacheWrite: '1.5', tiers: [{ aboveInputTokens: 10, cachedInput: '0.2' }] };
    const p = new Pricer();
    // tier: input and output stay the base's, cached input from the tier, cache write the base's
    expect(p.price('simulate', 's', u(100, 10, 30, 20), pricing).costNano).toBe(50n * 1000n + 30n * 200n + 20n * 1500n + 10n * 2000n);
    expect(p.price('simulate', 's', u(10, 10, 5, 0), pricing).costNano).toBe(5n * 1000n + 5n * 1000n + 10n * 2000n);
  });
});
