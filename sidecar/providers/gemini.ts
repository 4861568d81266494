import { createHash } from 'node:crypto';
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
import { safeCode, upstreamText } from './redact.js';
import { errorBodyJson, isPlainObject, noErrorInfo, num, parseArguments, parseEventJson } from './wire.js';

/**
 * Google Gemini API (generativelanguage.googleapis.com, v1beta generateContent /
 * streamGenerateContent?alt=sse). Field names follow the REST reference at
 * https://ai.google.dev/api/generate-content and the official SDK googleapis/js-genai (types.ts).
 */

// ---------------------------------------------------------------------------------------------
// Native wire shapes (only the fields this adapter reads or writes)

interface GeminiPart {
  text?: string;
  /** True on thought-summary parts (only sent with thinkingConfig.includeThoughts): never content. */
  thought?: boolean;
  thoughtSignature?: string;
  inlineData?: { mimeType: string; data: string };
  fileData?: { mimeType: string; fileUri: string };
  functionCall?: { name: string; args?: Record<string, unknown>; id?: string };
  functionResponse?: { name: string; response: Record<string, unknown> };
}

interface GeminiContent {
  role: 'user' | 'model';
  parts: GeminiPart[];
}

interface GeminiCandidate {
  content?: { parts?: GeminiPart[]; role?: string };
  finishReason?: string;
  index?: number;
}

interface GeminiUsageMetadata {
  promptTokenCount?: number;
  candidatesTokenCount?: number;
  thoughtsTokenCount?: number;
  cachedContentTokenCount?: number;
  toolUsePromptTokenCount?: number;
  totalTokenCount?: number;
}

interface GeminiResponse {
  candidates?: GeminiCandidate[];
  promptFeedback?: { blockReason?: string };
  usageMetadata?: GeminiUsageMetadata;
  modelVersion?: string;
  responseId?: string;
  error?: GeminiError;
}

interface GeminiError {
  code?: number;
  message?: string;
  status?: string;
}

// ---------------------------------------------------------------------------------------------
// Request

/**
 * Gemini 3 models reject a replayed functionCall part that lacks the thoughtSignature the model
 * attached to it (400 "Function call is missing a thought_signature"). The sidecar is stateless
 * and OpenAI tool calls have nowhere to carry the signature (and a signature inside the tool-call
 * id would break failover to OpenAI, which caps ids at 40 characters), so replayed calls carry
 * Google's documented placeholder instead (https://ai.google.dev/gemini-api/docs/thought-signatures:
 * "skip_thought_signature_validator", for calls not produced by this model in this session).
 */
const SKIP_THOUGHT_SIGNATURE = 'skip_thought_signature_validator';

/** Image MIME types Gemini accepts (ai.google.dev/gemini-api/docs/image-understanding), by URL extension. */
const IMAGE_MIME_BY_EXTENSION: Readonly<Record<string, string>> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  webp: 'image/webp',
  heic: 'image/heic',
  heif: 'image/heif',
};

function modelPath(model: string): string {
  // 'models/x' and 'tunedModels/x' are full resource names; a bare id lives under models/.
  const name = model.includes('/') ? model : `models/${model}`;
  return '/v1beta/' + name.split('/').map(encodeURIComponent).join('/');
}

function headers(ctx: TargetContext, stream: boolean): Record<string, string> {
  const h: Record<string, string> = { 'content-type': 'application/json', accept: stream ? 'text/event-stream' : 'application/json' };
  // The key goes in a header, never in ?key=: URLs end up in logs.
  if (ctx.apiKey) h['x-goog-api-key'] = ctx.apiKey;
  return h;
}

/** Text of a system/developer/tool message; only text parts make sense there. */
function textOnly(content: string | ContentPart[], param: string): string[] {
  if (typeof content === 'string') return [content];
  return content.map((p, j) => {
    if (p.type !== 'text') throw invalidRequest(`Content part type "${p.type}" is not supported here by the gemini provider.`, `${param}[${j}].type`);
    return (p as { text: string }).text;
  });
}

function imagePart(url: string, param: string): GeminiPart {
  const data = /^data:([^;,]+);base64,(.*)$/s.exec(url);
  if (data) return { inlineData: { mimeType: data[1] as string, data: data[2] as string } };
  if (url.startsWith('data:')) throw invalidRequest('Image data URLs must be base64-encoded (data:<mime>;base64,...).', param);
  if (!/^https?:\/\//i.test(url)) throw invalidRequest('Image URLs must be https://, http:// or data: URLs.', param);
  // fileData.mimeType is required and Gemini does not sniff it: guess from the path's extension.
  const ext = /\.([a-z0-9]+)$/i.exec(urlPath(url, param))?.[1]?.toLowerCase();
  const mimeType = ext ? IMAGE_MIME_BY_EXTENSION[ext] : undefined;
  if (!mimeType) {
    throw invalidRequest('The gemini provider needs the image type of an http(s) image URL from its extension (.png, .jpg, .jpeg, .webp, .heic, .heif); send other images as base64 data: URLs.', param);
  }
  return { fileData: { mimeType, fileUri: url } };
}

function urlPath(url: string, param: string): string {
  try {
    return new URL(url).pathname;
  } catch {
    throw invalidRequest('The image URL is not a valid URL.', param);
  }
}

function userParts(content: string | ContentPart[], param: string): GeminiPart[] {
  if (typeof content === 'string') return textParts([content]);
  const parts: GeminiPart[] = [];
  content.forEach((p, j) => {
    if (p.type === 'text') parts.push(...textParts([(p as { text: string }).text]));
    else if (p.type === 'image_url') parts.push(imagePart((p as { image_url: { url: string } }).image_url.url, `${param}[${j}].image_url.url`));
    else throw invalidRequest(`Content part type "${p.type}" is not supported by the gemini provider.`, `${param}[${j}].type`);
  });
  return parts;
}

/** Gemini rejects empty text parts, so empty strings are dropped. */
function textParts(texts: string[]): GeminiPart[] {
  return texts.filter((t) => t.length > 0).map((text) => ({ text }));
}

function assistantParts(m: Extract<Message, { role: 'assistant' }>, i: number, callNames: Map<string, string>): GeminiPart[] {
  const parts: GeminiPart[] = m.content == null ? [] : textParts(textOnly(m.content, `messages[${i}].content`));
  (m.tool_calls ?? []).forEach((call: ToolCall, j) => {
    callNames.set(call.id, call.function.name);
    parts.push({ functionCall: { name: call.function.name, args: parseArguments(call.function.arguments, `messages[${i}].tool_calls[${j}].function.arguments`) } });
  });
  return parts;
}

/**
 * functionResponse.response must be a JSON object. A JSON-object result goes as is; anything else
 * goes under "output", the key the API documents for a function's output (FunctionResponse.response).
 */
function toolPart(m: Extract<Message, { role: 'tool' }>, i: number, callNames: Map<string, string>): GeminiPart {
  const name = callNames.get(m.tool_call_id);
  if (!name) throw invalidRequest(`No earlier assistant tool call has the id "${m.tool_call_id}".`, `messages[${i}].tool_call_id`);
  const text = textOnly(m.content, `messages[${i}].content`).join('');
  let response: Record<string, unknown> = { output: text };
  try {
    const parsed: unknown = JSON.parse(text);
    if (isPlainObject(parsed)) response = parsed;
  } catch {
    /* plain text result */
  }
  return { functionResponse: { name, response } };
}

/** Appends parts as a turn, merging into the previous turn of the same role (Gemini wants alternating turns). */
function appendTurn(contents: GeminiContent[], role: GeminiContent['role'], parts: GeminiPart[]): void {
  if (parts.length === 0) return;
  const last = contents[contents.length - 1];
  if (last && last.role === role) last.parts.push(...parts);
  else contents.push({ role, parts });
}

function signReplayedCalls(contents: GeminiContent[]): void {
  for (const c of contents) {
    const first = c.role === 'model' ? c.parts.find((p) => p.functionCall) : undefined;
    if (first) first.thoughtSignature = SKIP_THOUGHT_SIGNATURE;
  }
}

function translateMessages(messages: Message[]): { systemInstruction?: { parts: GeminiPart[] }; contents: GeminiContent[] } {
  const system: GeminiPart[] = [];
  const contents: GeminiContent[] = [];
  const callNames = new Map<string, string>();
  messages.forEach((m, i) => {
    const param = `messages[${i}].content`;
    switch (m.role) {
      case 'system':
      case 'developer':
        // Gemini has one system instruction; every system/developer message becomes a part of it, in order.
        system.push(...textParts(textOnly(m.content, param)));
        break;
      case 'user':
        appendTurn(contents, 'user', userParts(m.content, param));
        break;
      case 'assistant':
        appendTurn(contents, 'model', assistantParts(m, i, callNames));
        break;
      case 'tool':
        appendTurn(contents, 'user', [toolPart(m, i, callNames)]);
        break;
    }
  });
  if (contents.length === 0) throw invalidRequest('The gemini provider needs at least one non-empty user or assistant message.', 'messages');
  signReplayedCalls(contents);
  return system.length > 0 ? { systemInstruction: { parts: system }, contents } : { contents };
}

function translateTools(tools: Tool[]): Array<{ functionDeclarations: Array<Record<string, unknown>> }> {
  return [
    {
      functionDeclarations: tools.map((t) => {
        const decl: Record<string, unknown> = { name: t.function.name };
        if (t.function.description) decl.description = t.function.description;
        // OpenAI parameters are JSON Schema; `parameters` takes only Google's OpenAPI subset and
        // rejects common keywords (additionalProperties, $schema...), `parametersJsonSchema` takes JSON Schema.
        if (t.function.parameters) decl.parametersJsonSchema = t.function.parameters;
        return decl;
      }),
    },
  ];
}

function translateToolChoice(choice: ToolChoice): { functionCallingConfig: Record<string, unknown> } {
  if (choice === 'auto') return { functionCallingConfig: { mode: 'AUTO' } };
  if (choice === 'none') return { functionCallingConfig: { mode: 'NONE' } };
  if (choice === 'required') return { functionCallingConfig: { mode: 'ANY' } };
  return { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: [choice.function.name] } };
}

function responseFormat(format: NonNullable<ChatRequest['response_format']>): Record<string, unknown> {
  if (format.type === 'text') return {};
  if (format.type === 'json_object') return { responseMimeType: 'application/json' };
  if (format.type === 'json_schema') {
    const schema = (format as { json_schema?: { schema?: unknown } }).json_schema?.schema;
    if (!isPlainObject(schema)) throw invalidRequest('response_format json_schema needs a schema object.', 'response_format.json_schema.schema');
    // responseJsonSchema takes JSON Schema as OpenAI clients write it (responseSchema is an OpenAPI subset).
    return { responseMimeType: 'application/json', responseJsonSchema: schema };
  }
  throw invalidRequest(`response_format type "${format.type}" is not supported by the gemini provider.`, 'response_format.type');
}

function generationConfig(req: ChatRequest): Record<string, unknown> {
  const config: Record<string, unknown> = {};
  const set = (key: string, value: unknown) => {
    if (value != null) config[key] = value;
  };
  set('maxOutputTokens', req.max_completion_tokens ?? req.max_tokens);
  set('temperature', req.temperature);
  set('topP', req.top_p);
  if (req.stop != null) {
    const stop = typeof req.stop === 'string' ? [req.stop] : req.stop;
    if (stop.length > 0) config.stopSequences = stop;
  }
  set('candidateCount', req.n);
  set('seed', req.seed);
  set('presencePenalty', req.presence_penalty);
  set('frequencyPenalty', req.frequency_penalty);
  if (req.response_format) Object.assign(config, responseFormat(req.response_format));
  return config;
}

/** The GenerateContentRequest body for an OpenAI request (also sent by the vertex adapter). */
export function nativeBody(req: ChatRequest): Record<string, unknown> {
  const body: Record<string, unknown> = { ...translateMessages(req.messages) };
  if (req.tools && req.tools.length > 0) {
    body.tools = translateTools(req.tools);
    if (req.tool_choice) body.toolConfig = translateToolChoice(req.tool_choice);
  }
  const config = generationConfig(req);
  if (Object.keys(config).length > 0) body.generationConfig = config;
  return body;
}

// ---------------------------------------------------------------------------------------------
// Response

const CONTENT_FILTER_REASONS = new Set(['SAFETY', 'RECITATION', 'BLOCKLIST', 'PROHIBITED_CONTENT', 'SPII', 'IMAGE_SAFETY']);

function finishReason(reason: string, hasToolCalls: boolean): FinishReason {
  if (reason === 'MAX_TOKENS') return 'length';
  if (CONTENT_FILTER_REASONS.has(reason)) return 'content_filter';
  // Gemini says STOP after function calls; OpenAI clients look for tool_calls to run them.
  return hasToolCalls ? 'tool_calls' : 'stop';
}

/**
 * promptTokenCount already includes cachedContentTokenCount; candidatesTokenCount excludes the
 * thinking tokens, which are billed as output (thoughtsTokenCount). toolUsePromptTokenCount
 * (results of Google-run tools) is billed as input and is not part of promptTokenCount.
 */
export function usageFromGemini(meta: unknown): Usage | undefined {
  if (!isPlainObject(meta)) return undefined;
  const m = meta as GeminiUsageMetadata;
  const thoughts = num(m.thoughtsTokenCount);
  return {
    inputTokens: num(m.promptTokenCount) + num(m.toolUsePromptTokenCount),
    outputTokens: num(m.candidatesTokenCount) + thoughts,
    cacheReadTokens: num(m.cachedContentTokenCount),
    cacheWriteTokens: 0,
    reasoningTokens: thoughts,
  };
}

/** Tool-call ids: Gemini gives none, so derive short (≤40 chars, OpenAI's limit), unique, stable ones. */
function toolCallId(responseId: string, choice: number, call: number): string {
  const h = createHash('sha256').update(responseId).digest('hex').slice(0, 24);
  return `call_${h}_${choice}_${call}`;
}

function visibleText(parts: GeminiPart[]): string {
  return parts
    .filter((p) => typeof p.text === 'string' && p.thought !== true)
    .map((p) => p.text as string)
    .join('');
}

function functionCalls(parts: GeminiPart[]): Array<NonNullable<GeminiPart['functionCall']>> {
  return parts.flatMap((p) => (isPlainObject(p.functionCall) ? [{ ...p.functionCall, name: typeof p.functionCall.name === 'string' ? p.functionCall.name : '' }] : []));
}

/** A candidate's parts that are objects (anything else in the array is skipped). */
function partsOf(cand: GeminiCandidate): GeminiPart[] {
  const parts = isPlainObject(cand.content) ? cand.content.parts : undefined;
  return Array.isArray(parts) ? parts.filter(isPlainObject) : [];
}

/** The candidate's own index when it gives a usable one, else its position. */
function indexOf(cand: GeminiCandidate, position: number): number {
  return Number.isSafeInteger(cand.index) && (cand.index as number) >= 0 ? (cand.index as number) : position;
}

type CompletionChoice = ChatCompletion['choices'][number];

function completionChoice(cand: GeminiCandidate, position: number, ctx: TargetContext): CompletionChoice {
  const index = indexOf(cand, position);
  const parts = partsOf(cand);
  const text = visibleText(parts);
  const toolCalls: ToolCall[] = functionCalls(parts).map((fc, j) => ({
    id: toolCallId(ctx.responseId, index, j),
    type: 'function',
    function: { name: fc.name, arguments: JSON.stringify(fc.args ?? {}) },
  }));
  const message: CompletionChoice['message'] = { role: 'assistant', content: text === '' && toolCalls.length > 0 ? null : text };
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  return { index, message, finish_reason: finishReason(cand.finishReason ?? 'STOP', toolCalls.length > 0), logprobs: null };
}

/** A prompt Gemini blocked (promptFeedback.blockReason) has no candidates: answer one empty, filtered choice. */
function blockedChoice(): CompletionChoice {
  return { index: 0, message: { role: 'assistant', content: '' }, finish_reason: 'content_filter', logprobs: null };
}

function parseResponse(body: unknown): GeminiResponse {
  if (!isPlainObject(body)) throw new UpstreamProtocolError('upstream response is not a Gemini GenerateContentResponse');
  const r = body as GeminiResponse;
  if (r.candidates !== undefined && !Array.isArray(r.candidates)) throw new UpstreamProtocolError('upstream candidates is not an array');
  if (!r.candidates?.length && !r.promptFeedback?.blockReason) throw new UpstreamProtocolError('upstream response has no candidates');
  return r;
}

// ---------------------------------------------------------------------------------------------
// Stream

interface ChoiceState {
  started: boolean;
  toolCalls: number;
  finished: boolean;
}

/**
 * Each SSE event is a whole GenerateContentResponse holding the next piece of every candidate;
 * function calls arrive whole. There is no [DONE]: the stream is complete once every candidate
 * seen has a finishReason (candidates that never appeared cannot be waited for).
 */
class GeminiStreamTranslator implements StreamTranslator {
  usage: Usage | undefined;
  responseModel: string | undefined;
  private id: string | undefined;
  private readonly choices = new Map<number, ChoiceState>();
  private blocked = false;

  constructor(private readonly ctx: TargetContext) {}

  get finished(): boolean {
    if (this.blocked) return true;
    return this.choices.size > 0 && [...this.choices.values()].every((c) => c.finished);
  }

  push(event: SseEvent): ChatCompletionChunk[] {
    const chunk = parseChunk(event.data);
    if (chunk.error) throw new UpstreamStreamError(upstreamText(chunk.error.message, this.ctx) ?? 'upstream stream error', safeCode(chunk.error.status) ?? (typeof chunk.error.code === 'number' ? String(chunk.error.code) : 'error'));
    this.id ??= typeof chunk.responseId === 'string' ? chunk.responseId : this.ctx.responseId;
    if (typeof chunk.modelVersion === 'string') this.responseModel = chunk.modelVersion;
    if (chunk.usageMetadata) this.usage = usageFromGemini(chunk.usageMetadata);
    const candidates = Array.isArray(chunk.candidates) ? chunk.candidates : [];
    if (candidates.length === 0 && chunk.promptFeedback?.blockReason) return this.blockedChunk();
    return candidates.flatMap((cand, i) => (isPlainObject(cand) ? this.candidateChunk(cand as GeminiCandidate, i) : []));
  }

  private state(index: number): ChoiceState {
    let s = this.choices.get(index);
    if (!s) {
      s = { started: false, toolCalls: 0, finished: false };
      this.choices.set(index, s);
    }
    return s;
  }

  private candidateChunk(cand: GeminiCandidate, position: number): ChatCompletionChunk[] {
    const index = indexOf(cand, position);
    const s = this.state(index);
    const parts = partsOf(cand);
    const delta: ChatCompletionChunk['choices'][number]['delta'] = {};
    if (!s.started) delta.role = 'assistant';
    const text = visibleText(parts);
    if (text) delta.content = text;
    const calls: ChunkToolCall[] = functionCalls(parts).map((fc) => {
      const n = s.toolCalls++;
      return { index: n, id: toolCallId(this.ctx.responseId, index, n), type: 'function', function: { name: fc.name, arguments: JSON.stringify(fc.args ?? {}) } };
    });
    if (calls.length > 0) delta.tool_calls = calls;
    const finish = typeof cand.finishReason === 'string' && cand.finishReason ? finishReason(cand.finishReason, s.toolCalls > 0) : null;
    if (finish) s.finished = true;
    if (Object.keys(delta).length === 0 && !finish) return [];
    s.started = true;
    return [this.chunk(index, delta, finish)];
  }

  private blockedChunk(): ChatCompletionChunk[] {
    this.blocked = true;
    return [this.chunk(0, { role: 'assistant', content: '' }, 'content_filter')];
  }

  private chunk(index: number, delta: ChatCompletionChunk['choices'][number]['delta'], finish: FinishReason | null): ChatCompletionChunk {
    return {
      id: this.id ?? this.ctx.responseId,
      object: 'chat.completion.chunk',
      created: this.ctx.created,
      model: this.responseModel ?? this.ctx.model,
      choices: [{ index, delta, finish_reason: finish, logprobs: null }],
    };
  }
}

function parseChunk(data: string): GeminiResponse {
  let parsed = parseEventJson(data);
  // Google wraps errors in an array on some paths; the SSE path sends objects.
  if (Array.isArray(parsed) && parsed.length === 1) parsed = parsed[0];
  if (!isPlainObject(parsed)) throw new UpstreamProtocolError('upstream sent a stream event that is not an object');
  return parsed as GeminiResponse;
}

/**
 * Google's error body: {"error":{"code":400,"message":"…","status":"INVALID_ARGUMENT"}}, also
 * wrapped in an array (streamGenerateContent); the code is the status.
 */
export function geminiErrorInfo(body: string, ctx: TargetContext): UpstreamErrorInfo {
  let parsed = errorBodyJson(body);
  if (Array.isArray(parsed)) parsed = parsed[0];
  if (!isPlainObject(parsed) || !isPlainObject(parsed.error)) return noErrorInfo();
  const e = parsed.error as GeminiError;
  const status = safeCode(e.status);
  return { message: upstreamText(e.message, ctx) ?? status, code: status, type: undefined };
}

// ---------------------------------------------------------------------------------------------

export const geminiAdapter: ProviderAdapter = {
  provider: 'gemini',
  defaultBaseURL: 'https://generativelanguage.googleapis.com',

  chatRequest(req: ChatRequest, ctx: TargetContext, stream: boolean): UpstreamRequest {
    const method = stream ? ':streamGenerateContent?alt=sse' : ':generateContent';
    return { url: joinURL(ctx.baseURL, modelPath(ctx.model) + method), headers: headers(ctx, stream), body: JSON.stringify(nativeBody(req)) };
  },

  chatResponse(body: unknown, ctx: TargetContext): { completion: ChatCompletion; usage: Usage | undefined } {
    const r = parseResponse(body);
    const choices = r.candidates?.length ? r.candidates.map((c, i) => completionChoice(c, i, ctx)) : [blockedChoice()];
    const usage = usageFromGemini(r.usageMetadata);
    const completion: ChatCompletion = {
      id: r.responseId ?? ctx.responseId,
      object: 'chat.completion',
      created: ctx.created,
      model: r.modelVersion ?? ctx.model,
      choices,
    };
    if (usage) completion.usage = usageToOpenAI(usage);
    return { completion, usage };
  },

  chatStream(ctx: TargetContext): StreamTranslator {
    return new GeminiStreamTranslator(ctx);
  },

  errorInfo: geminiErrorInfo,
};
