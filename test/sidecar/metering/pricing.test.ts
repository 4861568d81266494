import { calcPrice } from '@pydantic/genai-prices';
import { describe, expect, it } from 'vitest';
import type { Pricing, ProviderName } from '../../../crds/src/index.js';
import { createPricer, loadCatalog, Pricer } from '../../../sidecar/metering/pricing.js';
import type { Usage } from '../../../sidecar/usage.js';

/**
 * Expected costs are computed by hand from prices copied out of the bundled catalog,
 * node_modules/@pydantic/genai-prices/dist/index.js (package version 0.1.8), as literals:
 *   openai/gpt-4o-mini        (line ~16668): input 0.15, cache_read 0.075, output 0.6 USD/M
 *   anthropic/claude-sonnet-4-5 (line ~675): input 3 (>200K: 6), cache_write 3.75 (7.5),
 *                                            cache_read 0.3 (0.6), output 15 (22.5)
 *   google/gemini-2.5-pro     (line ~8414):  input 1.25 (>200K: 2.5), cache_read 0.125 (0.25),
 *                                            output 10 (15)
 *   deepseek/deepseek-chat    (line ~5400):  off-peak (default) 0.135 / cache_read 0.035 / 0.55;
 *                                            00:30-16:30 UTC (peak) 0.27 / 0.07 / 1.1
 *   openrouter/qwen/qwen-plus (line ~25460): input 0.4, cache_read 0.16, output 1.2
 * USD per million tokens ⇒ nano-USD per token: 0.15 → 150, 0.075 → 75, 3 → 3000, 0.3 → 300, ...
 */

const AT = new Date('2025-06-01T12:00:00Z'); // peak for DeepSeek
const OFF_PEAK = new Date('2025-06-01T20:00:00Z');

const u = (inputTokens: number, outputTokens: number, cacheReadTokens = 0, cacheWriteTokens = 0, reasoningTokens = 0): Usage => ({
  inputTokens,
  outputTokens,
  cacheReadTokens,
  cacheWriteTokens,
  reasoningTokens,
});

await loadCatalog();
const pricer = new Pricer({ clock: () => AT });

interface Case {
  name: string;
  provider: ProviderName;
  model: string;
  usage: Usage;
  at?: Date;
  expected: bigint;
}

const catalogCases: Case[] = [
  {
    name: 'gpt-4o-mini plain',
    provider: 'openai',
    model: 'gpt-4o-mini',
    usage: u(1000, 500),
    expected: 1000n * 150n + 500n * 600n, // 450_000 nano = $0.00045
  },
  {
    name: 'gpt-4o-mini dated snapshot id',
    provider: 'openai',
    model: 'gpt-4o-mini-2024-07-18',
    usage: u(1000, 500),
    expected: 450_000n,
  },
  {
    name: 'gpt-4o-mini with cached prompt tokens (half price)',
    provider: 'openai',
    model: 'gpt-4o-mini',
    usage: u(10_000, 200, 8_000),
    expected: 2_000n * 150n + 8_000n * 75n + 200n * 600n, // 1_020_000
  },
  {
    name: 'gpt-4o-mini: OpenAI does not price cache writes, they stay input',
    provider: 'openai',
    model: 'gpt-4o-mini',
    usage: u(10_000, 0, 0, 4_000),
    expected: 10_000n * 150n,
  },
  {
    name: 'claude-sonnet-4-5 with cache read and cache write',
    provider: 'anthropic',
    model: 'claude-sonnet-4-5',
    usage: u(50_000, 2_000, 30_000, 10_000),
    // uncached 10_000 × 3000 + read 30_000 × 300 + write 10_000 × 3750 + out 2_000 × 15_000
    expected: 30_000_000n + 9_000_000n + 37_500_000n + 30_000_000n, // 106_500_000 = $0.1065
  },
  {
    name: 'claude-sonnet-4-5 above 200K prompt tokens: long-context tier for every kind',
    provider: 'anthropic',
    model: 'claude-sonnet-4-5-20250929',
    usage: u(300_000, 1_000, 100_000),
    expected: 200_000n * 6000n + 100_000n * 600n + 1_000n * 22_500n, // 1_282_500_000
  },
  {
    name: 'gemini-2.5-pro at exactly 200K prompt tokens: base tier',
    provider: 'gemini',
    model: 'gemini-2.5-pro',
    usage: u(200_000, 1_000),
    expected: 200_000n * 1250n + 1_000n * 10_000n, // 260_000_000
  },
  {
    name: 'gemini-2.5-pro at 200_001 prompt tokens: long-context tier',
    provider: 'gemini',
    model: 'gemini-2.5-pro',
    usage: u(200_001, 1_000),
    expected: 200_001n * 2500n + 1_000n * 15_000n, // 515_002_500
  },
  {
    name: 'gemini-2.5-pro long context with cached tokens (tier chosen by the whole prompt)',
    provider: 'gemini',
    model: 'models/gemini-2.5-pro',
    usage: u(250_000, 1_000, 100_000),
    expected: 150_000n * 2500n + 100_000n * 250n + 1_000n * 15_000n, // 415_000_000
  },
  {
    name: 'deepseek-chat at peak (12:00 UTC)',
    provider: 'deepseek',
    model: 'deepseek-chat',
    usage: u(1_000_000, 100_000, 400_000),
    at: AT,
    expected: 600_000n * 270n + 400_000n * 70n + 100_000n * 1100n, // 300_000_000
  },
  {
    name: 'deepseek-chat off-peak (20:00 UTC): half price',
    provider: 'deepseek',
    model: 'deepseek-chat',
    usage: u(1_000_000, 100_000, 400_000),
    at: OFF_PEAK,
    expected: 600_000n * 135n + 400_000n * 35n + 100_000n * 550n, // 150_000_000
  },
  {
    name: 'deepseek-chat at 16:30:00 UTC: off-peak starts (window end is exclusive)',
    provider: 'deepseek',
    model: 'deepseek-chat',
    usage: u(1_000_000, 0),
    at: new Date('2025-06-01T16:30:00Z'),
    expected: 1_000_000n * 135n,
  },
  {
    name: 'deepseek-chat at 00:30:00 UTC: peak starts',
    provider: 'deepseek',
    model: 'deepseek-chat',
    usage: u(1_000_000, 0),
    at: new Date('2025-06-02T00:30:00Z'),
    expected: 1_000_000n * 270n,
  },
  {
    name: 'qwen via the OpenRouter table (qwen/qwen-plus)',
    provider: 'qwen',
    model: 'qwen-plus',
    usage: u(10_000, 1_000, 5_000),
    expected: 5_000n * 400n + 5_000n * 160n + 1_000n * 1200n, // 4_000_000
  },
  {
    name: 'openai-compatible matches by model name across providers',
    provider: 'openai-compatible',
    model: 'gpt-4o-mini',
    usage: u(1000, 500),
    expected: 450_000n,
  },
  {
    name: 'tiny usage: one prompt token of gpt-4o-mini',
    provider: 'openai',
    model: 'gpt-4o-mini',
    usage: u(1, 0),
    expected: 150n,
  },
  {
    name: 'tiny usage: one cached token of deepseek-chat off-peak ($0.035/M = 35 nano)',
    provider: 'deepseek',
    model: 'deepseek-chat',
    usage: u(1, 0, 1),
    at: OFF_PEAK,
    expected: 35n,
  },
];

describe('Pricer.price: catalog', () => {
  it.each(catalogCases)('$name', (c) => {
    const q = pricer.price(c.provider, c.model, c.usage, undefined, c.at);
    expect(q.known).toBe(true);
    expect(q.source).toBe('catalog');
    expect(q.costNano).toBe(c.expected);
  });

  it('uses the injected clock when no time is given', () => {
    const usage = u(1_000_000, 0);
    expect(new Pricer({ clock: () => AT }).price('deepseek', 'deepseek-chat', usage).costNano).toBe(270_000_000n);
    expect(new Pricer({ clock: () => OFF_PEAK }).price('deepseek', 'deepseek-chat', usage).costNano).toBe(135_000_000n);
    expect(createPricer({ clock: () => OFF_PEAK }).price('deepseek', 'deepseek-chat', usage, undefined, new Date(Number.NaN)).costNano).toBe(
      135_000_000n,
    );
  });

  it('explains the cost in a breakdown whose lines sum to it', () => {
    const q = pricer.price('anthropic', 'claude-sonnet-4-5', u(300_000, 1_000, 100_000, 50_000));
    expect(q.breakdown).toEqual({
      catalogProvider: 'anthropic',
      catalogModel: 'claude-sonnet-4-5',
      tierAboveInputTokens: 200_000,
      lines: [
        { kind: 'input', quantity: 150_000, nanoPerMillion: 6_000_000_000n },
        { kind: 'cacheRead', quantity: 100_000, nanoPerMillion: 600_000_000n },
        { kind: 'cacheWrite', quantity: 50_000, nanoPerMillion: 7_500_000_000n },
        { kind: 'output', quantity: 1_000, nanoPerMillion: 22_500_000_000n },
      ],
    });
    const sum = q.breakdown!.lines.reduce((s, l) => s + BigInt(l.quantity) * l.nanoPerMillion, 0n);
    expect(q.costNano).toBe(sum / 1_000_000n);
  });

  it('does not throw on inconsistent usage (cache parts above the prompt)', () => {
    // uncached part is clamped to 0; the parts are charged as reported
    const q = pricer.price('openai', 'gpt-4o-mini', u(100, 0, 300));
    expect(q.costNano).toBe(300n * 75n);
  });

  it('agrees with the catalog\'s own float computation for every model of the mapped providers', () => {
    const usage = u(123_457, 7_891, 45_678, 0);
    let compared = 0;
    for (const [provider, catalogId] of [
      ['openai', 'openai'],
      ['anthropic', 'anthropic'],
      ['deepseek', 'deepseek'],
      ['mistral', 'mistral'],
      ['gemini', 'google'],
    ] as const) {
      for (const model of ['gpt-4o', 'gpt-4o-mini', 'gpt-4.1', 'o3', 'claude-3-5-haiku-latest', 'claude-opus-4-1', 'deepseek-reasoner', 'mistral-small-latest', 'gemini-2.0-flash', 'gemini-2.5-flash']) {
        const ref = calcPrice({ input_tokens: usage.inputTokens, cache_read_tokens: usage.cacheReadTokens, output_tokens: usage.outputTokens }, model, {
          providerId: catalogId,
          timestamp: AT,
        });
        const q = pricer.price(provider, model, usage, undefined, AT);
        if (!ref) {
          expect(q.known).toBe(false);
          continue;
        }
        compared++;
        expect(q.known).toBe(true);
        const refNano = ref.total_price * 1e9;
        expect(Math.abs(Number(q.costNano) - refNano)).toBeLessThanOrEqual(Math.max(1, refNano * 1e-12));
      }
    }
    expect(compared).toBeGreaterThan(10);
  });
});

describe('Pricer.price: overrides', () => {
  const flat: Pricing = { input: '1.00', output: '2.00' };
  const cached: Pricing = { input: '1.00', output: '2.00', cachedInput: '0.10', cacheWrite: '1.25' };
  // Tiers deliberately out of order.
  const tiered: Pricing = {
    input: '1',
    output: '2',
    cachedInput: '0.1',
    tiers: [
      { aboveInputTokens: 200_000, input: '3', output: '4' },
      { aboveInputTokens: 128_000, input: '2' },
    ],
  };

  it.each([
    ['flat, cached input defaults to the input price', flat, u(1000, 100, 500), 1000n * 1000n + 100n * 2000n],
    ['cached input and cache write prices', cached, u(1000, 100, 500, 200), 300n * 1000n + 500n * 100n + 200n * 1250n + 100n * 2000n],
    ['tiers: below every threshold', tiered, u(100_000, 1000), 100_000n * 1000n + 1000n * 2000n],
    ['tiers: exactly at a threshold is not above it', tiered, u(128_000, 1000), 128_000n * 1000n + 1000n * 2000n],
    // tier >128K names only input: output and the explicit base cachedInput stay
    ['tiers: first tier replaces only input', tiered, u(150_000, 1000, 50_000), 100_000n * 2000n + 50_000n * 100n + 1000n * 2000n],
    ['tiers: highest tier wins', tiered, u(250_000, 1000), 250_000n * 3000n + 1000n * 4000n],
  ] as const)('%s', (_name, pricing, usage, expected) => {
    const q = pricer.price('openai', 'gpt-4o-mini', usage, pricing, AT);
    expect(q).toMatchObject({ known: true, source: 'override', costNano: expected });
  });

  it('a tier without cachedInput makes the default follow the tier input price', () => {
    const p: Pricing = { input: '1', output: '2', tiers: [{ aboveInputTokens: 1000, input: '5' }] };
    expect(pricer.price('openai', 'x', u(2000, 0, 1000), p).costNano).toBe(2000n * 5000n);
  });

  it('wins over the catalog and prices the simulate provider', () => {
    expect(pricer.price('openai', 'gpt-4o-mini', u(1000, 500), flat).costNano).toBe(1_000_000n + 1_000_000n);
    expect(pricer.price('simulate', 'anything', u(1000, 500), flat)).toMatchObject({ known: true, source: 'override', costNano: 2_000_000n });
  });

  it('rounds half a nano-dollar up, once per request', () => {
    // $0.0005/M = 0.5 nano per token
    expect(pricer.price('simulate', 's', u(1, 0), { input: '0.0005', output: '0' }).costNano).toBe(1n);
    // 0.4 nano input + 0.1 nano output = 0.5 → 1 (rounding each kind would give 0)
    expect(pricer.price('simulate', 's', u(1, 1), { input: '0.0004', output: '0.0001' }).costNano).toBe(1n);
    expect(pricer.price('simulate', 's', u(1, 0), { input: '0.000499999', output: '0' }).costNano).toBe(0n);
    // smallest price: 1 nano per million tokens
    expect(pricer.price('simulate', 's', u(499_999, 0), { input: '0.000000001', output: '0' }).costNano).toBe(0n);
    expect(pricer.price('simulate', 's', u(500_000, 0), { input: '0.000000001', output: '0' }).costNano).toBe(1n);
    expect(pricer.price('simulate', 's', u(0, 0), flat)).toMatchObject({ known: true, costNano: 0n });
  });
});

describe('Pricer.price: unknown models', () => {
  it.each([
    ['openai', 'gpt-does-not-exist'],
    ['anthropic', 'not-a-claude'],
    ['simulate', 'gpt-4o-mini'],
    ['openai-compatible', 'llama-3-8b-local'],
    ['qwen', 'qwen-nonexistent'],
  ] as const)('%s %s → known: false', (provider, model) => {
    expect(pricer.price(provider, model, u(1000, 1000), undefined, AT)).toEqual({ known: false, costNano: 0n, source: 'unknown' });
    expect(pricer.worstCaseCost(provider, model, 1000, 1000, undefined, AT)).toEqual({ known: false, costNano: 0n, source: 'unknown' });
    expect(pricer.unitPrices(provider, model, undefined, AT)).toBeUndefined();
    expect(pricer.unitPrice(provider, model, undefined, AT)).toBeUndefined();
  });

  it('is stable across repeated look-ups (misses are cached too)', () => {
    const p = new Pricer({ maxCacheEntries: 2 });
    for (let i = 0; i < 5; i++) {
      expect(p.price('openai', `nope-${i % 3}`, u(1, 1)).known).toBe(false);
      expect(p.price('openai', 'gpt-4o-mini', u(1, 0)).costNano).toBe(150n);
    }
  });
});

describe('Pricer.worstCaseCost', () => {
  it('prices input at the highest input-side price and output at max', () => {
    expect(pricer.worstCaseCost('openai', 'gpt-4o-mini', 1000, 500)).toMatchObject({ known: true, source: 'catalog', costNano: 1000n * 150n + 500n * 600n });
    // Anthropic cache writes (3.75) cost more than plain input (3)
    expect(pricer.worstCaseCost('anthropic', 'claude-sonnet-4-5', 1000, 100).costNano).toBe(1000n * 3750n + 100n * 15_000n);
  });

  it('uses the long-context tier the prompt can reach', () => {
    expect(pricer.worstCaseCost('anthropic', 'claude-sonnet-4-5', 300_000, 1000).costNano).toBe(300_000n * 7500n + 1000n * 22_500n);
    expect(pricer.worstCaseCost('gemini', 'gemini-2.5-pro', 200_000, 1000).costNano).toBe(200_000n * 1250n + 1000n * 10_000n);
  });

  it('covers a time-of-day window the request may finish in', () => {
    // reserved off-peak: still bounded by the peak price
    expect(pricer.worstCaseCost('deepseek', 'deepseek-chat', 1000, 1000, undefined, OFF_PEAK).costNano).toBe(1000n * 270n + 1000n * 1100n);
  });

  it('overrides: every tier up to the prompt size', () => {
    const tiered: Pricing = { input: '1', output: '2', cacheWrite: '1.5', tiers: [{ aboveInputTokens: 200_000, input: '3', output: '4' }] };
    expect(pricer.worstCaseCost('simulate', 's', 100_000, 1000, tiered)).toMatchObject({ source: 'override', costNano: 100_000n * 1500n + 1000n * 2000n });
    // tier: input 3, cacheWrite stays the base 1.5 → 3 is the max
    expect(pricer.worstCaseCost('simulate', 's', 250_000, 1000, tiered).costNano).toBe(250_000n * 3000n + 1000n * 4000n);
  });

  it('bounds the actual cost of any usage within the limits', () => {
    const cases: Array<[ProviderName, string, Pricing | undefined]> = [
      ['openai', 'gpt-4o-mini', undefined],
      ['anthropic', 'claude-sonnet-4-5', undefined],
      ['gemini', 'gemini-2.5-pro', undefined],
      ['deepseek', 'deepseek-chat', undefined],
      ['simulate', 's', { input: '1', output: '2', cachedInput: '0.5', cacheWrite: '1.25', tiers: [{ aboveInputTokens: 1000, input: '3' }] }],
    ];
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % (n + 1);
    };
    for (const [provider, model, override] of cases) {
      for (let i = 0; i < 200; i++) {
        const maxIn = rnd(400_000);
        const maxOut = rnd(50_000);
        const input = rnd(maxIn);
        const cacheRead = rnd(input);
        const cacheWrite = rnd(input - cacheRead);
        const at = new Date(Date.UTC(2025, 5, 1, rnd(23), rnd(59)));
        const bound = pricer.worstCaseCost(provider, model, maxIn, maxOut, override, OFF_PEAK).costNano;
        const actual = pricer.price(provider, model, u(input, rnd(maxOut), cacheRead, cacheWrite), override, at).costNano;
        expect(actual).toBeLessThanOrEqual(bound);
      }
    }
  });
});

describe('Pricer.unitPrices / unitPrice', () => {
  it('catalog base prices in nano-USD per million tokens', () => {
    expect(pricer.unitPrices('openai', 'gpt-4o-mini')).toEqual({
      input: 150_000_000n,
      output: 600_000_000n,
      cachedInput: 75_000_000n,
      cacheWrite: 150_000_000n,
      source: 'catalog',
    });
    expect(pricer.unitPrice('openai', 'gpt-4o-mini')).toBe(750_000_000n);
    expect(pricer.unitPrices('gemini', 'gemini-2.5-pro')).toMatchObject({ input: 1_250_000_000n, output: 10_000_000_000n });
  });

  it('follows the time of day', () => {
    expect(pricer.unitPrice('deepseek', 'deepseek-chat', undefined, AT)).toBe(270_000_000n + 1_100_000_000n);
    expect(pricer.unitPrice('deepseek', 'deepseek-chat', undefined, OFF_PEAK)).toBe(135_000_000n + 550_000_000n);
  });

  it('override prices', () => {
    expect(pricer.unitPrices('simulate', 's', { input: '2.50', output: '10' })).toEqual({
      input: 2_500_000_000n,
      output: 10_000_000_000n,
      cachedInput: 2_500_000_000n,
      cacheWrite: 2_500_000_000n,
      source: 'override',
    });
  });
});
