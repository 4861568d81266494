import type { ProviderName } from '../../crds/src/index.js';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest, EmbeddingsRequest } from '../openai-schema.js';
import type { SseEvent } from '../sse.js';
import { mergeOpenAIUsage, usageFromOpenAI, type Usage } from '../usage.js';
import {
  UpstreamProtocolError,
  UpstreamStreamError,
  joinURL,
  type ProviderAdapter,
  type StreamTranslator,
  type TargetContext,
  type UpstreamRequest,
} from './types.js';

/**
 * How one OpenAI-wire provider differs from OpenAI itself. Everything else (request body,
 * responses, SSE chunks, errors) is the OpenAI Chat Completions wire format.
 */
interface OpenAIDialect {
  provider: ProviderName;
  defaultBaseURL: string | undefined;
  /** Can the provider take stream_options.include_usage? (Mistral rejects unknown fields and always sends usage.) */
  streamUsageOption: boolean;
  /** OpenAI's newer models take only max_completion_tokens; most others only max_tokens. */
  maxTokensField: 'max_tokens' | 'max_completion_tokens';
  embeddings: boolean;
}

const DIALECTS: Record<string, OpenAIDialect> = {
  openai: { provider: 'openai', defaultBaseURL: 'https://api.openai.com/v1', streamUsageOption: true, maxTokensField: 'max_completion_tokens', embeddings: true },
  deepseek: { provider: 'deepseek', defaultBaseURL: 'https://api.deepseek.com/v1', streamUsageOption: true, maxTokensField: 'max_tokens', embeddings: false },
  // DashScope's OpenAI-compatible mode (international endpoint; override baseURL for mainland China).
  qwen: { provider: 'qwen', defaultBaseURL: 'https://dashscope-intl.aliyuncs.com/compatible-mode/v1', streamUsageOption: true, maxTokensField: 'max_tokens', embeddings: true },
  mistral: { provider: 'mistral', defaultBaseURL: 'https://api.mistral.ai/v1', streamUsageOption: false, maxTokensField: 'max_tokens', embeddings: true },
  openrouter: { provider: 'openrouter', defaultBaseURL: 'https://openrouter.ai/api/v1', streamUsageOption: true, maxTokensField: 'max_tokens', embeddings: true },
  'openai-compatible': { provider: 'openai-compatible', defaultBaseURL: undefined, streamUsageOption: true, maxTokensField: 'max_tokens', embeddings: true },
  simulate: { provider: 'simulate', defaultBaseURL: 'simulate://local', streamUsageOption: true, maxTokensField: 'max_tokens', embeddings: true },
};

function headers(ctx: TargetContext): Record<string, string> {
  const h: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
  if (ctx.apiKey) h.authorization = `Bearer ${ctx.apiKey}`;
  return h;
}

class OpenAIStreamTranslator implements StreamTranslator {
  finished = false;
  usage: Usage | undefined;
  responseModel: string | undefined;

  push(event: SseEvent): ChatCompletionChunk[] {
    if (event.data === '[DONE]') {
      this.finished = true;
      return [];
    }
    let chunk: ChatCompletionChunk & { error?: { message?: string; type?: string; code?: unknown } };
    try {
      chunk = JSON.parse(event.data);
    } catch {
      throw new UpstreamProtocolError('upstream sent a stream event that is not JSON');
    }
    if (chunk === null || typeof chunk !== 'object') throw new UpstreamProtocolError('upstream sent a stream event that is not an object');
    if (chunk.error) {
      throw new UpstreamStreamError(chunk.error.message ?? 'upstream stream error', String(chunk.error.type ?? chunk.error.code ?? 'error'));
    }
    // usage is null on every chunk but the last when include_usage is on (DeepSeek and Mistral put
    // it on the last chunk with choices); the client gets its own usage chunk from paygo, in
    // OpenAI's shape, if it asked for one.
    const usage = chunk.usage ? usageFromOpenAI(chunk.usage) : undefined;
    if (usage) this.usage = usage;
    if ('usage' in chunk) {
      // undefined, not delete: JSON.stringify leaves it out either way, and delete would make
      // the object a slow dictionary.
      chunk.usage = undefined;
    }
    if (!Array.isArray(chunk.choices)) {
      // OpenRouter documents its last SSE message as {"object":"chat.completion.chunk","usage":{…}}.
      if (usage && chunk.object === 'chat.completion.chunk') return [];
      throw new UpstreamProtocolError('upstream chunk has no choices array');
    }
    if (typeof chunk.model === 'string') this.responseModel = chunk.model;
    if (chunk.choices.length === 0) return [];
    return [chunk];
  }
}

export function createOpenAIAdapter(name: keyof typeof DIALECTS): ProviderAdapter {
  const dialect = DIALECTS[name];
  if (!dialect) throw new Error(`no OpenAI dialect "${name}"`);
  return {
    provider: dialect.provider,
    defaultBaseURL: dialect.defaultBaseURL,

    chatRequest(req: ChatRequest, ctx: TargetContext, stream: boolean): UpstreamRequest {
      // Rest/spread, not delete: a deleted key turns the object into a slow dictionary that
      // JSON.stringify then walks slowly (measured on the request path).
      const { max_tokens, max_completion_tokens, stream_options: _clientStreamOptions, ...rest } = req;
      const body: Record<string, unknown> = { ...rest, model: ctx.model, stream };
      const maxTokens = max_completion_tokens ?? max_tokens;
      if (maxTokens != null) body[dialect.maxTokensField] = maxTokens;
      if (stream && dialect.streamUsageOption) body.stream_options = { include_usage: true };
      return { url: joinURL(ctx.baseURL, '/chat/completions'), headers: headers(ctx), body: JSON.stringify(body) };
    },

    chatResponse(body: unknown): { completion: ChatCompletion; usage: Usage | undefined } {
      const completion = body as ChatCompletion;
      if (!completion || typeof completion !== 'object' || !Array.isArray(completion.choices)) {
        throw new UpstreamProtocolError('upstream response is not a chat completion');
      }
      const usage = usageFromOpenAI(completion.usage);
      // The provider's usage object keeps its own fields (DeepSeek's prompt_cache_hit_tokens,
      // OpenRouter's cost); OpenAI's cached/cache-write/reasoning fields are merged in.
      if (usage) completion.usage = mergeOpenAIUsage(completion.usage as unknown as Record<string, unknown>, usage);
      return { completion, usage };
    },

    chatStream(): StreamTranslator {
      return new OpenAIStreamTranslator();
    },

    errorMessage(body: string): string | undefined {
      try {
        const parsed = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown; detail?: unknown };
        if (typeof parsed.error === 'string') return parsed.error;
        if (parsed.error && typeof parsed.error.message === 'string') return parsed.error.message;
        if (typeof parsed.message === 'string') return parsed.message;
        if (typeof parsed.detail === 'string') return parsed.detail;
      } catch {
        /* not JSON */
      }
      return undefined;
    },

    ...(dialect.embeddings
      ? {
          embeddingsRequest(req: EmbeddingsRequest, ctx: TargetContext): UpstreamRequest {
            return { url: joinURL(ctx.baseURL, '/embeddings'), headers: headers(ctx), body: JSON.stringify({ ...req, model: ctx.model }) };
          },
        }
      : {}),
  };
}

export const OPENAI_WIRE_PROVIDERS = Object.keys(DIALECTS) as ReadonlyArray<keyof typeof DIALECTS>;
