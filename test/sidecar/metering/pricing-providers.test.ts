import { calcPrice } from '@pydantic/genai-prices';
import { describe, expect, it } from 'vitest';
import type { ProviderName } from '../../../crds/src/index.js';
import { loadCatalog, Pricer } from '../../../sidecar/metering/pricing.js';

/**
 * Issue 13: the new providers' catalog mapping (sidecar/metering/pricing.ts CATALOG_MAPPING) against
 * the bundled @pydantic/genai-prices 0.1.8 data: xai → "x-ai", groq, together, fireworks,
 * perplexity and cohere → the providers of the same id; cerebras is not in the catalog.
 */

const AT = new Date('2025-09-01T12:00:00Z');
await loadCatalog();
const pricer = new Pricer({ clock: () => AT });
const usage = { inputTokens: 1_000_000, outputTokens: 1_000_000, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 };

describe('catalog mapping of the new providers', () => {
  it.each([
    ['xai', 'grok-4-0709', 'x-ai'],
    ['xai', 'grok-3-mini', 'x-ai'],
    ['groq', 'llama-3.3-70b-versatile', 'groq'],
    ['together', 'meta-llama/Llama-3.3-70B-Instruct-Turbo', 'together'],
    ['fireworks', 'accounts/fireworks/models/llama-v3p1-8b-instruct', 'fireworks'],
    ['perplexity', 'sonar', 'perplexity'],
    ['cohere', 'command-a-03-2025', 'cohere'],
  ] as Array<[ProviderName, string, string]>)('%s %s is priced from the catalog provider %s', (provider, model, catalogId) => {
    const q = pricer.price(provider, model, usage, undefined, AT);
    expect(q.known).toBe(true);
    expect(q.source).toBe('catalog');
    expect(q.breakdown?.catalogProvider).toBe(catalogId);
    // the same price the catalog computes for that provider id
    const ref = calcPrice({ input_tokens: usage.inputTokens, output_tokens: usage.outputTokens }, model, { providerId: catalogId, timestamp: AT });
    expect(ref).not.toBeNull();
    expect(Number(q.costNano)).toBeCloseTo(ref!.total_price * 1e9, 0);
  });

  it('cerebras is unknown without a pricing override (no Cerebras provider in the catalog), known with one', () => {
    expect(pricer.price('cerebras', 'llama3.1-8b', usage, undefined, AT)).toMatchObject({ known: false, source: 'unknown' });
    expect(pricer.price('cerebras', 'llama3.1-8b', usage, { input: '0.10', output: '0.10' }, AT)).toMatchObject({ known: true, source: 'override', costNano: 200_000_000n });
  });

  it('a model another provider sells is not priced at that provider\'s list price', () => {
    // Groq serves openai/gpt-oss-120b; the lookup stays in Groq's table.
    expect(pricer.price('groq', 'openai/gpt-oss-120b', usage, undefined, AT).breakdown?.catalogProvider).toBe('groq');
    expect(pricer.price('xai', 'gpt-4o', usage, undefined, AT).known).toBe(false);
  });
});
