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
import { usageFromCacheParts, usageToOpenAI, type Usage } from '../usage.js';
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
import { errorBodyJson, isPlainObject, noErrorInfo, num, parseArguments, parseStreamEvent, rejectUnsupported, type UnsupportedParameter } from './wire.js';
import { ChunkWriter } from './chunks.js';

/**
 * Anthropic Messages API: POST {baseURL}/v1/messages with `anthropic-version: 2023-06-01`.
 * Field names follow the API reference (platform.claude.com/docs/en/api/messages), the streaming
 * guide (platform.claude.com/docs/en/build-with-claude/streaming) and the official SDK
 * anthropics/anthropic-sdk-typescript (src/resources/messages/messages.ts).
 *
 * Decisions:
 * - Ids: completions and chunks keep Anthropic's message id (`msg_...`) and tool calls keep
 *   `toolu_...`: OpenAI clients treat ids as opaque, and the same id then finds the call in
 *   Anthropic's console and support.
 * - max_tokens is required by Anthropic: max_completion_tokens ?? max_tokens ?? 4096
 *   (DEFAULT_MAX_TOKENS). The router normally injects the route's cap before we get here.
 * - Parameters are mapped when Anthropic has the same meaning, dropped when they cannot change
 *   what the model says, and refused (400 naming the parameter) when dropping them would change
 *   the result. See UNSUPPORTED and nativeBody():
 *   - mapped: system/developer → system, tools (+ strict), tool_choice, parallel_tool_calls,
 *     stop → stop_sequences, temperature (≤ 1), top_p, user (or safety_identifier) →
 *     metadata.user_id, response_format json_schema → output_config.format, reasoning_effort
 *     low|medium|high|xhigh → output_config.effort.
 *   - dropped: seed (best-effort determinism only), stream_options (Anthropic always reports
 *     usage), store, metadata (OpenAI's stored-completion tags), service_tier, prompt_cache_key,
 *     prediction, message `name`, image `detail`, and fields OpenAI itself does not define.
 *   - 400: n > 1, logprobs, top_logprobs, logit_bias, non-zero presence/frequency penalties,
 *     response_format json_object (Anthropic's JSON output needs a schema), temperature > 1,
 *     reasoning_effort none|minimal, audio output, web_search_options, legacy functions,
 *     verbosity other than medium, and content parts other than text and images.
 * - Stream: the first chunk is {role:'assistant', content:''}, as OpenAI's, but it is sent only
 *   with the first real output (text, tool call or finish). Anthropic can report overload as an
 *   `error` event inside a 200 stream (streaming guide, "Error events"); while no chunk exists the
 *   router can still fail over, so an error between message_start and the first text fails over.
 * - Tool call ids from other providers are mapped onto Anthropic's id alphabet (nativeToolId).
 */

export const ANTHROPIC_VERSION = '2023-06-01';

/**
 * A Messages request as the client sent it, for the target: its model, the output cap the route
 * and budget admission decided (the worst case that was reserved), and stream as this attempt
 * sends it. Nothing else is touched.
 */
export function passthroughBody(native: NativeRequest, model: string, stream: boolean): Record<string, unknown> {
  const { stream: _stream, ...body } = native.body;
  return { ...body, model, ...(native.maxTokens !== undefined && { max_tokens: native.maxTokens }), ...(stream && { stream: true }) };
}
export const DEFAULT_MAX_TOKENS = 4096;

// ---------------------------------------------------------------------------------------------
// Native wire shapes (only the fields this adapter reads or writes)

interface TextBlock {
  type: 'text';
  text: string;
}

interface ImageBlock {
  type: 'image';
  source: { type: 'base64'; media_type: string; data: string } | { type: 'url'; url: string };
}

interface ToolUseBlock {
  type: 'tool_use';
  id: string;
  name: string;
  input: Record<string, unknown>;
}

interface ToolResultBlock {
  type: 'tool_result';
  tool_use_id: string;
  content?: string | TextBlock[];
}

type Block = TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock;

interface NativeMessage {
  role: 'user' | 'assistant';
  content: string | Block[];
}

/** Usage as Anthropic reports it; message_delta repeats the fields it updates (cumulative values). */
interface AnthropicUsage {
  input_tokens?: number | null;
  output_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
  output_tokens_details?: { thinking_tokens?: number | null } | null;
}

interface ResponseBlock {
  type?: string;
  text?: string;
  id?: string;
  name?: string;
  input?: unknown;
}

interface AnthropicMessage {
  id?: string;
  type?: string;
  model?: string;
  content?: ResponseBlock[];
  stop_reason?: string | null;
  usage?: AnthropicUsage;
}

interface AnthropicError {
  type?: string;
  message?: string;
}

// ---------------------------------------------------------------------------------------------
// Request: messages

/** Media types Anthropic accepts for base64 images (Base64ImageSource.media_type). */
const IMAGE_MEDIA_TYPES = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp']);

function headers(ctx: TargetContext): Record<string, string> {
  const h: Record<string, string> = { 'content-type': 'application/json', 'anthropic-version': ANTHROPIC_VERSION };
  if (ctx.apiKey) h['x-api-key'] = ctx.apiKey;
  return h;
}

/**
 * Anthropic ids must match ^[a-zA-Z0-9_-]+$ while other providers' call ids may not (Kimi's
 * "functions.get_weather:0"); the same mapping on tool_use.id and tool_result.tool_use_id keeps
 * them paired.
 */
function nativeToolId(id: string): string {
  return id.replace(/[^a-zA-Z0-9_-]/g, '_');
}

/** Texts of a system/developer/tool/assistant message: only text parts make sense there. */
function texts(content: string | ContentPart[], param: string): string[] {
  if (typeof content === 'string') return [content];
  return content.map((p, j) => {
    if (p.type !== 'text') throw invalidRequest(`Content part type "${p.type}" is not supported here by the anthropic provider.`, `${param}[${j}].type`);
    return (p as { text: string }).text;
  });
}

/** Anthropic rejects empty text blocks, so empty strings are dropped. */
function textBlocks(strings: string[]): TextBlock[] {
  return strings.filter((text) => text.length > 0).map((text) => ({ type: 'text', text }));
}

function imageBlock(url: string, param: string): ImageBlock {
  const data = /^data:([^;,]+);base64,(.*)$/s.exec(url);
  if (data) {
    const mediaType = (data[1] as string).toLowerCase();
    if (!IMAGE_MEDIA_TYPES.has(mediaType)) {
      throw invalidRequest(`Image type "${mediaType}" is not supported by the anthropic provider (image/jpeg, image/png, image/gif, image/webp).`, param);
    }
    return { type: 'image', source: { type: 'base64', media_type: mediaType, data: data[2] as string } };
  }
  if (url.startsWith('data:')) throw invalidRequest('Image data URLs must be base64-encoded (data:<mime>;base64,...).', param);
  if (!/^https?:\/\//i.test(url)) throw invalidRequest('Image URLs must be https://, http:// or data: URLs.', param);
  return { type: 'image', source: { type: 'url', url } };
}

function userBlocks(content: string | ContentPart[], param: string): Block[] {
  if (typeof content === 'string') return textBlocks([content]);
  const blocks: Block[] = [];
  content.forEach((p, j) => {
    if (p.type === 'text') blocks.push(...textBlocks([(p as { text: string }).text]));
    else if (p.type === 'image_url') blocks.push(imageBlock((p as { image_url: { url: string } }).image_url.url, `${param}[${j}].image_url.url`));
    else throw invalidRequest(`Content part type "${p.type}" is not supported by the anthropic provider.`, `${param}[${j}].type`);
  });
  return blocks;
}

function assistantBlocks(m: Extract<Message, { role: 'assistant' }>, i: number, callIds: Set<string>): Block[] {
  const blocks: Block[] = m.content == null ? [] : textBlocks(texts(m.content, `messages[${i}].content`));
  (m.tool_calls ?? []).forEach((call: ToolCall, j) => {
    callIds.add(call.id);
    const input = parseArguments(call.function.arguments, `messages[${i}].tool_calls[${j}].function.arguments`);
    blocks.push({ type: 'tool_use', id: nativeToolId(call.id), name: call.function.name, input });
  });
  return blocks;
}

/** A tool message becomes a tool_result block; an empty result has no content (as the docs show). */
function toolResultBlock(m: Extract<Message, { role: 'tool' }>, i: number, callIds: Set<string>): ToolResultBlock {
  if (!callIds.has(m.tool_call_id)) throw invalidRequest(`No earlier assistant tool call has the id "${m.tool_call_id}".`, `messages[${i}].tool_call_id`);
  const block: ToolResultBlock = { type: 'tool_result', tool_use_id: nativeToolId(m.tool_call_id) };
  if (typeof m.content === 'string') {
    if (m.content !== '') block.content = m.content;
  } else {
    const parts = textBlocks(texts(m.content, `messages[${i}].content`));
    if (parts.length > 0) block.content = parts;
  }
  return block;
}

/** Appends blocks as a turn, merging into the previous turn of the same role (Anthropic alternates turns). */
function appendTurn(turns: Array<{ role: NativeMessage['role']; blocks: Block[] }>, role: NativeMessage['role'], blocks: Block[]): void {
  if (blocks.length === 0) return;
  const last = turns[turns.length - 1];
  if (last && last.role === role) last.blocks.push(...blocks);
  else turns.push({ role, blocks });
}

/** A lone text block is written as a plain string, the shorthand the docs use. */
function compactContent(blocks: Block[]): string | Block[] {
  const [only] = blocks;
  return blocks.length === 1 && only?.type === 'text' ? only.text : blocks;
}

function translateMessages(messages: Message[]): { system?: string | TextBlock[]; messages: NativeMessage[] } {
  const system: TextBlock[] = [];
  const turns: Array<{ role: NativeMessage['role']; blocks: Block[] }> = [];
  const callIds = new Set<string>();
  messages.forEach((m, i) => {
    const param = `messages[${i}].content`;
    switch (m.role) {
      case 'system':
      case 'developer':
        // Anthropic has one top-level system prompt: every system/developer text joins it, in order.
        system.push(...textBlocks(texts(m.content, param)));
        break;
      case 'user':
        appendTurn(turns, 'user', userBlocks(m.content, param));
        break;
      case 'assistant':
        appendTurn(turns, 'assistant', assistantBlocks(m, i, callIds));
        break;
      case 'tool':
        // Consecutive tool results merge into one user turn, which Anthropic needs for parallel calls.
        appendTurn(turns, 'user', [toolResultBlock(m, i, callIds)]);
        break;
    }
  });
  if (turns.length === 0) throw invalidRequest('The anthropic provider needs at least one non-empty user or assistant message.', 'messages');
  const native = turns.map((t) => ({ role: t.role, content: compactContent(t.blocks) }));
  if (system.length === 0) return { messages: native };
  return { system: system.length === 1 ? (system[0] as TextBlock).text : system, messages: native };
}

// ---------------------------------------------------------------------------------------------
// Request: tools and parameters

function translateTool(t: Tool): Record<string, unknown> {
  const params = t.function.parameters;
  // input_schema must be an object schema; OpenAI allows omitting parameters (or their "type").
  const schema = params === undefined ? { type: 'object', properties: {} } : 'type' in params ? params : { type: 'object', ...params };
  const tool: Record<string, unknown> = { name: t.function.name };
  if (t.function.description) tool.description = t.function.description;
  tool.input_schema = schema;
  if (t.function.strict === true) tool.strict = true;
  return tool;
}

function translateToolChoice(choice: ToolChoice | undefined, parallel: boolean | undefined): Record<string, unknown> | undefined {
  let native: Record<string, unknown> | undefined;
  if (choice === 'none') return { type: 'none' }; // ToolChoiceNone takes no parallel flag
  if (choice === 'auto') native = { type: 'auto' };
  else if (choice === 'required') native = { type: 'any' };
  else if (choice) native = { type: 'tool', name: choice.function.name };
  if (parallel === false) native = { ...(native ?? { type: 'auto' }), disable_parallel_tool_use: true };
  return native;
}

/** What counts as "not asking for anything": those values pass, any other value gets a 400. */
const UNSUPPORTED: ReadonlyArray<UnsupportedParameter> = [
  { param: 'n', neutral: (v) => v == null || v === 1, why: 'Anthropic returns exactly one choice' },
  { param: 'logprobs', neutral: (v) => v == null || v === false, why: 'Anthropic does not return log probabilities' },
  { param: 'top_logprobs', neutral: (v) => v == null || v === 0, why: 'Anthropic does not return log probabilities' },
  { param: 'logit_bias', neutral: (v) => v == null || (isPlainObject(v) && Object.keys(v).length === 0), why: 'Anthropic has no logit bias' },
  { param: 'presence_penalty', neutral: (v) => v == null || v === 0, why: 'Anthropic has no presence penalty' },
  { param: 'frequency_penalty', neutral: (v) => v == null || v === 0, why: 'Anthropic has no frequency penalty' },
  { param: 'audio', neutral: (v) => v == null, why: 'Anthropic has no audio output' },
  { param: 'modalities', neutral: (v) => v == null || (Array.isArray(v) && v.every((m) => m === 'text')), why: 'Anthropic outputs text only' },
  { param: 'web_search_options', neutral: (v) => v == null, why: "OpenAI's web search is not available on Anthropic" },
  { param: 'functions', neutral: (v) => v == null || (Array.isArray(v) && v.length === 0), why: 'use tools instead of the deprecated functions' },
  { param: 'function_call', neutral: (v) => v == null, why: 'use tool_choice instead of the deprecated function_call' },
  { param: 'verbosity', neutral: (v) => v == null || v === 'medium', why: 'Anthropic has no verbosity setting' },
];


function maxTokens(req: ChatRequest): number {
  return req.max_completion_tokens ?? req.max_tokens ?? DEFAULT_MAX_TOKENS;
}

function temperature(req: ChatRequest): number | undefined {
  const t = req.temperature;
  if (t != null && t > 1) throw invalidRequest('The anthropic provider takes a temperature between 0 and 1.', 'temperature');
  return t ?? undefined;
}

function stopSequences(stop: ChatRequest['stop']): string[] | undefined {
  if (stop == null) return undefined;
  const list = typeof stop === 'string' ? [stop] : stop;
  return list.length > 0 ? list : undefined;
}

/** response_format → output_config.format; reasoning_effort → output_config.effort. */
function outputConfig(req: ChatRequest): Record<string, unknown> | undefined {
  const config: Record<string, unknown> = {};
  const format = req.response_format;
  if (format && format.type === 'json_schema') {
    const schema = (format as { json_schema?: { schema?: unknown } }).json_schema?.schema;
    if (!isPlainObject(schema)) throw invalidRequest('response_format json_schema needs a schema object.', 'response_format.json_schema.schema');
    config.format = { type: 'json_schema', schema };
  } else if (format && format.type !== 'text') {
    throw invalidRequest(`response_format type "${format.type}" is not supported by the anthropic provider; use json_schema.`, 'response_format.type');
  }
  const effort = (req as { reasoning_effort?: unknown }).reasoning_effort;
  if (effort != null) {
    if (effort !== 'low' && effort !== 'medium' && effort !== 'high' && effort !== 'xhigh') {
      throw invalidRequest(`reasoning_effort "${String(effort)}" is not supported by the anthropic provider (low, medium, high, xhigh).`, 'reasoning_effort');
    }
    config.effort = effort;
  }
  return Object.keys(config).length > 0 ? config : undefined;
}

function userId(req: ChatRequest): string | undefined {
  const safety = (req as { safety_identifier?: unknown }).safety_identifier;
  return req.user ?? (typeof safety === 'string' ? safety : undefined);
}

/** The Messages API body for an OpenAI request (also sent, reshaped, by the vertex-anthropic adapter). */
export function nativeBody(req: ChatRequest, ctx: TargetContext, stream: boolean): Record<string, unknown> {
  rejectUnsupported('anthropic', req, UNSUPPORTED);
  const { system, messages } = translateMessages(req.messages);
  const body: Record<string, unknown> = { model: ctx.model, max_tokens: maxTokens(req), messages };
  const set = (key: string, value: unknown) => {
    if (value !== undefined) body[key] = value;
  };
  set('system', system);
  if (req.tools && req.tools.length > 0) {
    body.tools = req.tools.map(translateTool);
    set('tool_choice', translateToolChoice(req.tool_choice, req.parallel_tool_calls));
  }
  set('stop_sequences', stopSequences(req.stop));
  set('temperature', temperature(req));
  set('top_p', req.top_p ?? undefined);
  const user = userId(req);
  if (user !== undefined) body.metadata = { user_id: user };
  set('output_config', outputConfig(req));
  if (stream) body.stream = true;
  return body;
}

// ---------------------------------------------------------------------------------------------
// Response

/**
 * input_tokens excludes the cached parts: the prompt is input + cache reads + cache writes
 * (Usage docs: "Total input tokens in a request is the summation of input_tokens,
 * cache_creation_input_tokens, and cache_read_input_tokens"). output_tokens includes thinking.
 */
export function usageFromAnthropic(u: unknown): Usage | undefined {
  if (!isPlainObject(u)) return undefined;
  const usage = u as AnthropicUsage;
  return usageFromCacheParts(
    num(usage.input_tokens),
    num(usage.cache_read_input_tokens),
    num(usage.cache_creation_input_tokens),
    num(usage.output_tokens),
    num(usage.output_tokens_details?.thinking_tokens),
  );
}

/** stop_reason → finish_reason; pause_turn only follows server tools, which are never sent. */
const FINISH_REASONS: ReadonlyMap<string, FinishReason> = new Map([
  ['end_turn', 'stop'],
  ['stop_sequence', 'stop'],
  ['pause_turn', 'stop'],
  ['max_tokens', 'length'],
  ['model_context_window_exceeded', 'length'],
  ['tool_use', 'tool_calls'],
  ['refusal', 'content_filter'],
]);

function finishReason(stop: string | null | undefined): FinishReason {
  return (stop ? FINISH_REASONS.get(stop) : undefined) ?? 'stop';
}

function toolCall(block: ResponseBlock): ToolCall {
  return { id: block.id ?? '', type: 'function', function: { name: block.name ?? '', arguments: JSON.stringify(block.input ?? {}) } };
}

function parseMessage(body: unknown): AnthropicMessage {
  if (!isPlainObject(body)) throw new UpstreamProtocolError('upstream response is not an Anthropic message');
  const m = body as AnthropicMessage;
  if (m.type === 'error') throw new UpstreamProtocolError('upstream answered 200 with an error body');
  if (!Array.isArray(m.content)) throw new UpstreamProtocolError('upstream message has no content array');
  return m;
}

// ---------------------------------------------------------------------------------------------
// Stream


/**
 * Anthropic streams typed events: message_start (id, model, first usage), per content block
 * content_block_start / _delta / _stop, message_delta (stop_reason, cumulative usage) and
 * message_stop. Tool calls are numbered in their own sequence: OpenAI's tool_calls index counts
 * calls, Anthropic's block index counts every block (text and thinking too).
 */
class AnthropicStreamTranslator extends ChunkWriter implements StreamTranslator {
  finished = false;
  responseModel: string | undefined;
  private raw: AnthropicUsage | undefined;
  /** Anthropic block index → OpenAI tool call index, and whether the call got any argument text. */
  private readonly calls = new Map<number, { index: number; hasArguments: boolean }>();

  protected override chunkModel(): string {
    return this.responseModel ?? this.ctx.model;
  }

  get usage(): Usage | undefined {
    return this.raw ? usageFromAnthropic(this.raw) : undefined;
  }

  push(event: SseEvent): ChatCompletionChunk[] {
    const data = parseStreamEvent(event.data);
    const type = typeof data.type === 'string' ? data.type : event.event;
    switch (type) {
      case 'message_start':
        this.messageStart(data);
        return [];
      case 'content_block_start':
        return this.blockStart(data);
      case 'content_block_delta':
        return this.blockDelta(data);
      case 'content_block_stop':
        return this.blockStop(data);
      case 'message_delta':
        return this.messageDelta(data);
      case 'message_stop':
        this.finished = true;
        // A stream without a stop_reason still ends the choice for the client.
        return this.finishSent ? [] : this.finish('stop');
      case 'error':
        throw streamError(data.error, this.ctx);
      default:
        // ping, and event types added later (the docs ask clients to ignore unknown ones).
        return [];
    }
  }

  private messageStart(data: Record<string, unknown>): void {
    const message = isPlainObject(data.message) ? (data.message as AnthropicMessage) : {};
    if (typeof message.id === 'string') this.id = message.id;
    if (typeof message.model === 'string') this.responseModel = message.model;
    this.mergeUsage(message.usage);
  }

  private blockStart(data: Record<string, unknown>): ChatCompletionChunk[] {
    const block = isPlainObject(data.content_block) ? (data.content_block as ResponseBlock) : {};
    if (block.type === 'text' && typeof block.text === 'string' && block.text) return this.emit({ content: block.text });
    if (block.type !== 'tool_use') return []; // thinking, redacted_thinking, server tools
    const index = this.calls.size;
    this.calls.set(num(data.index), { index, hasArguments: false });
    const call: ChunkToolCall = { index, id: typeof block.id === 'string' ? block.id : '', type: 'function', function: { name: typeof block.name === 'string' ? block.name : '', arguments: '' } };
    return this.emit({ tool_calls: [call] });
  }

  private blockDelta(data: Record<string, unknown>): ChatCompletionChunk[] {
    const delta = isPlainObject(data.delta) ? data.delta : {};
    if (delta.type === 'text_delta' && typeof delta.text === 'string' && delta.text) return this.emit({ content: delta.text });
    if (delta.type !== 'input_json_delta' || typeof delta.partial_json !== 'string' || !delta.partial_json) return [];
    const call = this.calls.get(num(data.index));
    if (!call) return []; // server_tool_use input: Anthropic runs those tools itself
    call.hasArguments = true;
    return this.emit({ tool_calls: [{ index: call.index, function: { arguments: delta.partial_json } }] });
  }

  /** A call without parameters streams no argument text; OpenAI clients JSON.parse the arguments. */
  private blockStop(data: Record<string, unknown>): ChatCompletionChunk[] {
    const call = this.calls.get(num(data.index));
    if (!call || call.hasArguments) return [];
    call.hasArguments = true;
    return this.emit({ tool_calls: [{ index: call.index, function: { arguments: '{}' } }] });
  }

  private messageDelta(data: Record<string, unknown>): ChatCompletionChunk[] {
    this.mergeUsage(data.usage);
    const delta = isPlainObject(data.delta) ? data.delta : {};
    if (typeof delta.stop_reason !== 'string' || this.finishSent) return [];
    return this.finish(finishReason(delta.stop_reason));
  }

  /** Usage fields are cumulative: each one present replaces the earlier value, never adds to it. */
  private mergeUsage(u: unknown): void {
    if (!isPlainObject(u)) return;
    const merged: AnthropicUsage = { ...this.raw };
    for (const [key, value] of Object.entries(u)) {
      if (value != null) (merged as Record<string, unknown>)[key] = value;
    }
    this.raw = merged;
  }



}


function streamError(error: unknown, ctx: TargetContext): UpstreamStreamError {
  const e: AnthropicError = isPlainObject(error) ? (error as AnthropicError) : {};
  return new UpstreamStreamError(upstreamText(e.message, ctx) ?? 'upstream stream error', safeCode(e.type) ?? 'error');
}

/** Anthropic's error body: {"type":"error","error":{"type":"invalid_request_error","message":"…"}}; the code is the error's type. */
export function anthropicErrorInfo(body: string, ctx: TargetContext): UpstreamErrorInfo {
  const parsed = errorBodyJson(body);
  if (!isPlainObject(parsed) || !isPlainObject(parsed.error)) return noErrorInfo();
  const e = parsed.error as AnthropicError;
  const type = safeCode(e.type);
  return { message: upstreamText(e.message, ctx) ?? type, code: type, type };
}

// ---------------------------------------------------------------------------------------------

export const anthropicAdapter: ProviderAdapter = {
  provider: 'anthropic',
  defaultBaseURL: 'https://api.anthropic.com',

  nativeApis: ['messages'],
  passthroughRequest(native: NativeRequest, ctx: TargetContext, stream: boolean): UpstreamRequest | undefined {
    if (native.api !== 'messages') return undefined;
    return { url: joinURL(ctx.baseURL, '/v1/messages'), headers: { ...native.headers, ...headers(ctx) }, body: JSON.stringify(passthroughBody(native, ctx.model, stream)) };
  },

  chatRequest(req: ChatRequest, ctx: TargetContext, stream: boolean): UpstreamRequest {
    return { url: joinURL(ctx.baseURL, '/v1/messages'), headers: headers(ctx), body: JSON.stringify(nativeBody(req, ctx, stream)) };
  },

  chatResponse(body: unknown, ctx: TargetContext): { completion: ChatCompletion; usage: Usage | undefined } {
    const m = parseMessage(body);
    const blocks = m.content ?? [];
    // Thinking and server-tool blocks are not part of the OpenAI message.
    const text = blocks.flatMap((b) => (b.type === 'text' && typeof b.text === 'string' ? [b.text] : [])).join('');
    const toolCalls = blocks.filter((b) => b.type === 'tool_use').map(toolCall);
    const message: ChatCompletion['choices'][number]['message'] = { role: 'assistant', content: text === '' && toolCalls.length > 0 ? null : text };
    if (toolCalls.length > 0) message.tool_calls = toolCalls;
    const usage = usageFromAnthropic(m.usage);
    const completion: ChatCompletion = {
      id: m.id ?? ctx.responseId,
      object: 'chat.completion',
      created: ctx.created,
      model: m.model ?? ctx.model,
      choices: [{ index: 0, message, finish_reason: finishReason(m.stop_reason), logprobs: null }],
    };
    if (usage) completion.usage = usageToOpenAI(usage);
    return { completion, usage };
  },

  chatStream(ctx: TargetContext): StreamTranslator {
    return new AnthropicStreamTranslator(ctx);
  },

  errorInfo: anthropicErrorInfo,
};
