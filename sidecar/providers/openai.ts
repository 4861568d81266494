import type { ProviderName } from '../../crds/src/index.js';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest, EmbeddingsRequest, FinishReason } from '../openai-schema.js';
import type { SseEvent } from '../sse.js';
import { mergeOpenAIUsage, usageFromOpenAI, type Usage } from '../usage.js';
import {
  joinURL,
  type NativeRequest,
  type ProviderAdapter,
  type StreamTranslator,
  type TargetContext,
  type UpstreamRequest,
} from './types.js';
import { UpstreamProtocolError, UpstreamStreamError, type UpstreamErrorInfo } from './errors.js';
import { safeCode, upstreamText } from './redact.js';
import { errorBodyJson, isPlainObject, noErrorInfo, num, parseEventJson, unsupportedParameter } from './wire.js';
import { copyWithout } from '../json-values.js';

/**
 * A request parameter the provider documents as unsupported. A value that asks for nothing
 * (`neutral`, or null) is left out of the upstream body; any other value is refused with 400
 * `unsupported_parameter`, which makes the router try the route's next target.
 */
interface Rejection {
  param: string;
  /** Values that ask for nothing. Without it every non-null value is refused. */
  neutral?: (v: unknown) => boolean;
  /** Only for models whose id matches (xAI: its reasoning models). */
  models?: RegExp;
  why: string;
}

/**
 * How one OpenAI-wire provider differs from OpenAI itself. Everything else (request body,
 * responses, SSE chunks, errors) is the OpenAI Chat Completions wire format. Every field is data
 * read on the request path; the optional ones cost nothing for dialects that leave them out.
 * Exported for adapters that speak this wire format at URLs of their own (azure.ts).
 */
export interface OpenAIDialect {
  provider: ProviderName;
  defaultBaseURL: string | undefined;
  /**
   * Send stream_options.include_usage upstream? Not to providers that reject unknown fields
   * (Mistral) or always report usage in the last chunk anyway (Fireworks, Perplexity).
   */
  streamUsageOption: boolean;
  /** OpenAI's newer models take only max_completion_tokens; most others only max_tokens. */
  maxTokensField: 'max_tokens' | 'max_completion_tokens';
  embeddings: boolean;
  /** Parameters the provider documents as unsupported (checked in order). */
  rejects?: readonly Rejection[];
  /** Why messages[].name is refused (Groq answers 400 to it). */
  rejectsMessageName?: string;
  /** finish_reason values outside OpenAI's set → OpenAI's (Together's "eos"). */
  finishReasons?: ReadonlyMap<string, FinishReason>;
  /** Usage reader when the provider's fields mean something else than OpenAI's. */
  usage?: (raw: unknown) => Usage | undefined;
  /** Groq: usage (and a stream's early-stop error) also in the x_groq extension. */
  xGroq?: boolean;
  /** The stream is complete with the chunk that has a finish_reason (it carries the final usage); no [DONE] needed. */
  endsAtFinishReason?: boolean;
  /** Where a request goes; default `baseURL + path`. Azure: the deployment's URL with its api-version. */
  url?: (ctx: TargetContext, path: '/chat/completions' | '/embeddings') => string;
  /** Request headers; default JSON and `Authorization: Bearer <key>`. Azure: `api-key`. */
  headers?: (ctx: TargetContext) => Record<string, string>;
  /** Leave `model` out of the body (Azure: the deployment URL names the model). */
  omitModel?: boolean;
  /** Stream choices without `delta` are annotations its own translator handles (Azure's content filter); elsewhere they get an empty delta. */
  annotationChoices?: boolean;
  /** The provider's Responses API URL (OpenAI, Azure): Responses requests it can pass through. */
  responsesURL?: (ctx: TargetContext) => string;
}

const isZero = (v: unknown) => v === 0;
const isFalse = (v: unknown) => v === false;
const isOne = (v: unknown) => v === 1;
const isEmptyList = (v: unknown) => Array.isArray(v) && v.length === 0;
const isEmptyObject = (v: unknown) => isPlainObject(v) && Object.keys(v).length === 0;

/**
 * xAI's reasoning models (grok-3-mini, grok-4 and its -reasoning variants, grok-code): "presencePenalty,
 * frequencyPenalty and stop parameters are not supported by reasoning models. Adding them in the
 * request would result in an error." (docs.x.ai/docs/guides/reasoning). The -non-reasoning variants take them.
 */
const XAI_REASONING_MODELS = /^grok-(?:3-mini|4|code)(?!.*non-reasoning)/;

/**
 * xAI reports reasoning tokens in completion_tokens_details.reasoning_tokens but, on its
 * reasoning models, outside completion_tokens ("separated from the completion_tokens":
 * total_tokens = prompt + completion + reasoning). Where the total says so they are added to
 * the output, which by paygo's convention includes reasoning.
 */
export function usageFromXAI(u: unknown): Usage | undefined {
  const usage = usageFromOpenAI(u);
  if (usage && usage.reasoningTokens > 0 && num((u as Record<string, unknown>).total_tokens) === usage.inputTokens + usage.outputTokens + usage.reasoningTokens) {
    usage.outputTokens += usage.reasoningTokens;
  }
  return usage;
}

/**
 * Perplexity's usage has its own top-level counters (docs.perplexity.ai API reference):
 * reasoning_tokens (Sonar Deep Research's research reasoning, billed apart from and in addition
 * to completion_tokens) and citation_tokens (search results the model read; "input tokens
 * comprise prompt tokens + citation tokens"). Reasoning joins the output (and the reasoning
 * count), citation tokens the prompt; num_search_queries, search_context_size and cost stay as
 * provider extras in the client's usage.
 */
export function usageFromPerplexity(u: unknown): Usage | undefined {
  const usage = usageFromOpenAI(u);
  if (!usage) return undefined;
  const raw = u as Record<string, unknown>;
  const reasoning = num(raw.reasoning_tokens);
  if (reasoning > 0) {
    usage.reasoningTokens = reasoning;
    usage.outputTokens += reasoning;
  }
  usage.inputTokens += num(raw.citation_tokens);
  return usage;
}

const DIALECTS: Record<string, OpenAIDialect> = {
  openai: {
    provider: 'openai',
    defaultBaseURL: 'https://api.openai.com/v1',
    streamUsageOption: true,
    maxTokensField: 'max_completion_tokens',
    embeddings: true,
    responsesURL: (ctx) => joinURL(ctx.baseURL, '/responses'),
  },
  deepseek: { provider: 'deepseek', defaultBaseURL: 'https://api.deepseek.com/v1', streamUsageOption: true, maxTokensField: 'max_tokens', embeddings: false },
  // DashScope's OpenAI-compatible mode (international endpoint; override baseURL for mainland China).
  qwen: { provider: 'qwen', defaultBaseURL: 'https://dashscope-intl.aliyuncs.com/compatible-mode/v1', streamUsageOption: true, maxTokensField: 'max_tokens', embeddings: true },
  mistral: { provider: 'mistral', defaultBaseURL: 'https://api.mistral.ai/v1', streamUsageOption: false, maxTokensField: 'max_tokens', embeddings: true },
  openrouter: { provider: 'openrouter', defaultBaseURL: 'https://openrouter.ai/api/v1', streamUsageOption: true, maxTokensField: 'max_tokens', embeddings: true },
  // xAI (docs.x.ai, API reference /v1/chat/completions): max_tokens is deprecated for
  // max_completion_tokens, logit_bias is "(Unsupported)", and the reasoning models refuse
  // penalties and stop sequences.
  xai: {
    provider: 'xai',
    defaultBaseURL: 'https://api.x.ai/v1',
    streamUsageOption: true,
    maxTokensField: 'max_completion_tokens',
    embeddings: false,
    rejects: [
      { param: 'logit_bias', neutral: isEmptyObject, why: 'xAI documents logit_bias as unsupported' },
      { param: 'presence_penalty', neutral: isZero, models: XAI_REASONING_MODELS, why: 'xAI reasoning models do not take a presence penalty' },
      { param: 'frequency_penalty', neutral: isZero, models: XAI_REASONING_MODELS, why: 'xAI reasoning models do not take a frequency penalty' },
      { param: 'stop', neutral: isEmptyList, models: XAI_REASONING_MODELS, why: 'xAI reasoning models do not take stop sequences' },
    ],
    usage: usageFromXAI,
  },
  // Groq (console.groq.com/docs/openai): "logprobs, logit_bias, top_logprobs, messages[].name"
  // and n other than 1 "will result in a 400 error"; its API reference says presence and
  // frequency penalties are "not yet supported by any of our models". Streams also carry usage in
  // x_groq.usage on the final chunk.
  groq: {
    provider: 'groq',
    defaultBaseURL: 'https://api.groq.com/openai/v1',
    streamUsageOption: true,
    maxTokensField: 'max_completion_tokens',
    embeddings: false,
    rejects: [
      { param: 'n', neutral: isOne, why: 'Groq supports only n = 1' },
      { param: 'logprobs', neutral: isFalse, why: 'Groq does not return log probabilities' },
      { param: 'top_logprobs', neutral: isZero, why: 'Groq does not return log probabilities' },
      { param: 'logit_bias', neutral: isEmptyObject, why: 'Groq has no logit bias' },
      { param: 'presence_penalty', neutral: isZero, why: 'no Groq model supports a presence penalty yet' },
      { param: 'frequency_penalty', neutral: isZero, why: 'no Groq model supports a frequency penalty yet' },
    ],
    rejectsMessageName: 'Groq answers 400 to messages[].name',
    xGroq: true,
  },
  // Together AI (docs.together.ai, API reference): max_tokens; logprobs is a top-k integer with a
  // response shape of its own; finish_reason may be "eos"; OpenAI-compatible /v1/embeddings.
  together: {
    provider: 'together',
    defaultBaseURL: 'https://api.together.xyz/v1',
    streamUsageOption: true,
    maxTokensField: 'max_tokens',
    embeddings: true,
    rejects: [
      { param: 'logprobs', neutral: isFalse, why: "Together's logprobs is a top-k count with a response shape of its own" },
      { param: 'top_logprobs', neutral: isZero, why: "Together's logprobs is a top-k count with a response shape of its own" },
    ],
    finishReasons: new Map([['eos', 'stop']]),
  },
  // Fireworks (docs.fireworks.ai/tools-sdks/openai-compatibility): usage is always in the very
  // last chunk (the one with finish_reason); presence_penalty and frequency_penalty are listed as
  // "not yet supported".
  fireworks: {
    provider: 'fireworks',
    defaultBaseURL: 'https://api.fireworks.ai/inference/v1',
    streamUsageOption: false,
    maxTokensField: 'max_tokens',
    embeddings: true,
    rejects: [
      { param: 'presence_penalty', neutral: isZero, why: 'Fireworks lists presence_penalty as not yet supported' },
      { param: 'frequency_penalty', neutral: isZero, why: 'Fireworks lists frequency_penalty as not yet supported' },
    ],
  },
  // Cerebras (inference-docs.cerebras.ai/resources/openai): frequency_penalty, logit_bias,
  // presence_penalty, parallel_tool_calls and service_tier "will result in a 400 error".
  cerebras: {
    provider: 'cerebras',
    defaultBaseURL: 'https://api.cerebras.ai/v1',
    streamUsageOption: true,
    maxTokensField: 'max_completion_tokens',
    embeddings: false,
    rejects: [
      { param: 'frequency_penalty', neutral: isZero, why: 'Cerebras answers 400 to frequency_penalty' },
      { param: 'presence_penalty', neutral: isZero, why: 'Cerebras answers 400 to presence_penalty' },
      { param: 'logit_bias', neutral: isEmptyObject, why: 'Cerebras answers 400 to logit_bias' },
      { param: 'parallel_tool_calls', neutral: (v) => v === true, why: 'Cerebras answers 400 to parallel_tool_calls' },
      { param: 'service_tier', neutral: (v) => v === 'auto' || v === 'default', why: 'Cerebras answers 400 to service_tier' },
    ],
  },
  // Perplexity Sonar (docs.perplexity.ai): base URL without a version path, no function calling,
  // one choice; every stream chunk carries the cumulative usage, the last one with finish_reason.
  perplexity: {
    provider: 'perplexity',
    defaultBaseURL: 'https://api.perplexity.ai',
    streamUsageOption: false,
    maxTokensField: 'max_tokens',
    embeddings: false,
    rejects: [
      { param: 'tools', neutral: isEmptyList, why: 'Perplexity Sonar has no function calling' },
      { param: 'tool_choice', neutral: (v) => v === 'none' || v === 'auto', why: 'Perplexity Sonar has no function calling' },
      { param: 'n', neutral: isOne, why: 'Perplexity returns exactly one choice' },
    ],
    usage: usageFromPerplexity,
    endsAtFinishReason: true,
  },
  'openai-compatible': { provider: 'openai-compatible', defaultBaseURL: undefined, streamUsageOption: true, maxTokensField: 'max_tokens', embeddings: true },
  simulate: { provider: 'simulate', defaultBaseURL: 'simulate://local', streamUsageOption: true, maxTokensField: 'max_tokens', embeddings: true },
};

function headers(ctx: TargetContext): Record<string, string> {
  const h: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
  if (ctx.apiKey) h.authorization = `Bearer ${ctx.apiKey}`;
  return h;
}

/** finish_reason values outside OpenAI's set → OpenAI's, in place. */
function mapFinishReasons(choices: Array<{ finish_reason: FinishReason | null }>, map: ReadonlyMap<string, FinishReason>): void {
  for (let i = 0; i < choices.length; i++) {
    const choice = choices[i]!;
    const reason = choice.finish_reason;
    if (reason == null) continue;
    const mapped = map.get(reason);
    if (mapped !== undefined) choice.finish_reason = mapped;
  }
}

class OpenAIStreamTranslator implements StreamTranslator {
  finished = false;
  usage: Usage | undefined;
  responseModel: string | undefined;
  private readonly readUsage: (raw: unknown) => Usage | undefined;

  constructor(
    private readonly dialect: OpenAIDialect,
    private readonly ctx: TargetContext,
  ) {
    this.readUsage = dialect.usage ?? usageFromOpenAI;
  }

  push(event: SseEvent): ChatCompletionChunk[] {
    if (event.data === '[DONE]') {
      this.finished = true;
      return [];
    }
    let chunk: ChatCompletionChunk & { error?: { message?: string; type?: string; code?: unknown }; x_groq?: { usage?: unknown; error?: unknown } };
    chunk = parseEventJson(event.data) as typeof chunk;
    if (chunk === null || typeof chunk !== 'object') throw new UpstreamProtocolError('upstream sent a stream event that is not an object');
    if (chunk.error) {
      throw new UpstreamStreamError(upstreamText(chunk.error.message, this.ctx) ?? 'upstream stream error', safeCode(chunk.error.code) ?? safeCode(chunk.error.type) ?? 'error');
    }
    // usage is null on every chunk but the last when include_usage is on (DeepSeek and Mistral put
    // it on the last chunk with choices); the client gets its own usage chunk from paygo, in
    // OpenAI's shape, if it asked for one.
    let usage = chunk.usage ? this.readUsage(chunk.usage) : undefined;
    if (this.dialect.xGroq && isPlainObject(chunk.x_groq)) usage = this.xGroq(chunk.x_groq, usage);
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
    readableChoices(chunk.choices, this.dialect.annotationChoices === true);
    if (this.dialect.finishReasons) mapFinishReasons(chunk.choices, this.dialect.finishReasons);
    if (this.dialect.endsAtFinishReason) {
      for (let i = 0; i < chunk.choices.length; i++) if (chunk.choices[i]!.finish_reason != null) this.finished = true;
    }
    return [chunk];
  }

  /**
   * Groq's x_groq extension: `usage` on the final chunk (also without include_usage) and `error`
   * "indicating why a stream was stopped early" (groq-python ChatCompletionChunk.XGroq).
   */
  private xGroq(x: { usage?: unknown; error?: unknown }, usage: Usage | undefined): Usage | undefined {
    if (typeof x.error === 'string' && x.error) throw new UpstreamStreamError(upstreamText(x.error, this.ctx) ?? 'upstream stream error', 'error');
    if (x.usage === undefined) return usage;
    const own = usage ?? this.readUsage(x.usage);
    // The usage reaches the client only in paygo's usage chunk, if it asked for one.
    x.usage = undefined;
    return own;
  }
}

/**
 * An OpenAI-wire error body: {"error":{"message","type","param","code"}} (OpenAI, Azure: code
 * `content_filter`, `context_length_exceeded`…), or {"error": "…"}, {"message": "…"},
 * {"detail": "…"} from compatible servers. Code and type are the provider's own, each when given.
 */
export function openAIErrorInfo(body: string, ctx: TargetContext): UpstreamErrorInfo {
  const parsed = errorBodyJson(body);
  if (!isPlainObject(parsed)) return noErrorInfo();
  const e = parsed.error;
  if (isPlainObject(e)) {
    return { message: upstreamText(e.message, ctx), code: safeCode(e.code), type: safeCode(e.type) };
  }
  const text = typeof e === 'string' ? e : typeof parsed.message === 'string' ? parsed.message : parsed.detail;
  return { message: upstreamText(text, ctx), code: undefined, type: undefined };
}

/**
 * The chunk is passed on to the client: what OpenAI clients (and chat.ts) read in it must have
 * OpenAI's types — choices are objects, `delta` an object (added, empty, where a provider left it
 * out, unless the dialect reads missing deltas as annotations), `content` a string or null,
 * `tool_calls` an array of objects whose `function` has string `name` and `arguments`. Anything
 * else is a protocol error, not a chunk a client would choke on.
 */
function readableChoices(choices: unknown[], annotations: boolean): void {
  for (let i = 0; i < choices.length; i++) {
    const choice = choices[i];
    if (!isPlainObject(choice)) throw new UpstreamProtocolError('upstream chunk has a choice that is not an object');
    const delta = choice.delta;
    if (delta === undefined) {
      if (!annotations) choice.delta = {};
      continue;
    }
    if (!isPlainObject(delta)) throw new UpstreamProtocolError('upstream chunk has a delta that is not an object');
    const content = delta.content;
    if (content !== undefined && content !== null && typeof content !== 'string') throw new UpstreamProtocolError('upstream chunk has delta.content that is not a string');
    const calls = delta.tool_calls;
    if (calls === undefined || calls === null) continue;
    if (!Array.isArray(calls)) throw new UpstreamProtocolError('upstream chunk has delta.tool_calls that is not an array');
    for (let j = 0; j < calls.length; j++) {
      const call = calls[j];
      const fn = isPlainObject(call) ? call.function : null;
      if (fn !== undefined && !(isPlainObject(fn) && (fn.name === undefined || typeof fn.name === 'string') && (fn.arguments === undefined || typeof fn.arguments === 'string'))) {
        throw new UpstreamProtocolError('upstream chunk has a malformed tool call');
      }
    }
  }
}

function rejectUnsupported(dialect: OpenAIDialect, rejects: readonly Rejection[], body: Record<string, unknown>, model: string): void {
  for (let i = 0; i < rejects.length; i++) {
    const r = rejects[i]!;
    const v = body[r.param];
    if (v === undefined) continue;
    if (r.models !== undefined && !r.models.test(model)) continue;
    if (v === null || (r.neutral !== undefined && r.neutral(v))) {
      // Asks for nothing: left out (undefined, not delete; JSON.stringify skips it).
      body[r.param] = undefined;
      continue;
    }
    throw unsupportedParameter(dialect.provider, r.param, r.why);
  }
}

function rejectMessageNames(dialect: OpenAIDialect, why: string, messages: ChatRequest['messages']): void {
  for (let i = 0; i < messages.length; i++) {
    if ((messages[i] as { name?: unknown }).name !== undefined) throw unsupportedParameter(dialect.provider, `messages[${i}].name`, why);
  }
}

/**
 * Every dialect with all fields present, in one key order: the request and stream paths read
 * them per request and per chunk, and objects of one shape keep those reads monomorphic.
 */
function normalized(d: OpenAIDialect): OpenAIDialect {
  return {
    provider: d.provider,
    defaultBaseURL: d.defaultBaseURL,
    streamUsageOption: d.streamUsageOption,
    maxTokensField: d.maxTokensField,
    embeddings: d.embeddings,
    rejects: d.rejects,
    rejectsMessageName: d.rejectsMessageName,
    finishReasons: d.finishReasons,
    usage: d.usage,
    xGroq: d.xGroq ?? false,
    endsAtFinishReason: d.endsAtFinishReason ?? false,
    url: d.url,
    headers: d.headers,
    omitModel: d.omitModel ?? false,
    annotationChoices: d.annotationChoices ?? false,
    responsesURL: d.responsesURL,
  };
}

/** What chatRequest sets itself: the output cap under the dialect's name, the usage option. */
const SET_BY_ADAPTER: ReadonlySet<string> = new Set(['max_tokens', 'max_completion_tokens', 'stream_options']);

/** An adapter for one of the DIALECTS by name, or for a dialect declared elsewhere (azure.ts). */
export function createOpenAIAdapter(name: keyof typeof DIALECTS | OpenAIDialect): ProviderAdapter {
  const declared = typeof name === 'string' ? DIALECTS[name] : name;
  if (!declared) throw new Error(`no OpenAI dialect "${String(name)}"`);
  const dialect = normalized(declared);
  const readUsage = dialect.usage ?? usageFromOpenAI;
  const headersOf = dialect.headers ?? headers;
  const urlOf = dialect.url ?? ((ctx: TargetContext, path: string) => joinURL(ctx.baseURL, path));
  return {
    provider: dialect.provider,
    defaultBaseURL: dialect.defaultBaseURL,

    chatRequest(req: ChatRequest, ctx: TargetContext, stream: boolean): UpstreamRequest {
      // A copy, not delete: a deleted key turns the object into a slow dictionary that
      // JSON.stringify then walks slowly (measured on the request path).
      const body = copyWithout(req, SET_BY_ADAPTER);
      // model: undefined (omitModel) is left out by JSON.stringify and drops the client's route name.
      body.model = dialect.omitModel ? undefined : ctx.model;
      body.stream = stream;
      if (dialect.rejects !== undefined) rejectUnsupported(dialect, dialect.rejects, body, ctx.model);
      if (dialect.rejectsMessageName !== undefined) rejectMessageNames(dialect, dialect.rejectsMessageName, req.messages);
      const maxTokens = req.max_completion_tokens ?? req.max_tokens;
      if (maxTokens != null) body[dialect.maxTokensField] = maxTokens;
      if (stream && dialect.streamUsageOption) body.stream_options = { include_usage: true };
      return { url: urlOf(ctx, '/chat/completions'), headers: headersOf(ctx), body: JSON.stringify(body) };
    },

    chatResponse(body: unknown): { completion: ChatCompletion; usage: Usage | undefined } {
      const completion = body as ChatCompletion;
      if (!completion || typeof completion !== 'object' || !Array.isArray(completion.choices)) {
        throw new UpstreamProtocolError('upstream response is not a chat completion');
      }
      if (dialect.finishReasons) mapFinishReasons(completion.choices, dialect.finishReasons);
      const usage = readUsage(completion.usage);
      // The provider's usage object keeps its own fields (DeepSeek's prompt_cache_hit_tokens,
      // OpenRouter's cost); OpenAI's cached/cache-write/reasoning fields are merged in.
      if (usage) {
        const merged = mergeOpenAIUsage(completion.usage as unknown as Record<string, unknown>, usage);
        // Where the provider's counters mean something else (xAI, Perplexity), its total does too.
        if (dialect.usage) merged.total_tokens = usage.inputTokens + usage.outputTokens;
        completion.usage = merged;
      }
      return { completion, usage };
    },

    chatStream(ctx: TargetContext): StreamTranslator {
      return new OpenAIStreamTranslator(dialect, ctx);
    },

    errorInfo: openAIErrorInfo,

    ...(dialect.responsesURL && responsesPassthrough(dialect.responsesURL, headersOf)),

    ...(dialect.embeddings
      ? {
          embeddingsRequest(req: EmbeddingsRequest, ctx: TargetContext): UpstreamRequest {
            return { url: urlOf(ctx, '/embeddings'), headers: headersOf(ctx), body: JSON.stringify({ ...req, model: dialect.omitModel ? undefined : ctx.model }) };
          },
        }
      : {}),
  };
}

/**
 * Responses requests passed through as the client sent them (apis/responses-passthrough.ts):
 * only the target's model (Azure: the deployment name, which its v1 API takes as `model`), the
 * output cap and stream are set.
 */
function responsesPassthrough(url: (ctx: TargetContext) => string, headersOf: (ctx: TargetContext) => Record<string, string>): Pick<ProviderAdapter, 'nativeApis' | 'passthroughRequest'> {
  return {
    nativeApis: ['responses'],
    passthroughRequest(native: NativeRequest, ctx: TargetContext, stream: boolean): UpstreamRequest | undefined {
      if (native.api !== 'responses') return undefined;
      const { stream: _stream, ...body } = native.body;
      const sent = { ...body, model: ctx.model, ...(native.maxTokens !== undefined && { max_output_tokens: native.maxTokens }), ...(stream && { stream: true }) };
      return { url: url(ctx), headers: headersOf(ctx), body: JSON.stringify(sent) };
    },
  };
}

export const OPENAI_WIRE_PROVIDERS = Object.keys(DIALECTS) as ReadonlyArray<keyof typeof DIALECTS>;
