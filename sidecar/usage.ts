import type { CompletionUsage } from './openai-schema.js';
import { isPlainObject, num } from './json-values.js';

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

/**
 * The usage object clients receive, whatever the provider: OpenAI's fields, always all present.
 * cache_write_tokens is OpenRouter's (and OpenAI's newer) name for prompt tokens written to the
 * provider cache; like cached_tokens it is part of prompt_tokens.
 */
export interface OpenAIUsage extends CompletionUsage {
  prompt_tokens_details: { cached_tokens: number; cache_write_tokens: number };
  completion_tokens_details: { reasoning_tokens: number };
}

export const emptyUsage = (): Usage => ({ inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 });

const EMPTY: Readonly<Record<string, unknown>> = Object.freeze({});

function details(v: unknown): Readonly<Record<string, unknown>> {
  return isPlainObject(v) ? v : EMPTY;
}

/**
 * OpenAI-wire usage → Usage. Reads every OpenAI-compatible provider's own fields:
 * - OpenAI, Mistral, Qwen/DashScope, OpenRouter: prompt_tokens_details.cached_tokens (reads);
 * - DeepSeek: prompt_cache_hit_tokens (reads; prompt_tokens = hit + miss);
 * - OpenRouter (and OpenAI's explicit caching): prompt_tokens_details.cache_write_tokens (writes);
 * - Qwen/DashScope explicit cache: prompt_tokens_details.cache_creation_input_tokens (writes);
 * - all: completion_tokens_details.reasoning_tokens (DeepSeek reasoner, OpenAI o-series, Qwen, OpenRouter).
 * Detail objects may be absent or null (DashScope sends "completion_tokens_details": null).
 */
export function usageFromOpenAI(u: unknown): Usage | undefined {
  if (!isPlainObject(u)) return undefined;
  const prompt = details(u.prompt_tokens_details);
  const completion = details(u.completion_tokens_details);
  return {
    inputTokens: num(u.prompt_tokens),
    outputTokens: num(u.completion_tokens),
    cacheReadTokens: num(prompt.cached_tokens) || num(u.prompt_cache_hit_tokens),
    cacheWriteTokens: num(prompt.cache_write_tokens) || num(prompt.cache_creation_input_tokens),
    reasoningTokens: num(completion.reasoning_tokens),
  };
}

/**
 * Usage of providers that report the uncached prompt apart from the cache reads and writes
 * (Anthropic, Bedrock): every prompt token is their sum.
 */
export function usageFromCacheParts(uncachedInput: number, cacheRead: number, cacheWrite: number, output: number, reasoning: number): Usage {
  return { inputTokens: uncachedInput + cacheRead + cacheWrite, outputTokens: output, cacheReadTokens: cacheRead, cacheWriteTokens: cacheWrite, reasoningTokens: reasoning };
}

/** Usage → the OpenAI-wire usage object clients receive. */
export function usageToOpenAI(u: Usage): OpenAIUsage {
  return {
    prompt_tokens: u.inputTokens,
    completion_tokens: u.outputTokens,
    total_tokens: u.inputTokens + u.outputTokens,
    prompt_tokens_details: { cached_tokens: u.cacheReadTokens, cache_write_tokens: u.cacheWriteTokens },
    completion_tokens_details: { reasoning_tokens: u.reasoningTokens },
  };
}

/**
 * An OpenAI-compatible provider's own usage object with the OpenAI fields (usageToOpenAI's)
 * merged in: provider extras stay (DeepSeek's prompt_cache_hit_tokens, OpenRouter's cost,
 * audio_tokens inside the detail objects), the normalised counts win. Copies only the usage
 * object and its two detail objects; the provider's total_tokens stays when it gave one.
 */
export function mergeOpenAIUsage(raw: Record<string, unknown>, u: Usage): OpenAIUsage {
  const total = raw.total_tokens;
  return {
    ...raw,
    prompt_tokens: u.inputTokens,
    completion_tokens: u.outputTokens,
    total_tokens: typeof total === 'number' && Number.isFinite(total) ? total : u.inputTokens + u.outputTokens,
    prompt_tokens_details: { ...details(raw.prompt_tokens_details), cached_tokens: u.cacheReadTokens, cache_write_tokens: u.cacheWriteTokens },
    completion_tokens_details: { ...details(raw.completion_tokens_details), reasoning_tokens: u.reasoningTokens },
  };
}
