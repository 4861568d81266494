import { createRequire } from 'node:module';
import type { Message as EventStreamMessage } from '@smithy/core/event-streams';
import type { CancelSignal } from '../cancel.js';
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
} from '../openai-schema.js';
import type { SseEvent } from '../sse.js';
import { TransportError, untilCancelled } from '../transport.js';
import { usageFromCacheParts, usageToOpenAI, type Usage } from '../usage.js';
import {
  joinURL,
  type ProviderAdapter,
  type StreamDecoder,
  type StreamTranslator,
  type TargetContext,
  type UpstreamHeaders,
  type UpstreamRequest,
} from './types.js';
import { UpstreamHttpError, UpstreamProtocolError, UpstreamStreamError, type UpstreamErrorInfo } from './errors.js';
import { safeCode, upstreamText } from './redact.js';
import { errorBodyJson, isPlainObject, num, parseArguments, parseStreamEvent, rejectUnsupported, unsupportedParameter, type UnsupportedParameter } from './wire.js';
import { ChunkWriter } from './chunks.js';

/**
 * Amazon Bedrock Converse API: POST {baseURL}/model/{modelId}/converse, and /converse-stream for
 * streams, signed with AWS Signature Version 4 (service `bedrock`, the target's region). Field
 * names follow the API reference (docs.aws.amazon.com/bedrock/latest/APIReference/
 * API_runtime_Converse.html, API_runtime_ConverseStream.html, API_runtime_TokenUsage.html) and the
 * user guide (bedrock/latest/userguide/conversation-inference-call.html, tool-use-inference-call.html,
 * prompt-caching.html).
 *
 * Target: `model` is a model id or inference profile id (anthropic.claude-3-5-haiku-20241022-v1:0,
 * us.amazon.nova-lite-v1:0) or an ARN, URL-encoded into the path; `region` is required; the default
 * base URL is https://bedrock-runtime.{region}.amazonaws.com (`{region}` is filled in, also in a
 * `baseURL` override, e.g. a VPC endpoint).
 *
 * Credentials (authorize()): the target's secretRef is the secret access key, accessKeyIdRef and
 * sessionTokenRef the other parts. Without credentials the pod's web identity is used (IRSA:
 * AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, exchanged at STS by the AWS SDK's own provider and
 * cached until 5 minutes before expiry). The request is signed over its final method, URL, headers
 * (host, content-type, x-amz-date, x-amz-security-token) and body with @smithy/signature-v4.
 * Unusable credentials: 401 (fails over, no retry); STS out of reach: a connect failure (retried).
 * Neither the secret nor a token is ever part of an error message.
 *
 * Decisions:
 * - Messages: system/developer texts → `system: [{text}]`; user text → {text}, data: URL images →
 *   {image: {format, source: {bytes}}} (png, jpeg, gif, webp; Converse takes no web URLs);
 *   assistant text + tool_calls → {text} + {toolUse: {toolUseId, name, input}}; a tool message →
 *   a user turn with {toolResult: {toolUseId, content: [{text}]}}. Consecutive turns of the same
 *   role are merged (Converse alternates user and assistant). Empty texts are left out (Converse
 *   refuses blank text blocks); tool ids outside [a-zA-Z0-9_-] are mapped into it.
 * - inferenceConfig: max_completion_tokens ?? max_tokens → maxTokens, temperature (0–1),
 *   top_p → topP, stop → stopSequences. tools → toolConfig.tools[].toolSpec {name, description,
 *   inputSchema: {json}}; tool_choice auto → {auto: {}}, required → {any: {}}, a function →
 *   {tool: {name}}; none → no toolConfig (Converse has no "none"), refused when the conversation
 *   already holds tool calls (Converse then needs the tools declared and could call them).
 * - Dropped: user, store, metadata, service_tier, stream_options (Converse always reports usage),
 *   prompt_cache_key, prediction, message `name`, image `detail`.
 * - 400 unsupported_parameter (the router tries the next target): n > 1, logprobs/top_logprobs,
 *   logit_bias, non-zero presence/frequency penalties, seed, temperature > 1, response_format
 *   json_object/json_schema, reasoning_effort, parallel_tool_calls false, audio/modalities,
 *   web_search_options, legacy functions, verbosity, content parts other than text and image
 *   data URLs.
 * - Response: text blocks joined (reasoningContent is not part of the OpenAI message), toolUse →
 *   tool_calls with JSON-stringified input; stopReason end_turn/stop_sequence → stop,
 *   max_tokens/model_context_window_exceeded → length, tool_use → tool_calls,
 *   guardrail_intervened/content_filtered → content_filter. Converse returns no id and no model:
 *   the sidecar's response id and the target's model id are used.
 * - Usage: inputTokens counts only the uncached prompt (prompt-caching guide: cache reads and
 *   writes are reported apart), so prompt_tokens = inputTokens + cacheReadInputTokens +
 *   cacheWriteInputTokens.
 * - Stream: application/vnd.amazon.eventstream frames (decoded with @smithy/core's
 *   EventStreamCodec); events messageStart, contentBlockStart (tool use), contentBlockDelta (text,
 *   toolUse.input, reasoningContent), contentBlockStop, messageStop (stopReason) and metadata
 *   (usage, metrics), which ends the stream. Exceptions inside the stream end it with an upstream
 *   stream error; throttlingException and serviceUnavailableException are `overloaded_error`, so
 *   before the first chunk the router fails over as for a 503.
 */

const PROVIDER = 'bedrock';
/** The signing name of Bedrock's runtime endpoints (service `bedrock`, not `bedrock-runtime`). */
export const SIGNING_SERVICE = 'bedrock';
export const DEFAULT_BASE_URL = 'https://bedrock-runtime.{region}.amazonaws.com';
export const EVENT_STREAM_CONTENT_TYPE = 'application/vnd.amazon.eventstream';

// ---------------------------------------------------------------------------------------------
// AWS libraries, loaded on first use: a sidecar without Bedrock targets never pays for them.

const requireModule = createRequire(import.meta.url);

interface AwsLibs {
  SignatureV4: typeof import('@smithy/signature-v4').SignatureV4;
  Hash: typeof import('@smithy/core/serde').Hash;
  toUtf8: typeof import('@smithy/core/serde').toUtf8;
  fromUtf8: typeof import('@smithy/core/serde').fromUtf8;
  EventStreamCodec: typeof import('@smithy/core/event-streams').EventStreamCodec;
}

let awsLibs: AwsLibs | undefined;

function libs(): AwsLibs {
  if (!awsLibs) {
    const serde = requireModule('@smithy/core/serde') as typeof import('@smithy/core/serde');
    awsLibs = {
      SignatureV4: (requireModule('@smithy/signature-v4') as typeof import('@smithy/signature-v4')).SignatureV4,
      Hash: serde.Hash,
      toUtf8: serde.toUtf8,
      fromUtf8: serde.fromUtf8,
      EventStreamCodec: (requireModule('@smithy/core/event-streams') as typeof import('@smithy/core/event-streams')).EventStreamCodec,
    };
  }
  return awsLibs;
}

// ---------------------------------------------------------------------------------------------
// Native wire shapes (only the fields this adapter reads or writes)

type ImageFormat = 'png' | 'jpeg' | 'gif' | 'webp';

type ContentBlock =
  | { text: string }
  | { image: { format: ImageFormat; source: { bytes: string } } }
  | { toolUse: { toolUseId: string; name: string; input: Record<string, unknown> } }
  | { toolResult: { toolUseId: string; content: Array<{ text: string }> } };

interface ConverseMessage {
  role: 'user' | 'assistant';
  content: ContentBlock[];
}

/** TokenUsage: inputTokens excludes the cache reads and writes, reported apart. */
interface BedrockUsage {
  inputTokens?: number | null;
  outputTokens?: number | null;
  totalTokens?: number | null;
  cacheReadInputTokens?: number | null;
  cacheWriteInputTokens?: number | null;
}

interface ResponseBlock {
  text?: unknown;
  toolUse?: { toolUseId?: unknown; name?: unknown; input?: unknown };
  reasoningContent?: unknown;
}

interface ConverseResponse {
  output?: { message?: { role?: string; content?: ResponseBlock[] } };
  stopReason?: string;
  usage?: BedrockUsage;
}

// ---------------------------------------------------------------------------------------------
// Request: URL and messages

/** The Converse endpoint of a target: {region} filled in, the model id URL-encoded. */
export function converseURL(ctx: TargetContext, stream: boolean): string {
  const region = ctx.settings?.region;
  let base = ctx.baseURL;
  if (base.includes('{region}')) {
    if (!region) throw new UpstreamHttpError(401, 'the bedrock target has no region (spec.targets[].region)', undefined);
    base = base.replaceAll('{region}', region);
  }
  return joinURL(base, `/model/${encodeURIComponent(ctx.model)}/${stream ? 'converse-stream' : 'converse'}`);
}

/** Converse tool ids match [a-zA-Z0-9_-]+ (ToolUseBlock.toolUseId); others' ids are mapped the same way on both ends. */
function nativeToolId(id: string): string {
  const mapped = id.replace(/[^a-zA-Z0-9_-]/g, '_');
  return mapped === '' ? '_' : mapped.slice(0, 64);
}

const IMAGE_FORMATS: ReadonlyMap<string, ImageFormat> = new Map([
  ['image/png', 'png'],
  ['image/jpeg', 'jpeg'],
  ['image/jpg', 'jpeg'],
  ['image/gif', 'gif'],
  ['image/webp', 'webp'],
]);

function texts(content: string | ContentPart[], param: string): string[] {
  if (typeof content === 'string') return [content];
  return content.map((p, j) => {
    if (p.type !== 'text') throw unsupportedParameter(PROVIDER, `${param}[${j}].type`, `content part type "${p.type}" is not supported here`);
    return (p as { text: string }).text;
  });
}

function textBlocks(strings: string[]): ContentBlock[] {
  return strings.filter((text) => text.length > 0).map((text) => ({ text }));
}

function imageBlock(url: string, param: string): ContentBlock {
  const data = /^data:([^;,]+);base64,(.*)$/s.exec(url);
  if (!data) {
    if (url.startsWith('data:')) throw invalidRequest('Image data URLs must be base64-encoded (data:<mime>;base64,...).', param);
    throw unsupportedParameter(PROVIDER, param, 'Converse takes images as bytes only (send a base64 data: URL)');
  }
  const format = IMAGE_FORMATS.get((data[1] as string).toLowerCase());
  if (!format) throw unsupportedParameter(PROVIDER, param, `image type "${data[1]}" is not one of png, jpeg, gif, webp`);
  return { image: { format, source: { bytes: data[2] as string } } };
}

function userBlocks(content: string | ContentPart[], param: string): ContentBlock[] {
  if (typeof content === 'string') return textBlocks([content]);
  const blocks: ContentBlock[] = [];
  content.forEach((p, j) => {
    if (p.type === 'text') blocks.push(...textBlocks([(p as { text: string }).text]));
    else if (p.type === 'image_url') blocks.push(imageBlock((p as { image_url: { url: string } }).image_url.url, `${param}[${j}].image_url.url`));
    else throw unsupportedParameter(PROVIDER, `${param}[${j}].type`, `content part type "${p.type}" is not supported`);
  });
  return blocks;
}

interface Turns {
  list: ConverseMessage[];
  /** Whether a toolUse or toolResult block was written (Converse then needs toolConfig). */
  toolBlocks: boolean;
}

/** Appends blocks as a turn, merging into the previous turn of the same role (Converse alternates roles). */
function appendTurn(turns: Turns, role: ConverseMessage['role'], blocks: ContentBlock[]): void {
  if (blocks.length === 0) return;
  const last = turns.list[turns.list.length - 1];
  if (last && last.role === role) last.content.push(...blocks);
  else turns.list.push({ role, content: blocks });
}

function translateMessages(messages: Message[]): { system: Array<{ text: string }>; turns: Turns } {
  const system: Array<{ text: string }> = [];
  const turns: Turns = { list: [], toolBlocks: false };
  const callIds = new Set<string>();
  messages.forEach((m, i) => {
    const param = `messages[${i}].content`;
    switch (m.role) {
      case 'system':
      case 'developer':
        for (const text of texts(m.content, param)) if (text.length > 0) system.push({ text });
        break;
      case 'user':
        appendTurn(turns, 'user', userBlocks(m.content, param));
        break;
      case 'assistant': {
        const blocks = m.content == null ? [] : textBlocks(texts(m.content, param));
        (m.tool_calls ?? []).forEach((call: ToolCall, j) => {
          callIds.add(call.id);
          const input = parseArguments(call.function.arguments, `messages[${i}].tool_calls[${j}].function.arguments`);
          blocks.push({ toolUse: { toolUseId: nativeToolId(call.id), name: call.function.name, input } });
          turns.toolBlocks = true;
        });
        appendTurn(turns, 'assistant', blocks);
        break;
      }
      case 'tool':
        if (!callIds.has(m.tool_call_id)) throw invalidRequest(`No earlier assistant tool call has the id "${m.tool_call_id}".`, `messages[${i}].tool_call_id`);
        // ToolResultBlock.content is required: an empty result is one empty text.
        appendTurn(turns, 'user', [{ toolResult: { toolUseId: nativeToolId(m.tool_call_id), content: [{ text: texts(m.content, param).join('') }] } }]);
        turns.toolBlocks = true;
        break;
    }
  });
  if (turns.list.length === 0) throw invalidRequest('The bedrock provider needs at least one non-empty user or assistant message.', 'messages');
  return { system, turns };
}

// ---------------------------------------------------------------------------------------------
// Request: tools and parameters

function toolSpec(t: Tool): Record<string, unknown> {
  const spec: Record<string, unknown> = { name: t.function.name };
  if (t.function.description) spec.description = t.function.description;
  // inputSchema.json must be an object schema; OpenAI allows leaving parameters out.
  spec.inputSchema = { json: t.function.parameters ?? { type: 'object', properties: {} } };
  return { toolSpec: spec };
}

function toolConfig(req: ChatRequest, turns: Turns): Record<string, unknown> | undefined {
  const tools = req.tools ?? [];
  const choice = req.tool_choice;
  if (choice === 'none') {
    if (turns.toolBlocks) {
      throw unsupportedParameter(PROVIDER, 'tool_choice', 'Converse needs the tools declared once the conversation holds tool calls, and then cannot forbid calling them');
    }
    return undefined;
  }
  if (tools.length === 0) return undefined;
  const config: Record<string, unknown> = { tools: tools.map(toolSpec) };
  if (choice === 'auto') config.toolChoice = { auto: {} };
  else if (choice === 'required') config.toolChoice = { any: {} };
  else if (choice) {
    if (!tools.some((t) => t.function.name === choice.function.name)) {
      throw invalidRequest(`tool_choice names "${choice.function.name}", which is not in tools.`, 'tool_choice.function.name');
    }
    config.toolChoice = { tool: { name: choice.function.name } };
  }
  return config;
}

/** What counts as "not asking for anything": those values pass, any other value gets a 400. */
const UNSUPPORTED: ReadonlyArray<UnsupportedParameter> = [
  { param: 'n', neutral: (v) => v == null || v === 1, why: 'Converse returns exactly one choice' },
  { param: 'logprobs', neutral: (v) => v == null || v === false, why: 'Converse does not return log probabilities' },
  { param: 'top_logprobs', neutral: (v) => v == null || v === 0, why: 'Converse does not return log probabilities' },
  { param: 'logit_bias', neutral: (v) => v == null || (isPlainObject(v) && Object.keys(v).length === 0), why: 'Converse has no logit bias' },
  { param: 'presence_penalty', neutral: (v) => v == null || v === 0, why: 'Converse has no presence penalty' },
  { param: 'frequency_penalty', neutral: (v) => v == null || v === 0, why: 'Converse has no frequency penalty' },
  { param: 'seed', neutral: (v) => v == null, why: 'Converse has no seed' },
  { param: 'reasoning_effort', neutral: (v) => v == null, why: "Converse has no model-independent reasoning setting" },
  { param: 'parallel_tool_calls', neutral: (v) => v == null || v === true, why: 'Converse cannot limit a turn to one tool call' },
  { param: 'audio', neutral: (v) => v == null, why: 'Converse has no audio output' },
  { param: 'modalities', neutral: (v) => v == null || (Array.isArray(v) && v.every((m) => m === 'text')), why: 'Converse outputs text only' },
  { param: 'web_search_options', neutral: (v) => v == null, why: "OpenAI's web search is not available on Bedrock" },
  { param: 'functions', neutral: (v) => v == null || (Array.isArray(v) && v.length === 0), why: 'use tools instead of the deprecated functions' },
  { param: 'function_call', neutral: (v) => v == null, why: 'use tool_choice instead of the deprecated function_call' },
  { param: 'verbosity', neutral: (v) => v == null || v === 'medium', why: 'Converse has no verbosity setting' },
];

function rejectConverseUnsupported(req: ChatRequest): void {
  rejectUnsupported(PROVIDER, req, UNSUPPORTED);
  const format = req.response_format;
  if (format && format.type !== 'text') {
    throw unsupportedParameter(PROVIDER, 'response_format.type', `response format "${format.type}" has no model-independent Converse equivalent`);
  }
  if (req.temperature != null && req.temperature > 1) throw unsupportedParameter(PROVIDER, 'temperature', 'Converse takes a temperature between 0 and 1');
}

function inferenceConfig(req: ChatRequest): Record<string, unknown> | undefined {
  const config: Record<string, unknown> = {};
  const maxTokens = req.max_completion_tokens ?? req.max_tokens;
  if (maxTokens != null) config.maxTokens = maxTokens;
  if (req.temperature != null) config.temperature = req.temperature;
  if (req.top_p != null) config.topP = req.top_p;
  if (req.stop != null) {
    const stop = typeof req.stop === 'string' ? [req.stop] : req.stop;
    if (stop.length > 0) config.stopSequences = stop;
  }
  return Object.keys(config).length > 0 ? config : undefined;
}

function nativeBody(req: ChatRequest): Record<string, unknown> {
  rejectConverseUnsupported(req);
  const { system, turns } = translateMessages(req.messages);
  const body: Record<string, unknown> = { messages: turns.list };
  if (system.length > 0) body.system = system;
  const inference = inferenceConfig(req);
  if (inference) body.inferenceConfig = inference;
  const tools = toolConfig(req, turns);
  if (tools) body.toolConfig = tools;
  return body;
}

// ---------------------------------------------------------------------------------------------
// Response

/**
 * TokenUsage → Usage. inputTokens is the uncached part of the prompt; cacheReadInputTokens and
 * cacheWriteInputTokens are reported apart, so every prompt token is their sum.
 */
export function usageFromBedrock(u: unknown): Usage | undefined {
  if (!isPlainObject(u)) return undefined;
  const usage = u as BedrockUsage;
  return usageFromCacheParts(num(usage.inputTokens), num(usage.cacheReadInputTokens), num(usage.cacheWriteInputTokens), num(usage.outputTokens), 0);
}

const FINISH_REASONS: ReadonlyMap<string, FinishReason> = new Map([
  ['end_turn', 'stop'],
  ['stop_sequence', 'stop'],
  ['max_tokens', 'length'],
  ['model_context_window_exceeded', 'length'],
  ['tool_use', 'tool_calls'],
  ['guardrail_intervened', 'content_filter'],
  ['content_filtered', 'content_filter'],
]);

function finishReason(stop: unknown): FinishReason {
  return (typeof stop === 'string' ? FINISH_REASONS.get(stop) : undefined) ?? 'stop';
}

function parseResponse(body: unknown): ConverseResponse {
  if (!isPlainObject(body)) throw new UpstreamProtocolError('upstream response is not a Converse response');
  const r = body as ConverseResponse;
  if (!isPlainObject(r.output) || !isPlainObject(r.output.message) || !Array.isArray(r.output.message.content)) {
    throw new UpstreamProtocolError('upstream Converse response has no output.message.content');
  }
  return r;
}

function toolCall(block: NonNullable<ResponseBlock['toolUse']>): ToolCall {
  return {
    id: typeof block.toolUseId === 'string' ? block.toolUseId : '',
    type: 'function',
    function: { name: typeof block.name === 'string' ? block.name : '', arguments: JSON.stringify(block.input ?? {}) },
  };
}

// ---------------------------------------------------------------------------------------------
// Stream: event-stream framing

/** Exceptions ConverseStream sends inside a 200 stream that mean "busy, come back". */
const OVERLOADED_EXCEPTIONS = new Set(['throttlingException', 'serviceUnavailableException']);
/** Largest event-stream message accepted (AWS event-stream messages are at most 16 MiB). */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024 + 1024;

/**
 * application/vnd.amazon.eventstream → events. Each binary message (prelude with total and header
 * lengths, prelude CRC, headers, payload, message CRC) is cut out of the byte stream once complete,
 * whatever the chunk boundaries, and checked and parsed by EventStreamCodec. An `event` message
 * becomes {event: its :event-type, data: payload as UTF-8}; an `exception` message
 * {event: its :exception-type, data: payload}; an `error` message {event: 'error', data:
 * {"message": :error-message, "code": :error-code}}.
 */
export class EventStreamDecoder implements StreamDecoder {
  private readonly codec: InstanceType<AwsLibs['EventStreamCodec']>;
  private readonly toUtf8: AwsLibs['toUtf8'];
  private buffer: Buffer = Buffer.alloc(0);
  /** Pieces received while the message they belong to is incomplete: joined once it is (not per piece). */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes the incomplete message at the head of the buffer needs, once its prelude is known. */
  private needed = 0;

  constructor() {
    const l = libs();
    this.codec = new l.EventStreamCodec(l.toUtf8, l.fromUtf8);
    this.toUtf8 = l.toUtf8;
  }

  push(bytes: Uint8Array): SseEvent[] {
    if (bytes.length === 0) return [];
    if (this.needed > 0) {
      // Still inside a message: keep the piece until the message is complete.
      this.pending.push(Buffer.from(bytes));
      this.pendingBytes += bytes.length;
      if (this.buffer.length + this.pendingBytes < this.needed) return [];
      this.buffer = Buffer.concat([this.buffer, ...this.pending]);
      this.pending = [];
      this.pendingBytes = 0;
      this.needed = 0;
    } else {
      this.buffer = this.buffer.length === 0 ? Buffer.from(bytes) : Buffer.concat([this.buffer, bytes]);
    }
    const events: SseEvent[] = [];
    while (this.buffer.length >= 4) {
      const total = this.buffer.readUInt32BE(0);
      if (total < 16 || total > MAX_MESSAGE_BYTES) throw new UpstreamProtocolError(`upstream sent an event-stream message of ${total} bytes`);
      if (this.buffer.length < total) {
        this.needed = total;
        break;
      }
      const message = this.buffer.subarray(0, total);
      this.buffer = this.buffer.subarray(total);
      events.push(this.event(message));
    }
    return events;
  }

  end(): SseEvent[] {
    if (this.buffer.length > 0 || this.pendingBytes > 0) throw new UpstreamProtocolError('upstream event stream ended inside a message');
    return [];
  }

  private event(bytes: Uint8Array): SseEvent {
    let message: EventStreamMessage;
    try {
      message = this.codec.decode(bytes);
    } catch {
      throw new UpstreamProtocolError('upstream sent an event-stream message that does not check out');
    }
    const header = (name: string): string | undefined => {
      const h = message.headers[name];
      return h && h.type === 'string' ? h.value : undefined;
    };
    const type = header(':message-type');
    if (type === 'event') return { event: header(':event-type') ?? '', data: this.toUtf8(message.body) };
    if (type === 'exception') return { event: header(':exception-type') ?? 'exception', data: this.toUtf8(message.body) };
    if (type === 'error') return { event: 'error', data: JSON.stringify({ message: header(':error-message') ?? 'unknown error', code: header(':error-code') }) };
    throw new UpstreamProtocolError(`upstream sent an event-stream message of type ${safeCode(type) ?? 'unknown'}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Stream: events → chunks


/**
 * ConverseStream events: messageStart, then per content block (indexed by contentBlockIndex)
 * contentBlockStart (tool use only), contentBlockDelta..., contentBlockStop; then messageStop with
 * the stopReason and metadata with usage and metrics, which completes the stream. Tool calls are
 * numbered in their own sequence (OpenAI's index counts calls, contentBlockIndex every block).
 */
class BedrockStreamTranslator extends ChunkWriter implements StreamTranslator {
  finished = false;
  usage: Usage | undefined;
  readonly responseModel: string | undefined = undefined;
  private readonly calls = new Map<number, { index: number; hasArguments: boolean }>();

  push(event: SseEvent): ChatCompletionChunk[] {
    const type = event.event ?? '';
    if (type === 'error' || type.endsWith('Exception')) throw streamError(type, event.data, this.ctx);
    const data = parseStreamEvent(event.data);
    switch (type) {
      case 'contentBlockStart':
        return this.blockStart(data);
      case 'contentBlockDelta':
        return this.blockDelta(data);
      case 'contentBlockStop':
        return this.blockStop(data);
      case 'messageStop':
        return this.finishSent ? [] : this.finish(finishReason(data.stopReason));
      case 'metadata':
        return this.metadata(data);
      default:
        // messageStart (the role is always assistant) and event types added later.
        return [];
    }
  }

  private blockStart(data: Record<string, unknown>): ChatCompletionChunk[] {
    const start = isPlainObject(data.start) ? data.start : {};
    if (!isPlainObject(start.toolUse)) return [];
    const use = start.toolUse;
    const index = this.calls.size;
    this.calls.set(num(data.contentBlockIndex), { index, hasArguments: false });
    const call: ChunkToolCall = { index, id: typeof use.toolUseId === 'string' ? use.toolUseId : '', type: 'function', function: { name: typeof use.name === 'string' ? use.name : '', arguments: '' } };
    return this.emit({ tool_calls: [call] });
  }

  private blockDelta(data: Record<string, unknown>): ChatCompletionChunk[] {
    const delta = isPlainObject(data.delta) ? data.delta : {};
    if (typeof delta.text === 'string') return delta.text ? this.emit({ content: delta.text }) : [];
    if (!isPlainObject(delta.toolUse)) return []; // reasoningContent, citations
    const input = delta.toolUse.input;
    const call = this.calls.get(num(data.contentBlockIndex));
    if (!call || typeof input !== 'string' || !input) return [];
    call.hasArguments = true;
    return this.emit({ tool_calls: [{ index: call.index, function: { arguments: input } }] });
  }

  /** A call without parameters streams no input; OpenAI clients JSON.parse the arguments. */
  private blockStop(data: Record<string, unknown>): ChatCompletionChunk[] {
    const call = this.calls.get(num(data.contentBlockIndex));
    if (!call || call.hasArguments) return [];
    call.hasArguments = true;
    return this.emit({ tool_calls: [{ index: call.index, function: { arguments: '{}' } }] });
  }

  /** metadata comes last (usage, metrics): the stream is complete. */
  private metadata(data: Record<string, unknown>): ChatCompletionChunk[] {
    const usage = usageFromBedrock(data.usage);
    if (usage) this.usage = usage;
    this.finished = true;
    return this.finishSent ? [] : this.finish('stop');
  }



}


/** An exception event: overloaded for throttling/unavailable (the router fails over), else its own name. */
function streamError(type: string, data: string, ctx: TargetContext): UpstreamStreamError {
  let message: string | undefined;
  try {
    const parsed: unknown = JSON.parse(data);
    if (isPlainObject(parsed) && typeof parsed.message === 'string' && parsed.message) message = upstreamText(firstParagraph(parsed.message), ctx);
  } catch {
    /* the type says enough */
  }
  const code = safeCode(type) ?? 'error';
  return new UpstreamStreamError(message ?? `Bedrock stream ${code}`, OVERLOADED_EXCEPTIONS.has(type) ? 'overloaded_error' : code);
}

/**
 * Bedrock's error body is {"message": "..."} ({"Message"} from some front ends); the exception
 * name (ValidationException, ThrottlingException…) is the code, from the x-amzn-ErrorType header
 * (`ValidationException:http://internal.amazon.com/…`) or the body's `__type`.
 */
export function bedrockErrorInfo(body: string, ctx: TargetContext, headers: UpstreamHeaders): UpstreamErrorInfo {
  const header = headers['x-amzn-errortype'];
  const fromHeader = (Array.isArray(header) ? header[0] : header)?.split(':', 1)[0];
  const parsed = errorBodyJson(body);
  const b = isPlainObject(parsed) ? parsed : {};
  const fromBody = typeof b.__type === 'string' ? b.__type.slice(b.__type.lastIndexOf('#') + 1) : undefined;
  const message = typeof b.message === 'string' ? b.message : typeof b.Message === 'string' ? b.Message : undefined;
  return { message: message ? upstreamText(firstParagraph(message), ctx) : undefined, code: safeCode(fromHeader) ?? safeCode(fromBody), type: undefined };
}

/**
 * AWS's signature errors append the canonical request they computed, which holds the
 * x-amz-security-token header: only the first paragraph of a message is kept, at most 500 characters.
 */
function firstParagraph(message: string): string {
  const first = message.split(/\r?\n\s*\r?\n/, 1)[0] ?? '';
  return first.length > 500 ? `${first.slice(0, 500)}…` : first;
}

// ---------------------------------------------------------------------------------------------
// Authorization: SigV4 with the target's keys or the pod's web identity

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | undefined;
}

/**
 * Signs a request with SigV4 over its final method (POST), URL, headers and body. The host header
 * is added (it is signed and undici sends it as given); content-length is left to undici and not
 * signed. `service` and `date` are parameters for the AWS test-suite vectors.
 */
export async function signRequest(
  req: UpstreamRequest,
  credentials: AwsCredentials,
  region: string,
  o: { service?: string; date?: Date; method?: string } = {},
): Promise<UpstreamRequest> {
  const { SignatureV4, Hash } = libs();
  const url = new URL(req.url);
  const query: Record<string, string | string[]> = {};
  for (const [k, v] of url.searchParams) {
    const prev = query[k];
    query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  const signer = new SignatureV4({
    credentials,
    region,
    service: o.service ?? SIGNING_SERVICE,
    sha256: Hash.bind(null, 'sha256'),
    applyChecksum: false,
  });
  const signed = await signer.sign(
    {
      method: o.method ?? 'POST',
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port ? { port: Number(url.port) } : {}),
      path: url.pathname,
      query,
      headers: { ...req.headers, host: url.host },
      body: req.body,
    },
    o.date ? { signingDate: o.date } : {},
  );
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(signed.headers)) headers[k] = String(v);
  return { url: req.url, headers, body: req.body };
}

type CredentialProvider = () => Promise<AwsCredentials>;
const webIdentityProviders = new Map<string, Promise<CredentialProvider>>();

/**
 * The pod's web identity (IRSA): one memoized AWS SDK provider per role, token file and region,
 * created once (concurrent first requests share it, and so share one STS call).
 */
function webIdentityProvider(roleArn: string, tokenFile: string, region: string): Promise<CredentialProvider> {
  const key = `${roleArn}\u0000${tokenFile}\u0000${region}`;
  let provider = webIdentityProviders.get(key);
  if (!provider) {
    provider = (async () => {
      const { fromTokenFile } = await import('@aws-sdk/credential-provider-web-identity');
      const { memoizeIdentityProvider, isIdentityExpired, doesIdentityRequireRefresh } = await import('@smithy/core');
      // Refreshed 5 minutes before expiry (isIdentityExpired); a failed exchange is not cached.
      const source = fromTokenFile({ roleArn, webIdentityTokenFile: tokenFile, clientConfig: { region } });
      return memoizeIdentityProvider(source, isIdentityExpired, doesIdentityRequireRefresh) as CredentialProvider;
    })();
    webIdentityProviders.set(key, provider);
  }
  return provider;
}

/** A credential failure reduced to a safe message: the request's fault (401) or STS out of reach. */
function credentialError(err: unknown): Error {
  const e = (err ?? {}) as { name?: unknown; code?: unknown; syscall?: unknown; $metadata?: { httpStatusCode?: unknown } };
  const name = safeCode(e.name) ?? 'Error';
  const status = e.$metadata?.httpStatusCode;
  if (typeof e.code === 'string' && e.syscall === 'open') {
    return new UpstreamHttpError(401, `bedrock web identity: cannot read the token file (${e.code})`, undefined);
  }
  if (typeof status === 'number' && status >= 400 && status < 500 && name !== 'IDPCommunicationErrorException' && name !== 'Throttling' && status !== 429) {
    return new UpstreamHttpError(401, `bedrock web identity: STS AssumeRoleWithWebIdentity refused (${name}, HTTP ${status})`, undefined);
  }
  return new TransportError('connect', `bedrock web identity: STS AssumeRoleWithWebIdentity failed (${name}${typeof status === 'number' ? `, HTTP ${status}` : ''})`, { cause: err });
}


/** The target's credentials: its Secret's key parts, or else the pod's web identity. */
async function credentialsFor(ctx: TargetContext, region: string, signal: CancelSignal): Promise<AwsCredentials> {
  if (ctx.apiKey) {
    const accessKeyId = ctx.settings?.credentialParts?.accessKeyId;
    if (!accessKeyId) throw new UpstreamHttpError(401, 'the bedrock target has a secret access key but no access key id (credentials.accessKeyIdRef)', undefined);
    const sessionToken = ctx.settings?.credentialParts?.sessionToken;
    return sessionToken ? { accessKeyId, secretAccessKey: ctx.apiKey, sessionToken } : { accessKeyId, secretAccessKey: ctx.apiKey };
  }
  const roleArn = process.env.AWS_ROLE_ARN;
  const tokenFile = process.env.AWS_WEB_IDENTITY_TOKEN_FILE;
  if (!roleArn || !tokenFile) {
    throw new UpstreamHttpError(401, 'the bedrock target has no credentials and the pod has no web identity (credentials.secretRef + accessKeyIdRef, or AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE)', undefined);
  }
  const provider = await webIdentityProvider(roleArn, tokenFile, region);
  try {
    return await untilCancelled(provider(), signal);
  } catch (err) {
    if (err instanceof TransportError && (err.failure === 'aborted' || err.failure === 'timeout')) throw err;
    throw credentialError(err);
  }
}

// ---------------------------------------------------------------------------------------------

export const bedrockAdapter: ProviderAdapter = {
  provider: 'bedrock',
  defaultBaseURL: DEFAULT_BASE_URL,

  chatRequest(req: ChatRequest, ctx: TargetContext, stream: boolean): UpstreamRequest {
    const body = JSON.stringify(nativeBody(req));
    return { url: converseURL(ctx, stream), headers: { 'content-type': 'application/json' }, body };
  },

  chatResponse(body: unknown, ctx: TargetContext): { completion: ChatCompletion; usage: Usage | undefined } {
    const r = parseResponse(body);
    const blocks = (r.output?.message?.content ?? []).filter(isPlainObject) as ResponseBlock[];
    const text = blocks.flatMap((b) => (typeof b.text === 'string' ? [b.text] : [])).join('');
    const toolCalls = blocks.flatMap((b) => (isPlainObject(b.toolUse) ? [toolCall(b.toolUse)] : []));
    const message: ChatCompletion['choices'][number]['message'] = { role: 'assistant', content: text === '' && toolCalls.length > 0 ? null : text };
    if (toolCalls.length > 0) message.tool_calls = toolCalls;
    const usage = usageFromBedrock(r.usage);
    const completion: ChatCompletion = {
      id: ctx.responseId,
      object: 'chat.completion',
      created: ctx.created,
      model: ctx.model,
      choices: [{ index: 0, message, finish_reason: finishReason(r.stopReason), logprobs: null }],
    };
    if (usage) completion.usage = usageToOpenAI(usage);
    return { completion, usage };
  },

  chatStream(ctx: TargetContext): StreamTranslator {
    return new BedrockStreamTranslator(ctx);
  },

  streamDecoder(): StreamDecoder {
    return new EventStreamDecoder();
  },

  async authorize(req: UpstreamRequest, ctx: TargetContext, signal: CancelSignal): Promise<UpstreamRequest> {
    const region = ctx.settings?.region;
    if (!region) throw new UpstreamHttpError(401, 'the bedrock target has no region to sign for (spec.targets[].region)', undefined);
    const credentials = await credentialsFor(ctx, region, signal);
    return signRequest(req, credentials, region);
  },

  errorInfo: bedrockErrorInfo,
};
