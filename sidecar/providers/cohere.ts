import { invalidRequest } from '../errors.js';
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatRequest,
  ChunkToolCall,
  ContentPart,
  FinishReason,
  Message,
  Tool,
  ToolCall,
  ToolChoice,
} from '../openai-schema.js';
import type { SseEvent } from '../sse.js';
import { usageToOpenAI, type Usage } from '../usage.js';
import {
  joinURL,
  type ProviderAdapter,
  type StreamTranslator,
  type TargetContext,
  type UpstreamRequest,
} from './types.js';
import { UpstreamProtocolError, UpstreamStreamError, type UpstreamErrorInfo } from './errors.js';
import { upstreamText } from './redact.js';
import { errorBodyJson, isPlainObject, noErrorInfo, num, parseStreamEvent, rejectUnsupported, unsupportedParameter, type UnsupportedParameter } from './wire.js';
import { ChunkWriter } from './chunks.js';

/**
 * Cohere Chat API v2: POST {baseURL}/v2/chat with `Authorization: Bearer <key>`, streamed as SSE
 * when `stream` is true. Field names follow the API reference (docs.cohere.com/reference/chat and
 * /reference/chat-stream, the OpenAPI schema cohere-ai/cohere-developer-experience
 * cohere-openapi.yaml), the streaming guides (docs.cohere.com/v2/docs/streaming,
 * /v2/docs/tool-use-streaming) and the error reference (docs.cohere.com/reference/errors).
 *
 * Decisions:
 * - Messages: system/developer texts join one system message placed first (Cohere: "system turn
 *   must be the first in the list"); user text and image_url parts pass as Cohere content parts;
 *   assistant tool_calls keep OpenAI's shape (Cohere v2 uses the same {id, type, function:
 *   {name, arguments}}); tool results keep tool_call_id. An assistant message with neither text
 *   nor tool calls says nothing and is left out ("message must not be empty in a turn").
 * - Tools keep OpenAI's shape (ToolV2 is {type, function: {name, description, parameters}});
 *   `strict: true` on every tool → strict_tools. tool_choice none/required → NONE/REQUIRED; a
 *   named function → REQUIRED with only that tool declared (Cohere cannot name one); auto → omitted.
 * - Parameters: max_completion_tokens ?? max_tokens → max_tokens; temperature, seed; top_p → p
 *   (Cohere takes 0.01–0.99: values outside are clamped to that range, 1 means "no nucleus
 *   limit" and 0.99 is the closest Cohere allows); stop → stop_sequences (at most 5);
 *   presence/frequency penalties in [0, 1], not both (Cohere's documented errors);
 *   response_format json_object → json_object, json_schema → json_object + json_schema.
 * - Dropped: user, stream_options (Cohere always reports usage), store, metadata, service_tier,
 *   prompt_cache_key, message `name`, image `detail` beyond Cohere's auto/low/high.
 * - 400 unsupported_parameter (the router tries the next target): n > 1, logprobs /
 *   top_logprobs (Cohere's log probabilities have another shape), logit_bias, negative or
 *   above-1 penalties, both penalties, more than 5 stop sequences, parallel_tool_calls false
 *   (Cohere cannot limit a turn to one call), reasoning_effort, audio/modalities,
 *   web_search_options, legacy functions, content parts other than text and image_url.
 * - Response: text parts are joined (thinking parts and citations are not part of the OpenAI
 *   message), tool_plan (Cohere's narration before tool calls) is dropped, finish_reason
 *   COMPLETE/STOP_SEQUENCE → stop, MAX_TOKENS → length, TOOL_CALL → tool_calls; ERROR and
 *   TIMEOUT are failures (a 200 body with them is an upstream error, a stream ending with them
 *   an upstream stream error). Ids: Cohere's response id is kept; Cohere returns no model id.
 * - Usage: billed_units (what Cohere charges) when present, else tokens (which also count the
 *   prompt Cohere adds itself); cached_tokens → cache reads, capped at the prompt.
 * - Embeddings: not offered (Cohere's /v2/embed takes input_type and embedding_types and answers
 *   in another shape).
 */

// ---------------------------------------------------------------------------------------------
// Native wire shapes (only the fields this adapter reads or writes)

type TextPart = { type: 'text'; text: string };
type ImagePart = { type: 'image_url'; image_url: { url: string; detail?: string } };

type CohereMessage =
  | { role: 'system'; content: string | TextPart[] }
  | { role: 'user'; content: string | Array<TextPart | ImagePart> }
  | { role: 'assistant'; content?: string | TextPart[]; tool_calls?: ToolCall[] }
  | { role: 'tool'; tool_call_id: string; content: string | TextPart[] };

interface CohereUsage {
  billed_units?: { input_tokens?: number; output_tokens?: number } | null;
  tokens?: { input_tokens?: number; output_tokens?: number } | null;
  cached_tokens?: number | null;
}

interface CohereResponse {
  id?: string;
  finish_reason?: string;
  message?: {
    role?: string;
    content?: Array<{ type?: string; text?: string }>;
    tool_calls?: Array<{ id?: string; type?: string; function?: { name?: string; arguments?: string } }>;
    tool_plan?: string;
  };
  usage?: CohereUsage;
}

const PROVIDER = 'cohere';
const MAX_STOP_SEQUENCES = 5;
const IMAGE_DETAILS = new Set(['auto', 'low', 'high']);

function headers(ctx: TargetContext, stream: boolean): Record<string, string> {
  const h: Record<string, string> = { 'content-type': 'application/json', accept: stream ? 'text/event-stream' : 'application/json' };
  if (ctx.apiKey) h.authorization = `Bearer ${ctx.apiKey}`;
  return h;
}

// ---------------------------------------------------------------------------------------------
// Request: messages

function texts(content: string | ContentPart[], param: string): string[] {
  if (typeof content === 'string') return [content];
  return content.map((p, j) => {
    if (p.type !== 'text') throw unsupportedParameter(PROVIDER, `${param}[${j}].type`, `content part type "${p.type}" is not supported here`);
    return (p as { text: string }).text;
  });
}

/** One string stays a string (the docs' shorthand); several become text parts. */
function textContent(strings: string[]): string | TextPart[] {
  return strings.length === 1 ? (strings[0] as string) : strings.map((text) => ({ type: 'text', text }));
}

function userContent(content: string | ContentPart[], param: string): string | Array<TextPart | ImagePart> {
  if (typeof content === 'string') return content;
  return content.map((p, j): TextPart | ImagePart => {
    if (p.type === 'text') return { type: 'text', text: (p as { text: string }).text };
    if (p.type === 'image_url') {
      // A base64 data URI or a web URL, as Cohere's image_url takes them.
      const image = (p as { image_url: { url: string; detail?: string } }).image_url;
      const part: ImagePart = { type: 'image_url', image_url: { url: image.url } };
      if (image.detail !== undefined && IMAGE_DETAILS.has(image.detail)) part.image_url.detail = image.detail;
      return part;
    }
    throw unsupportedParameter(PROVIDER, `${param}[${j}].type`, `content part type "${p.type}" is not supported`);
  });
}

function translateMessages(messages: Message[]): CohereMessage[] {
  const system: string[] = [];
  const out: CohereMessage[] = [];
  const callIds = new Set<string>();
  messages.forEach((m, i) => {
    const param = `messages[${i}].content`;
    switch (m.role) {
      case 'system':
      case 'developer':
        system.push(...texts(m.content, param));
        break;
      case 'user':
        out.push({ role: 'user', content: userContent(m.content, param) });
        break;
      case 'assistant': {
        const text = m.content == null ? [] : texts(m.content, param).filter((t) => t.length > 0);
        const msg: Extract<CohereMessage, { role: 'assistant' }> = { role: 'assistant' };
        if (text.length > 0) msg.content = textContent(text);
        if (m.tool_calls && m.tool_calls.length > 0) {
          msg.tool_calls = m.tool_calls.map((c) => {
            callIds.add(c.id);
            return { id: c.id, type: 'function', function: { name: c.function.name, arguments: c.function.arguments } };
          });
        }
        if (msg.content !== undefined || msg.tool_calls !== undefined) out.push(msg);
        break;
      }
      case 'tool':
        if (!callIds.has(m.tool_call_id)) throw invalidRequest(`No earlier assistant tool call has the id "${m.tool_call_id}".`, `messages[${i}].tool_call_id`);
        out.push({ role: 'tool', tool_call_id: m.tool_call_id, content: textContent(texts(m.content, param)) });
        break;
    }
  });
  if (system.length > 0) out.unshift({ role: 'system', content: textContent(system) });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Request: tools and parameters

function translateTool(t: Tool): Record<string, unknown> {
  const fn: Record<string, unknown> = { name: t.function.name };
  if (t.function.description) fn.description = t.function.description;
  // parameters is required by Cohere; OpenAI allows leaving it out.
  fn.parameters = t.function.parameters ?? { type: 'object', properties: {} };
  return { type: 'function', function: fn };
}

/** Tools and tool_choice; a named function is forced as REQUIRED with only that tool declared. */
function tools(req: ChatRequest, body: Record<string, unknown>): void {
  const declared = req.tools;
  if (!declared || declared.length === 0) return;
  const choice: ToolChoice | undefined = req.tool_choice;
  let offered = declared;
  if (choice === 'none') body.tool_choice = 'NONE';
  else if (choice === 'required') body.tool_choice = 'REQUIRED';
  else if (choice && typeof choice === 'object') {
    offered = declared.filter((t) => t.function.name === choice.function.name);
    if (offered.length === 0) throw invalidRequest(`tool_choice names "${choice.function.name}", which is not in tools.`, 'tool_choice.function.name');
    body.tool_choice = 'REQUIRED';
  }
  body.tools = offered.map(translateTool);
  if (offered.every((t) => t.function.strict === true)) body.strict_tools = true;
}

/** What counts as "not asking for anything": those values pass, any other value gets a 400. */
const UNSUPPORTED: ReadonlyArray<UnsupportedParameter> = [
  { param: 'n', neutral: (v) => v == null || v === 1, why: 'Cohere returns exactly one choice' },
  { param: 'logprobs', neutral: (v) => v == null || v === false, why: "Cohere's log probabilities have another shape" },
  { param: 'top_logprobs', neutral: (v) => v == null || v === 0, why: "Cohere's log probabilities have another shape" },
  { param: 'logit_bias', neutral: (v) => v == null || (isPlainObject(v) && Object.keys(v).length === 0), why: 'Cohere has no logit bias' },
  { param: 'parallel_tool_calls', neutral: (v) => v == null || v === true, why: 'Cohere cannot limit a turn to one tool call' },
  { param: 'reasoning_effort', neutral: (v) => v == null, why: 'Cohere has no reasoning effort setting' },
  { param: 'audio', neutral: (v) => v == null, why: 'Cohere has no audio output' },
  { param: 'modalities', neutral: (v) => v == null || (Array.isArray(v) && v.every((m) => m === 'text')), why: 'Cohere outputs text only' },
  { param: 'web_search_options', neutral: (v) => v == null, why: "OpenAI's web search is not available on Cohere" },
  { param: 'functions', neutral: (v) => v == null || (Array.isArray(v) && v.length === 0), why: 'use tools instead of the deprecated functions' },
  { param: 'function_call', neutral: (v) => v == null, why: 'use tool_choice instead of the deprecated function_call' },
];


/** Cohere's penalties: "min value of 0.0, max value of 1.0", and not both at once. */
function penalties(req: ChatRequest, body: Record<string, unknown>): void {
  let given = 0;
  for (const param of ['frequency_penalty', 'presence_penalty'] as const) {
    const v = req[param];
    if (v == null || v === 0) continue;
    if (v < 0 || v > 1) throw unsupportedParameter(PROVIDER, param, 'Cohere takes a penalty between 0 and 1');
    body[param] = v;
    given++;
  }
  if (given > 1) throw unsupportedParameter(PROVIDER, 'presence_penalty', 'Cohere cannot take frequency_penalty and presence_penalty together');
}

function stopSequences(stop: ChatRequest['stop']): string[] | undefined {
  if (stop == null) return undefined;
  const list = typeof stop === 'string' ? [stop] : stop;
  if (list.length > MAX_STOP_SEQUENCES) throw unsupportedParameter(PROVIDER, 'stop', `Cohere takes at most ${MAX_STOP_SEQUENCES} stop sequences`);
  return list.length > 0 ? list : undefined;
}

function responseFormat(format: ChatRequest['response_format']): Record<string, unknown> | undefined {
  if (!format || format.type === 'text') return undefined;
  if (format.type === 'json_object') return { type: 'json_object' };
  if (format.type === 'json_schema') {
    const schema = (format as { json_schema?: { schema?: unknown } }).json_schema?.schema;
    if (!isPlainObject(schema)) throw invalidRequest('response_format json_schema needs a schema object.', 'response_format.json_schema.schema');
    return { type: 'json_object', json_schema: schema };
  }
  throw unsupportedParameter(PROVIDER, 'response_format.type', `response format "${format.type}" has no Cohere equivalent`);
}

function nativeBody(req: ChatRequest, ctx: TargetContext, stream: boolean): Record<string, unknown> {
  rejectUnsupported(PROVIDER, req, UNSUPPORTED);
  const body: Record<string, unknown> = { stream, model: ctx.model, messages: translateMessages(req.messages) };
  tools(req, body);
  const maxTokens = req.max_completion_tokens ?? req.max_tokens;
  if (maxTokens != null) body.max_tokens = maxTokens;
  const stop = stopSequences(req.stop);
  if (stop) body.stop_sequences = stop;
  if (req.temperature != null) body.temperature = req.temperature;
  if (req.top_p != null) body.p = Math.min(0.99, Math.max(0.01, req.top_p));
  if (req.seed != null) body.seed = req.seed;
  penalties(req, body);
  const format = responseFormat(req.response_format);
  if (format) body.response_format = format;
  return body;
}

// ---------------------------------------------------------------------------------------------
// Response

/**
 * Cohere usage → Usage. billed_units are what Cohere charges; tokens also count the prompt
 * Cohere adds itself, so they are used only when no billed units are given.
 */
export function usageFromCohere(u: unknown): Usage | undefined {
  if (!isPlainObject(u)) return undefined;
  const usage = u as CohereUsage;
  const counts = isPlainObject(usage.billed_units) ? usage.billed_units : isPlainObject(usage.tokens) ? usage.tokens : undefined;
  if (!counts) return undefined;
  const input = num(counts.input_tokens);
  return {
    inputTokens: input,
    outputTokens: num(counts.output_tokens),
    cacheReadTokens: Math.min(num(usage.cached_tokens), input),
    cacheWriteTokens: 0,
    reasoningTokens: 0,
  };
}

const FINISH_REASONS: ReadonlyMap<string, FinishReason> = new Map([
  ['COMPLETE', 'stop'],
  ['STOP_SEQUENCE', 'stop'],
  ['MAX_TOKENS', 'length'],
  ['TOOL_CALL', 'tool_calls'],
]);

/** ERROR and TIMEOUT: the generation failed. */
const FAILED = new Set(['ERROR', 'TIMEOUT']);

function finishReason(reason: unknown): FinishReason {
  return (typeof reason === 'string' ? FINISH_REASONS.get(reason) : undefined) ?? 'stop';
}

function toolCall(c: NonNullable<NonNullable<CohereResponse['message']>['tool_calls']>[number]): ToolCall {
  return { id: c.id ?? '', type: 'function', function: { name: c.function?.name ?? '', arguments: c.function?.arguments || '{}' } };
}

function parseResponse(body: unknown): CohereResponse {
  if (!isPlainObject(body) || !isPlainObject(body.message)) throw new UpstreamProtocolError('upstream response is not a Cohere chat response');
  const r = body as CohereResponse;
  if (typeof r.finish_reason === 'string' && FAILED.has(r.finish_reason)) {
    throw new UpstreamProtocolError(`Cohere ended the generation with ${r.finish_reason}`);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Stream


/**
 * Cohere streams typed events (`type` in the data; the SSE event name repeats it):
 * message-start (id), content-start / content-delta / content-end per content block (text or
 * thinking), tool-plan-delta, tool-call-start / -delta / -end per call, citation-start / -end,
 * and message-end with finish_reason, usage and, on failure, error. The official SDKs also accept
 * a trailing `data: [DONE]`, which is ignored.
 */
class CohereStreamTranslator extends ChunkWriter implements StreamTranslator {
  finished = false;
  usage: Usage | undefined;
  readonly responseModel: string | undefined = undefined;
  /** Content block index → its type ("text" or "thinking"). */
  private readonly blocks = new Map<number, string>();
  /** Cohere tool-call index → OpenAI tool call index, and whether the call got argument text. */
  private readonly calls = new Map<number, { index: number; hasArguments: boolean }>();

  push(event: SseEvent): ChatCompletionChunk[] {
    if (event.data === '[DONE]') return [];
    const data = parseStreamEvent(event.data);
    const type = typeof data.type === 'string' ? data.type : event.event;
    const message = isPlainObject(data.delta) && isPlainObject(data.delta.message) ? data.delta.message : undefined;
    switch (type) {
      case 'message-start':
        if (typeof data.id === 'string') this.id = data.id;
        return [];
      case 'content-start':
        return this.contentStart(num(data.index), message);
      case 'content-delta':
        return this.contentDelta(num(data.index), message);
      case 'tool-call-start':
        return this.toolCallStart(num(data.index), message);
      case 'tool-call-delta':
        return this.toolCallDelta(num(data.index), message);
      case 'tool-call-end':
        return this.toolCallEnd(num(data.index));
      case 'message-end':
        return this.messageEnd(isPlainObject(data.delta) ? data.delta : {});
      default:
        // content-end, tool-plan-delta (narration, not part of the answer), citation-start/-end,
        // debug, and event types added later.
        return [];
    }
  }

  private contentStart(index: number, message: Record<string, unknown> | undefined): ChatCompletionChunk[] {
    const content = message && isPlainObject(message.content) ? message.content : {};
    const type = typeof content.type === 'string' ? content.type : 'text';
    this.blocks.set(index, type);
    if (type !== 'text' || typeof content.text !== 'string' || !content.text) return [];
    return this.emit({ content: content.text });
  }

  private contentDelta(index: number, message: Record<string, unknown> | undefined): ChatCompletionChunk[] {
    if ((this.blocks.get(index) ?? 'text') !== 'text') return []; // thinking
    const content = message && isPlainObject(message.content) ? message.content : {};
    if (typeof content.text !== 'string' || !content.text) return [];
    return this.emit({ content: content.text });
  }

  private toolCallStart(cohereIndex: number, message: Record<string, unknown> | undefined): ChatCompletionChunk[] {
    const call = message && isPlainObject(message.tool_calls) ? message.tool_calls : {};
    const fn = isPlainObject(call.function) ? call.function : {};
    const index = this.calls.size;
    const args = typeof fn.arguments === 'string' ? fn.arguments : '';
    this.calls.set(cohereIndex, { index, hasArguments: args.length > 0 });
    const chunk: ChunkToolCall = { index, id: typeof call.id === 'string' ? call.id : '', type: 'function', function: { name: typeof fn.name === 'string' ? fn.name : '', arguments: args } };
    return this.emit({ tool_calls: [chunk] });
  }

  private toolCallDelta(cohereIndex: number, message: Record<string, unknown> | undefined): ChatCompletionChunk[] {
    const call = this.calls.get(cohereIndex);
    const delta = message && isPlainObject(message.tool_calls) ? message.tool_calls : {};
    const fn = isPlainObject(delta.function) ? delta.function : {};
    if (!call || typeof fn.arguments !== 'string' || !fn.arguments) return [];
    call.hasArguments = true;
    return this.emit({ tool_calls: [{ index: call.index, function: { arguments: fn.arguments } }] });
  }

  /** A call without parameters streams no argument text; OpenAI clients JSON.parse the arguments. */
  private toolCallEnd(cohereIndex: number): ChatCompletionChunk[] {
    const call = this.calls.get(cohereIndex);
    if (!call || call.hasArguments) return [];
    call.hasArguments = true;
    return this.emit({ tool_calls: [{ index: call.index, function: { arguments: '{}' } }] });
  }

  private messageEnd(delta: Record<string, unknown>): ChatCompletionChunk[] {
    const reason = delta.finish_reason;
    if (typeof reason === 'string' && FAILED.has(reason)) {
      throw new UpstreamStreamError(upstreamText(delta.error, this.ctx) ?? `Cohere ended the generation with ${reason}`, reason.toLowerCase());
    }
    const usage = usageFromCohere(delta.usage);
    if (usage) this.usage = usage;
    this.finished = true;
    return this.emit({}, finishReason(reason));
  }


}


/**
 * Cohere's error body is {"id": "…", "message": "..."} (docs.cohere.com/reference/errors): no code
 * beside the HTTP status, so none is passed on.
 */
export function cohereErrorInfo(body: string, ctx: TargetContext): UpstreamErrorInfo {
  const parsed = errorBodyJson(body);
  return { message: isPlainObject(parsed) ? upstreamText(parsed.message, ctx) : undefined, code: undefined, type: undefined };
}

// ---------------------------------------------------------------------------------------------

export const cohereAdapter: ProviderAdapter = {
  provider: 'cohere',
  defaultBaseURL: 'https://api.cohere.com',

  chatRequest(req: ChatRequest, ctx: TargetContext, stream: boolean): UpstreamRequest {
    return { url: joinURL(ctx.baseURL, '/v2/chat'), headers: headers(ctx, stream), body: JSON.stringify(nativeBody(req, ctx, stream)) };
  },

  chatResponse(body: unknown, ctx: TargetContext): { completion: ChatCompletion; usage: Usage | undefined } {
    const r = parseResponse(body);
    const parts = Array.isArray(r.message?.content) ? r.message.content : [];
    const text = parts.flatMap((p) => (isPlainObject(p) && p.type === 'text' && typeof p.text === 'string' ? [p.text] : [])).join('');
    const toolCalls = Array.isArray(r.message?.tool_calls) ? r.message.tool_calls.filter(isPlainObject).map(toolCall) : [];
    const message: ChatCompletion['choices'][number]['message'] = { role: 'assistant', content: text === '' && toolCalls.length > 0 ? null : text };
    if (toolCalls.length > 0) message.tool_calls = toolCalls;
    const usage = usageFromCohere(r.usage);
    const completion: ChatCompletion = {
      id: typeof r.id === 'string' ? r.id : ctx.responseId,
      object: 'chat.completion',
      created: ctx.created,
      model: ctx.model,
      choices: [{ index: 0, message, finish_reason: finishReason(r.finish_reason), logprobs: null }],
    };
    if (usage) completion.usage = usageToOpenAI(usage);
    return { completion, usage };
  },

  chatStream(ctx: TargetContext): StreamTranslator {
    return new CohereStreamTranslator(ctx);
  },

  errorInfo: cohereErrorInfo,
};
