import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProviderName } from '../../crds/src/index.js';

/**
 * Recorded usage exchanges, one per provider, each taken from that provider's own documentation
 * (URLs in `docs`). `response` is the native non-stream body and `stream` the native SSE body,
 * byte for byte as the docs show them; where a doc shows only a fragment (a `usage` object, or a
 * stream with "...."), the elided rest follows the same provider's documented response shape.
 * `nonStream` is the exact usage object the client gets in the non-stream body (provider extras
 * kept, OpenAI fields merged in); `streamed` the exact usage of the client's final stream chunk.
 */
export interface UsageCase {
  provider: ProviderName;
  docs: string;
  /** The target's provider model id. */
  model: string;
  /** Fixture directory under test/sidecar/providers/fixtures. */
  dir: string;
  response: string;
  stream: string;
  nonStream: Record<string, unknown>;
  streamed: {
    prompt_tokens: number;
    completion_tokens: number;
    total_tokens: number;
    prompt_tokens_details: { cached_tokens: number; cache_write_tokens: number };
    completion_tokens_details: { reasoning_tokens: number };
  };
}

export const FIXTURES = join(import.meta.dirname, '../sidecar/providers/fixtures');

const openaiUsage = (prompt: number, completion: number, cached: number, write: number, reasoning: number, total = prompt + completion): UsageCase['streamed'] => ({
  prompt_tokens: prompt,
  completion_tokens: completion,
  total_tokens: total,
  prompt_tokens_details: { cached_tokens: cached, cache_write_tokens: write },
  completion_tokens_details: { reasoning_tokens: reasoning },
});

export const USAGE_CASES: UsageCase[] = [
  {
    provider: 'openai',
    docs:
      'platform.openai.com/docs/api-reference/chat/object (usage.json: the chat completion object, verbatim); ' +
      'platform.openai.com/docs/api-reference/chat/create "Streaming" example (usage.sse, "...." dropped) with the stream_options.include_usage chunk ' +
      '(empty choices) carrying the usage of platform.openai.com/docs/guides/prompt-caching',
    model: 'gpt-4o',
    dir: 'openai',
    response: 'usage.json',
    stream: 'usage.sse',
    nonStream: {
      prompt_tokens: 1117,
      completion_tokens: 46,
      total_tokens: 1163,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0, cache_write_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
    },
    streamed: openaiUsage(2006, 300, 1920, 0, 0),
  },
  {
    provider: 'deepseek',
    docs:
      'api-docs.deepseek.com/api/create-chat-completion (response example and stream format: usage on the last chunk with choices) with the usage fields of ' +
      'api-docs.deepseek.com/guides/kv_cache (prompt_cache_hit_tokens + prompt_cache_miss_tokens = prompt_tokens) and ' +
      'api-docs.deepseek.com/guides/reasoning_model (deepseek-reasoner: delta.reasoning_content, completion_tokens_details.reasoning_tokens)',
    model: 'deepseek-chat',
    dir: 'deepseek',
    response: 'usage.json',
    stream: 'usage.sse',
    nonStream: {
      completion_tokens: 10,
      prompt_tokens: 1360,
      prompt_cache_hit_tokens: 1280,
      prompt_cache_miss_tokens: 80,
      total_tokens: 1370,
      prompt_tokens_details: { cached_tokens: 1280, cache_write_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0 },
    },
    streamed: openaiUsage(1105, 15, 1024, 0, 6),
  },
  {
    provider: 'qwen',
    docs:
      'alibabacloud.com/help/en/model-studio/context-cache: usage.json is the implicit-cache OpenAI-compatible response, verbatim; usage.sse ends with ' +
      'the usage chunk (empty choices) carrying the explicit/session-cache prompt_tokens_details of the same page (cache_creation_input_tokens 213, cached_tokens 1305, reasoning 1187)',
    model: 'qwen-plus',
    dir: 'qwen',
    response: 'usage.json',
    stream: 'usage.sse',
    nonStream: {
      prompt_tokens: 3019,
      completion_tokens: 104,
      total_tokens: 3123,
      prompt_tokens_details: { cached_tokens: 2048, cache_write_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0 },
    },
    streamed: openaiUsage(1524, 1534, 1305, 213, 1187),
  },
  {
    provider: 'mistral',
    docs: 'docs.mistral.ai/studio-api/conversations/advanced/prompt-caching ("Check cached tokens": usage.json verbatim; usage.sse streams the same response, usage on the last chunk)',
    model: 'mistral-large-latest',
    dir: 'mistral',
    response: 'usage.json',
    stream: 'usage.sse',
    nonStream: {
      prompt_tokens: 1013,
      total_tokens: 1043,
      completion_tokens: 30,
      prompt_tokens_details: { cached_tokens: 1008, cache_write_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0 },
    },
    streamed: openaiUsage(1013, 30, 1008, 0, 0),
  },
  {
    provider: 'openrouter',
    docs:
      'openrouter.ai/docs/use-cases/usage-accounting (the usage object verbatim; in usage.sse its documented last SSE message {"object":"chat.completion.chunk","usage":…}) ' +
      'in the response shape of openrouter.ai/docs/api-reference/overview; ": OPENROUTER PROCESSING" comments per openrouter.ai/docs/api-reference/streaming',
    model: 'openai/gpt-3.5-turbo',
    dir: 'openrouter',
    response: 'usage.json',
    stream: 'usage.sse',
    nonStream: {
      completion_tokens: 2,
      completion_tokens_details: { reasoning_tokens: 0 },
      cost: 0.95,
      cost_details: { upstream_inference_cost: 19 },
      prompt_tokens: 194,
      prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 100, audio_tokens: 0 },
      total_tokens: 196,
    },
    streamed: openaiUsage(194, 2, 0, 100, 0),
  },
  {
    provider: 'anthropic',
    docs:
      'platform.claude.com/docs/en/build-with-claude/prompt-caching (usage.json: the first, cache-writing call of the Pride and Prejudice example in the API reference Message shape); ' +
      'stream-cache.sse: platform.claude.com/docs/en/build-with-claude/streaming (cache reads; message_delta usage is cumulative)',
    model: 'claude-opus-4-6',
    dir: 'anthropic',
    response: 'usage.json',
    stream: 'stream-cache.sse',
    // input_tokens excludes the cache: prompt = input + cache reads + cache writes.
    nonStream: openaiUsage(21 + 188086, 393, 0, 188086, 0),
    streamed: openaiUsage(10682 + 188086, 510, 188086, 0, 0),
  },
  {
    provider: 'gemini',
    docs:
      'ai.google.dev/api/generate-content#v1beta.GenerateContentResponse and #UsageMetadata (implicit cache hit cachedContentTokenCount, thoughtsTokenCount); ' +
      'usage.json is the response of chat-text.json, stream-text.sse its streamed form',
    model: 'gemini-2.5-flash',
    dir: 'gemini',
    response: 'usage.json',
    stream: 'stream-text.sse',
    // candidatesTokenCount excludes thinking: completion = candidates + thoughts.
    nonStream: openaiUsage(2105, 12 + 413, 2048, 0, 413),
    streamed: openaiUsage(2105, 12 + 413, 2048, 0, 413),
  },
];

export const readFixture = (c: UsageCase, file: string): Buffer => readFileSync(join(FIXTURES, c.dir, file));

/** SSE bytes → frames that concatenate back to exactly the same bytes (split after each blank line). */
export function sseFrames(text: string): string[] {
  return text.split(/(?<=\r?\n\r?\n)/).filter((f) => f.length > 0);
}
