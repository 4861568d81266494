import type { Fault, RecordedRequest, Reply, Responder } from './fake-upstream.js';
import { sseFrame } from './fake-upstream.js';

/**
 * A fake OpenAI Chat Completions server (also DeepSeek/Mistral/OpenRouter-shaped): the reply
 * text is "echo: <last user message>" split in words, usage is deterministic and reported the
 * way OpenAI does (final usage chunk only when stream_options.include_usage is set).
 */
export const FAKE_CREATED = 1727000000;

interface ChatBody {
  model: string;
  messages: Array<{ role: string; content: unknown }>;
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  tools?: Array<{ function: { name: string } }>;
  tool_choice?: unknown;
  max_tokens?: number;
  max_completion_tokens?: number;
}

export function fakeReplyWords(body: ChatBody): string[] {
  const last = [...body.messages].reverse().find((m) => m.role === 'user');
  const text = typeof last?.content === 'string' ? last.content : 'hello';
  return ['echo:', ...text.split(/\s+/).filter(Boolean)].map((w, i) => (i === 0 ? w : ` ${w}`));
}

export function fakePromptTokens(body: ChatBody): number {
  return body.messages.reduce((n, m) => n + (typeof m.content === 'string' ? m.content.split(/\s+/).length : 1) + 3, 3);
}

/**
 * Where an OpenAI rate limit stands, for its headers (platform.openai.com/docs/guides/rate-limits,
 * "Rate limits in headers"): per resource the limit, what is left, and the time until it is
 * whole again.
 */
export interface OpenAIRateLimit {
  requests: { limit: number; remaining: number; resetMs: number };
  tokens: { limit: number; remaining: number; resetMs: number };
}

/** A duration as OpenAI writes x-ratelimit-reset-*: Go's time.Duration ("20ms", "1s", "1.5s", "6m0s"). */
export function goDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const m = Math.floor(ms / 60_000);
  const s = (ms % 60_000) / 1000;
  return m > 0 ? `${m}m${s}s` : `${s}s`;
}

/** OpenAI's x-ratelimit-* headers, on every answer (successes, 429s, streams). */
export function openaiRateLimitHeaders(r: OpenAIRateLimit): Record<string, string> {
  return {
    'x-ratelimit-limit-requests': String(r.requests.limit),
    'x-ratelimit-limit-tokens': String(r.tokens.limit),
    'x-ratelimit-remaining-requests': String(r.requests.remaining),
    'x-ratelimit-remaining-tokens': String(r.tokens.remaining),
    'x-ratelimit-reset-requests': goDuration(r.requests.resetMs),
    'x-ratelimit-reset-tokens': goDuration(r.tokens.resetMs),
  };
}

/**
 * OpenAI's 429 when a key's requests per minute (`rpm`) are used up: its error body and headers.
 * The bucket is empty: whole again in a minute (x-ratelimit-reset-requests), one request back
 * in 60 s / rpm ("Please try again in …").
 */
export function openaiRateLimited(model: string, rpm: number): Fault {
  const body = {
    error: {
      message: `Rate limit reached for ${model} in organization org-fake on requests per min (RPM): Limit ${rpm}, Used ${rpm}, Requested 1. Please try again in ${goDuration(60_000 / rpm)}. Visit https://platform.openai.com/account/rate-limits to learn more.`,
      type: 'requests',
      param: null,
      code: 'rate_limit_exceeded',
    },
  };
  const headers = openaiRateLimitHeaders({ requests: { limit: rpm, remaining: 0, resetMs: 60_000 }, tokens: { limit: 200_000, remaining: 199_990, resetMs: 3 } });
  return { kind: 'status', status: 429, body: JSON.stringify(body), headers };
}

export interface OpenAIResponderOptions {
  usageInStream?: 'when-asked' | 'always' | 'never';
  cachedTokens?: number;
  /** Reported as completion_tokens_details.reasoning_tokens (and counted in completion_tokens, as OpenAI does). */
  reasoningTokens?: number;
  /**
   * A model that uses its tools unasked: with tools offered and tool_choice not "none", a request
   * whose last message is the user's gets a call of the first tool (arguments {"location":"Paris"},
   * id call_auto<n>); once the tool results are in (last message role "tool") it answers in text.
   */
  autoToolCalls?: boolean;
  /** Rate-limit headers on every answer (openaiRateLimitHeaders). */
  rateLimit?: () => OpenAIRateLimit;
}

export function openaiResponder(opts: OpenAIResponderOptions = {}): Responder {
  const answer = openaiAnswer(opts);
  const rateLimit = opts.rateLimit;
  if (!rateLimit) return answer;
  return (req) => {
    const reply = answer(req);
    return { ...reply, headers: { ...reply.headers, ...openaiRateLimitHeaders(rateLimit()) } };
  };
}

function openaiAnswer(opts: OpenAIResponderOptions): Responder {
  let n = 0;
  return (req: RecordedRequest): Reply => {
    const body = req.body as ChatBody;
    if (req.url.endsWith('/embeddings')) {
      const input = (req.body as { input: string | string[] }).input;
      const list = Array.isArray(input) ? input : [input];
      return {
        kind: 'json',
        body: { object: 'list', data: list.map((_, index) => ({ object: 'embedding', index, embedding: [0.1, 0.2, 0.3] })), model: body.model, usage: { prompt_tokens: list.length * 2, total_tokens: list.length * 2 } },
      };
    }
    const id = `chatcmpl-fake${++n}`;
    const base = { id, created: FAKE_CREATED, model: `${body.model}-2024-07-18`, system_fingerprint: 'fp_fake' };
    const words = fakeReplyWords(body);
    const limit = body.max_completion_tokens ?? body.max_tokens ?? Infinity;
    const out = words.slice(0, limit);
    const finish = out.length < words.length ? 'length' : 'stop';
    const prompt = fakePromptTokens(body);
    const reasoning = opts.reasoningTokens ?? 0;
    const usage = {
      prompt_tokens: prompt,
      completion_tokens: out.length + reasoning,
      total_tokens: prompt + out.length + reasoning,
      prompt_tokens_details: { cached_tokens: opts.cachedTokens ?? 0, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: reasoning, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
    };
    const autoTool =
      opts.autoToolCalls && body.tools?.length && body.tool_choice !== 'none' && body.messages.at(-1)?.role === 'user' ? body.tools[0]!.function.name : undefined;
    const forcedTool = (body.tools?.length && body.tool_choice === 'required' ? body.tools[0]!.function.name : undefined) ?? autoTool;
    const callId = body.tool_choice === 'required' ? 'call_fake1' : `call_auto${n}`;
    if (!body.stream) {
      const message = forcedTool
        ? { role: 'assistant', content: null, tool_calls: [{ id: callId, type: 'function', function: { name: forcedTool, arguments: '{"location":"Paris"}' } }], refusal: null }
        : { role: 'assistant', content: out.join(''), refusal: null };
      return {
        kind: 'json',
        body: { ...base, object: 'chat.completion', choices: [{ index: 0, message, logprobs: null, finish_reason: forcedTool ? 'tool_calls' : finish }], usage },
      };
    }
    const mode = opts.usageInStream ?? 'when-asked';
    const withUsage = mode === 'always' || (mode === 'when-asked' && body.stream_options?.include_usage === true);
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
      sseFrame({ ...base, object: 'chat.completion.chunk', choices, ...(withUsage ? { usage: null } : {}), ...extra });
    const frames: string[] = [];
    if (forcedTool) {
      frames.push(chunk([{ index: 0, delta: { role: 'assistant', content: null, tool_calls: [{ index: 0, id: callId, type: 'function', function: { name: forcedTool, arguments: '' } }] }, logprobs: null, finish_reason: null }]));
      frames.push(chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{"location":' } }] }, logprobs: null, finish_reason: null }]));
      frames.push(chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] }, logprobs: null, finish_reason: null }]));
      frames.push(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'tool_calls' }]));
    } else {
      frames.push(chunk([{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }]));
      for (const w of out) frames.push(chunk([{ index: 0, delta: { content: w }, logprobs: null, finish_reason: null }]));
      frames.push(chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: finish }]));
    }
    if (withUsage) frames.push(sseFrame({ ...base, object: 'chat.completion.chunk', choices: [], usage }));
    frames.push('data: [DONE]\n\n');
    return { kind: 'sse', frames };
  };
}
