import type { ApiError } from '../errors.js';
import type { ChatCompletion, ChatRequest, ContentPart, Message, Tool, ToolChoice } from '../openai-schema.js';
import type { Usage } from '../usage.js';
import {
  CountTokensRequestSchema,
  MessagesRequestSchema,
  isPlainMessagesRequest,
  parseWith,
  type AssistantBlockParam,
  type CountTokensRequest,
  type ImageBlockParam,
  type MessagesRequest,
  type TextBlockParam,
  type ToolResultBlockParam,
  type UserBlockParam,
} from './messages-schema.js';
import { MessagesStreamEncoder } from './messages-stream.js';
import { anthropicUsage, messageId, stopReason, toolUseId, type AnthropicContentBlock, type AnthropicErrorBody, type AnthropicMessage } from './messages-wire.js';
import { passthroughOnlyDoor, type CallerCost, type FrontDoor, type StreamEncoder } from './types.js';
import { forwardedHeaders, messagesPassthrough } from './messages-passthrough.js';

export type { AnthropicContentBlock, AnthropicErrorBody, AnthropicMessage, AnthropicStopReason, AnthropicTextBlock, AnthropicToolUseBlock, AnthropicUsage } from './messages-wire.js';

/**
 * The Anthropic Messages API front door (POST /v1/messages, /v1/messages/count_tokens): an
 * Anthropic SDK client's request → the internal ChatRequest, and the chat pipeline's answer →
 * Anthropic's Message (or its SSE events, messages-stream.ts). References: the API reference
 * (platform.claude.com/docs/en/api/messages), the streaming guide
 * (platform.claude.com/docs/en/build-with-claude/streaming), the errors page
 * (platform.claude.com/docs/en/api/errors) and the official SDK (@anthropic-ai/sdk
 * src/resources/messages/messages.ts, src/lib/MessageStream.ts).
 *
 * Request decisions:
 * - model is kept as sent: it names a paygo route.
 * - system (string or text blocks; cache_control ignored) → one system message first; text
 *   blocks become text parts, so a route to Anthropic gets the same blocks back. A system-role
 *   message (the SDK's SystemMessageParam) becomes a system message where it stands.
 * - user content: a string stays a string; text and image blocks become content parts (image
 *   base64 → `data:<media_type>;base64,<data>` URL, url source → its URL). tool_result blocks
 *   become tool messages placed before the rest of that user turn (OpenAI wants tool messages
 *   right after the assistant's tool_calls): content is the result's text (text blocks joined
 *   with "\n": providers take plain-text tool output); is_error → "Error: " before the text
 *   (OpenAI has no error flag); image blocks of a tool result (OpenAI tool messages carry text
 *   only) join the user message that follows the tool messages, ahead of the turn's own content.
 * - assistant content: text blocks joined with "\n\n" (null when there are tool calls and no
 *   text); tool_use → tool_calls (arguments = JSON.stringify(input)); thinking and
 *   redacted_thinking are dropped (signed for Anthropic only; no OpenAI field carries them).
 * - max_tokens → max_tokens, stop_sequences → stop, temperature, top_p, metadata.user_id → user,
 *   stream → stream. top_k is dropped: OpenAI has no such parameter (OpenAI itself refuses it)
 *   and it is a sampling hint that does not decide what is asked.
 * - tools (custom only) → function tools, parameters = input_schema, strict kept. tool_choice
 *   auto → "auto", any → "required", tool → {type:"function",function:{name}}, none → "none";
 *   disable_parallel_tool_use → parallel_tool_calls: false. tool_choice is only sent with tools
 *   (OpenAI refuses a tool_choice without tools).
 * - Reasoning: output_config.effort (low|medium|high|xhigh; max → xhigh) → reasoning_effort;
 *   otherwise thinking enabled → reasoning_effort by budget_tokens (< 4096 low, < 16384 medium,
 *   else high). adaptive (the model decides), disabled and between_tools send nothing: a
 *   reasoning_effort would be refused by non-reasoning models, and the provider's default is
 *   what "the model decides" means.
 * - output_config.format json_schema → response_format json_schema (name "response", not
 *   strict: OpenAI's strict mode needs every property required, which Anthropic does not).
 * - Refused with 400 naming the field: server tools (tools.N.type), document, search_result and
 *   other blocks paygo cannot pass on, Files API image sources, mcp_servers.
 *
 * Response decisions:
 * - id: the completion's id when it is an Anthropic one (msg_…), else msg_ + a random id.
 * - content: one text block (omitted when the text is empty: Anthropic refuses empty text blocks
 *   when a client sends the answer back), then one tool_use block per tool call, input =
 *   JSON.parse(arguments); arguments that are not a JSON object give input {} (the client's tool
 *   then reports the missing parameters to the model, which can retry). A refusal's text is the
 *   text when there is no content.
 * - stop_reason: stop → end_turn (tool_use when the answer has tool calls: some providers end
 *   tool calls with "stop"), length → max_tokens, tool_calls → tool_use, content_filter →
 *   refusal. The chat format does not say whether a stop sequence ended the text, nor which:
 *   stop_reason is never "stop_sequence" and stop_sequence is always null.
 * - usage: input_tokens excludes cache reads and writes, which Anthropic counts apart ("Total
 *   input tokens in a request is the summation of input_tokens, cache_creation_input_tokens, and
 *   cache_read_input_tokens"); cost (USD) is added as in paygo's other APIs.
 */

/** One Messages API request, translated, with what turns the chat pipeline's answer back into Anthropic's. */
export interface MessagesTurn {
  chat: ChatRequest;
  respond(completion: ChatCompletion, usage: Usage, cost: CallerCost): AnthropicMessage;
  encoder(): StreamEncoder;
}

// ---------------------------------------------------------------------------------------------
// Request → ChatRequest

type ImagePart = Extract<ContentPart, { type: 'image_url' }>;

function textPart(block: TextBlockParam): ContentPart {
  return { type: 'text', text: block.text };
}

function imagePart(block: ImageBlockParam): ImagePart {
  const source = block.source;
  const url = source.type === 'base64' ? `data:${source.media_type};base64,${source.data}` : source.url;
  return { type: 'image_url', image_url: { url } };
}

function toolMessage(block: ToolResultBlockParam, images: ImagePart[]): Message {
  let text: string;
  if (block.content === undefined) text = '';
  else if (typeof block.content === 'string') text = block.content;
  else {
    const texts: string[] = [];
    for (const part of block.content) {
      if (part.type === 'text') texts.push(part.text);
      else images.push(imagePart(part));
    }
    text = texts.join('\n');
  }
  if (block.is_error === true) text = text ? `Error: ${text}` : 'Error';
  return { role: 'tool', tool_call_id: block.tool_use_id, content: text };
}

/** A user turn: its tool results first (as tool messages), then one user message with the rest. */
function userMessages(content: string | UserBlockParam[], out: Message[]): void {
  if (typeof content === 'string') {
    out.push({ role: 'user', content });
    return;
  }
  const parts: ContentPart[] = [];
  const toolImages: ImagePart[] = [];
  let toolResults = 0;
  for (const block of content) {
    if (block.type === 'tool_result') {
      out.push(toolMessage(block, toolImages));
      toolResults++;
    } else if (block.type === 'text') parts.push(textPart(block));
    else parts.push(imagePart(block));
  }
  // A turn of tool results only is complete with its tool messages.
  if (toolResults > 0 && parts.length === 0 && toolImages.length === 0) return;
  out.push({ role: 'user', content: [...toolImages, ...parts] });
}

function assistantMessage(content: string | AssistantBlockParam[]): Message {
  if (typeof content === 'string') return { role: 'assistant', content };
  const texts: string[] = [];
  const toolCalls: Array<{ id: string; type: 'function'; function: { name: string; arguments: string } }> = [];
  for (const block of content) {
    if (block.type === 'text') texts.push(block.text);
    else if (block.type === 'tool_use') toolCalls.push({ id: block.id, type: 'function', function: { name: block.name, arguments: JSON.stringify(block.input) } });
    // thinking, redacted_thinking: dropped
  }
  const text = texts.join('\n\n');
  if (toolCalls.length === 0) return { role: 'assistant', content: text };
  return { role: 'assistant', content: text === '' ? null : text, tool_calls: toolCalls };
}

function systemMessage(content: string | TextBlockParam[]): Message {
  return { role: 'system', content: typeof content === 'string' ? content : content.map(textPart) };
}

function translateMessages(req: CountTokensRequest): Message[] {
  const out: Message[] = [];
  const system = req.system;
  if (system != null && system.length > 0) out.push(systemMessage(system));
  for (const m of req.messages) {
    if (m.role === 'user') userMessages(m.content, out);
    else if (m.role === 'assistant') out.push(assistantMessage(m.content));
    else out.push(systemMessage(m.content));
  }
  return out;
}

function translateTool(tool: NonNullable<CountTokensRequest['tools']>[number]): Tool {
  const fn: Tool['function'] = { name: tool.name };
  if (tool.description !== undefined) fn.description = tool.description;
  fn.parameters = tool.input_schema;
  if (tool.strict != null) fn.strict = tool.strict;
  return { type: 'function', function: fn };
}

function translateToolChoice(choice: NonNullable<CountTokensRequest['tool_choice']>): ToolChoice {
  switch (choice.type) {
    case 'auto':
      return 'auto';
    case 'any':
      return 'required';
    case 'none':
      return 'none';
    case 'tool':
      return { type: 'function', function: { name: choice.name } };
  }
}

/** Anthropic's thinking budget / effort → OpenAI's reasoning_effort (see the decisions above). */
function reasoningEffort(req: CountTokensRequest): string | undefined {
  const effort = req.output_config?.effort;
  if (effort != null) return effort === 'max' ? 'xhigh' : effort;
  const thinking = req.thinking;
  if (thinking?.type !== 'enabled') return undefined;
  const budget = thinking.budget_tokens;
  return budget < 4096 ? 'low' : budget < 16384 ? 'medium' : 'high';
}

/** Everything but max_tokens and stream (count_tokens has neither). */
function translateCommon(req: CountTokensRequest): ChatRequest {
  const chat: ChatRequest = { model: req.model, messages: translateMessages(req) };
  if (req.stop_sequences != null && req.stop_sequences.length > 0) chat.stop = req.stop_sequences;
  if (req.temperature != null) chat.temperature = req.temperature;
  if (req.top_p != null) chat.top_p = req.top_p;
  if (req.tools != null && req.tools.length > 0) {
    chat.tools = req.tools.map(translateTool);
    const choice = req.tool_choice;
    if (choice != null) {
      chat.tool_choice = translateToolChoice(choice);
      if (choice.type !== 'none' && choice.disable_parallel_tool_use === true) chat.parallel_tool_calls = false;
    }
  }
  const user = req.metadata?.user_id;
  if (user != null) chat.user = user;
  const effort = reasoningEffort(req);
  if (effort !== undefined) chat.reasoning_effort = effort;
  const format = req.output_config?.format;
  if (format != null) chat.response_format = { type: 'json_schema', json_schema: { name: 'response', schema: format.schema } };
  return chat;
}

function translateRequest(req: MessagesRequest): ChatRequest {
  const chat = translateCommon(req);
  chat.max_tokens = req.max_tokens;
  if (req.stream != null) chat.stream = req.stream;
  return chat;
}

// ---------------------------------------------------------------------------------------------
// ChatCompletion → Anthropic Message

/** Tool input must be an object; arguments that are not one give {} (see the decisions above). */
function toolInput(args: string): Record<string, unknown> {
  try {
    const input: unknown = JSON.parse(args);
    return input !== null && typeof input === 'object' && !Array.isArray(input) ? (input as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function respond(requestModel: string, completion: ChatCompletion, usage: Usage, cost: CallerCost): AnthropicMessage {
  const choice = completion.choices[0];
  const message = choice?.message;
  const content: AnthropicContentBlock[] = [];
  const text = message?.content || message?.refusal || '';
  if (text) content.push({ type: 'text', text });
  const calls = message?.tool_calls ?? [];
  for (const call of calls) content.push({ type: 'tool_use', id: toolUseId(call.id), name: call.function.name, input: toolInput(call.function.arguments) });
  return {
    id: messageId(completion.id),
    type: 'message',
    role: 'assistant',
    model: completion.model || requestModel,
    content,
    stop_reason: stopReason(choice?.finish_reason, calls.length > 0),
    stop_sequence: null,
    usage: anthropicUsage(usage, cost),
  };
}

// ---------------------------------------------------------------------------------------------
// Entry points

/** Validates an Anthropic Messages request (400 naming the field) and translates it. */
export function parseMessagesRequest(body: unknown): MessagesTurn {
  // The plain request as it came; zod for the rest (same verdict, test/sidecar/apis/messages-schema.test.ts).
  const req = isPlainMessagesRequest(body) ? body : parseWith(MessagesRequestSchema, body);
  const chat = translateRequest(req);
  return {
    chat,
    respond: (completion, usage, cost) => respond(req.model, completion, usage, cost),
    encoder: () => new MessagesStreamEncoder(req.model),
  };
}

/** A count_tokens body → the ChatRequest whose prompt is counted (no max_tokens, no stream). */
export function parseCountTokensRequest(body: unknown): ChatRequest {
  return translateCommon(parseWith(CountTokensRequestSchema, body));
}

/**
 * Anthropic's error type for a status (errors page: "HTTP errors"; 402 billing_error and 504
 * timeout_error from the SDK's ErrorType). Other 4xx are invalid_request_error, as the docs say
 * Anthropic does; other 5xx are api_error. The status itself is kept.
 */
export function anthropicErrorType(status: number): string {
  switch (status) {
    case 400:
      return 'invalid_request_error';
    case 401:
      return 'authentication_error';
    case 402:
      return 'billing_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 503:
    case 529:
      return 'overloaded_error';
    case 504:
      return 'timeout_error';
    default:
      return status >= 500 ? 'api_error' : 'invalid_request_error';
  }
}

/** An ApiError in Anthropic's shape: {"type":"error","error":{"type","message"}} (+ request_id when given). */
export function anthropicError(err: ApiError, requestId?: string): { status: number; body: AnthropicErrorBody } {
  const body: AnthropicErrorBody = { type: 'error', error: { type: anthropicErrorType(err.status), message: err.message } };
  if (requestId !== undefined) body.request_id = requestId;
  return { status: err.status, body };
}

/**
 * The Messages API's way through the chat pipeline (server.ts): translated for every provider,
 * passed through as it came to the ones that speak it (messages-passthrough.ts).
 */
export function messagesDoor(turn: MessagesTurn, body: Readonly<Record<string, unknown>>, clientHeaders: Readonly<Record<string, string | string[] | undefined>>): FrontDoor {
  // Field by field, not `...MESSAGES_SHAPE`: a spread of an object holding functions, with fields
  // added after it, takes a new hidden class per request in V8 (test/bench/README.md).
  return {
    api: MESSAGES_SHAPE.api,
    error: MESSAGES_SHAPE.error,
    headers: MESSAGES_SHAPE.headers,
    passthrough: messagesPassthrough(body, forwardedHeaders(clientHeaders)),
    encoder: () => turn.encoder(),
    respond: (completion, usage, cost) => turn.respond(completion, usage, cost),
  };
}

/** How every Messages answer looks besides its body: Anthropic's error shape and request-id header. */
const MESSAGES_SHAPE: Pick<FrontDoor, 'api' | 'error' | 'headers'> = {
  api: 'messages',
  error: (err) => anthropicError(err),
  // Anthropic's clients log and report this header.
  headers: (requestId) => ({ 'request-id': requestId }),
};

/**
 * A Messages request only a Messages-speaking provider can answer (`reason`: why it cannot be
 * translated): passed through to the route's anthropic and vertex-anthropic targets, the others
 * skipped with `reason`.
 */
export function messagesPassthroughDoor(body: Readonly<Record<string, unknown>>, clientHeaders: Readonly<Record<string, string | string[] | undefined>>, reason: ApiError): FrontDoor {
  return passthroughOnlyDoor(MESSAGES_SHAPE, messagesPassthrough(body, forwardedHeaders(clientHeaders)), reason);
}
