import type { CompletionUsage } from './openai-schema.js';
import { num } from './providers/wire.js';

/**
 * Token usage of one call, normalised across providers.
 * inputTokens counts every prompt token, cached ones included (as OpenAI's prompt_tokens does);
 * cacheReadTokens and cacheWriteTokens are the parts of it read from / written to the provider
 * cache. outputTokens counts every completion token, reasoning included.
 */
export interface Usage {
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  reasoningTokens: number;
}

export const emptyUsage = (): Usage => ({ inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 });

/** OpenAI-wire usage → Usage (also DeepSeek's prompt_cache_hit_tokens). */
export function usageFromOpenAI(u: unknown): Usage | undefined {
  if (!u || typeof u !== 'object') return undefined;
  const o = u as Record<string, unknown>;
  const details = (o.prompt_tokens_details ?? {}) as Record<string, unknown>;
  const out = (o.completion_tokens_details ?? {}) as Record<string, unknown>;
  return {
    inputTokens: num(o.prompt_tokens),
    outputTokens: num(o.completion_tokens),
    cacheReadTokens: num(details.cached_tokens) || num(o.prompt_cache_hit_tokens),
    cacheWriteTokens: num(details.cache_write_tokens),
    reasoningTokens: num(out.reasoning_tokens),
  };
}

/** Usage → the OpenAI-wire usage object clients receive. */
export function usageToOpenAI(u: Usage): CompletionUsage {
  return {
    prompt_tokens: u.inputTokens,
    completion_tokens: u.outputTokens,
    total_tokens: u.inputTokens + u.outputTokens,
    prompt_tokens_details: { cached_tokens: u.cacheReadTokens },
    completion_tokens_details: { reasoning_tokens: u.reasoningTokens },
  };
}
