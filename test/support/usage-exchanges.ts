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
    provider: 'xai',
    docs:
      'ADAPTED. Response: the example of xAI\'s REST API reference for /v1/chat/completions ("101 multiplied by 3 is 303.", id a3d1008e-…, seen in a copy of xAI\'s OpenAPI file) ' +
      'with the usage shape of docs.x.ai/developers/advanced-api-usage/prompt-caching/usage-and-pricing (prompt_tokens_details text/audio/image/cached_tokens, completion_tokens_details); ' +
      'reasoning tokens outside completion_tokens (total = prompt + completion + reasoning) as Google\'s Grok-on-Vertex page documents; token counts illustrative. ' +
      'usage.sse: grok-3-mini chunks in the form of recorded api.x.ai streams (reasoning_content deltas, no finish_reason until the last), 14 completion / 310 reasoning tokens of docs.x.ai/docs/guides/reasoning',
    model: 'grok-4-0709',
    dir: 'xai',
    response: 'usage.json',
    stream: 'usage.sse',
    // reasoning outside completion_tokens joins it: completion 9 + 94 reasoning.
    nonStream: {
      prompt_tokens: 32,
      completion_tokens: 103,
      total_tokens: 135,
      prompt_tokens_details: { text_tokens: 32, audio_tokens: 0, image_tokens: 0, cached_tokens: 6, cache_write_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 94, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
      num_sources_used: 0,
    },
    streamed: openaiUsage(27, 14 + 310, 0, 0, 310),
  },
  {
    provider: 'groq',
    docs:
      'ADAPTED. Shapes from Groq\'s own SDK types (groq-python ChatCompletion, CompletionUsage with queue/prompt/completion/total times, ChatCompletionChunk.XGroq: ' +
      '"usage ... Only sent in the final chunk") and console.groq.com/docs/openai; values illustrative. usage.sse carries its usage in x_groq only',
    model: 'llama-3.3-70b-versatile',
    dir: 'groq',
    response: 'usage.json',
    stream: 'usage.sse',
    nonStream: {
      queue_time: 0.037493756,
      prompt_tokens: 18,
      prompt_time: 0.000680594,
      completion_tokens: 556,
      completion_time: 0.463333333,
      total_tokens: 574,
      total_time: 0.464013927,
      prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0 },
    },
    streamed: openaiUsage(38, 4, 0, 0, 0),
  },
  {
    provider: 'together',
    docs:
      'ADAPTED. Shapes from Together\'s own SDK types (together-typescript ChatCompletion / ChatCompletionChunk: finish_reason "eos", choices[].text / seed, ' +
      'delta.token_id, usage null until the last chunk); values illustrative',
    model: 'meta-llama/Llama-3.3-70B-Instruct-Turbo',
    dir: 'together',
    response: 'usage.json',
    stream: 'usage.sse',
    nonStream: { prompt_tokens: 41, completion_tokens: 22, total_tokens: 63, prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 } },
    streamed: openaiUsage(41, 6, 0, 0, 0),
  },
  {
    provider: 'fireworks',
    docs:
      'ADAPTED. docs.fireworks.ai/tools-sdks/openai-compatibility: "the usage field is returned in the very last chunk on the response (i.e. the one having ' +
      'finish_reason set)", also without stream_options; cached_tokens as the catalog\'s Fireworks extractor reads them; values illustrative',
    model: 'accounts/fireworks/models/llama-v3p1-8b-instruct',
    dir: 'fireworks',
    response: 'usage.json',
    stream: 'usage.sse',
    nonStream: { prompt_tokens: 1240, total_tokens: 1246, completion_tokens: 6, prompt_tokens_details: { cached_tokens: 1152, cache_write_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 } },
    streamed: openaiUsage(20, 10, 0, 0, 0),
  },
  {
    provider: 'cerebras',
    docs:
      'ADAPTED. OpenAI wire format per inference-docs.cerebras.ai/resources/openai, with the time_info object Cerebras adds to responses and ' +
      'prompt_tokens_details.cached_tokens; usage.sse ends with the include_usage chunk; values illustrative',
    model: 'llama3.1-8b',
    dir: 'cerebras',
    response: 'usage.json',
    stream: 'usage.sse',
    nonStream: { prompt_tokens: 12, completion_tokens: 10, total_tokens: 22, prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 } },
    streamed: openaiUsage(1312, 10, 1280, 0, 0),
  },
  {
    provider: 'perplexity',
    docs:
      'ADAPTED. Usage fields of docs.perplexity.ai/api-reference/chat-completions-post (search_context_size, citation_tokens, num_search_queries, ' +
      'reasoning_tokens, cost{…}), citations and search_results; deep-research billing per docs.perplexity.ai/guides/pricing as quoted by OpenRouter (input = prompt + ' +
      'citation tokens; reasoning tokens billed apart); values illustrative. usage.sse: the stream documented at docs.perplexity.ai/reference/post_chat_completions ' +
      '(ids, 14 prompt tokens, cumulative usage in every chunk, message + delta), in chat.completion.chunk objects, ending with its finish_reason chunk and no [DONE]',
    model: 'sonar-deep-research',
    dir: 'perplexity',
    response: 'usage.json',
    stream: 'usage.sse',
    // citation tokens join the prompt, reasoning tokens the completion; the total follows.
    nonStream: {
      prompt_tokens: 19 + 14783,
      completion_tokens: 3114 + 58201,
      total_tokens: 19 + 14783 + 3114 + 58201,
      search_context_size: 'low',
      citation_tokens: 14783,
      num_search_queries: 21,
      reasoning_tokens: 58201,
      cost: {
        input_tokens_cost: 0.00004,
        output_tokens_cost: 0.02491,
        reasoning_tokens_cost: 0.1746,
        request_cost: 0.105,
        citation_tokens_cost: 0.02957,
        search_queries_cost: 0.105,
        total_cost: 0.33452,
      },
      prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 58201 },
    },
    streamed: openaiUsage(14, 18, 0, 0, 0),
  },
  {
    provider: 'cohere',
    docs:
      'docs.cohere.com/v2/docs/chat-api: usage.json is its sample response (id, text, COMPLETE, billed_units 17/12, tokens 215/12), its meta block written as ' +
      'the v2 reference\'s usage field (docs.cohere.com/reference/chat); stream-text.sse: the "What is an LLM?" events of docs.cohere.com/v2/docs/streaming ' +
      '(SDK reprs written as the reference\'s wire JSON, one event per SSE frame with its event name), usage numbers illustrative',
    model: 'command-a-03-2025',
    dir: 'cohere',
    response: 'usage.json',
    stream: 'stream-text.sse',
    nonStream: openaiUsage(17, 12, 0, 0, 0),
    streamed: openaiUsage(7, 13, 0, 0, 0),
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

/** The usage a client gets: usage.cost in USD when the model is priced, no cost field when it is not. */
export function withCost(usage: object, usd: string | null): object {
  return usd === null ? usage : { ...usage, cost: Number(usd) };
}
