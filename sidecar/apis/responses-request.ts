import { z } from 'zod';
import { bool, count, oneOf, orNull, plainRequestCheck, text, within } from '../plain-check.js';
import { ApiError, invalidRequest } from '../errors.js';
import type { ContentPart, Message, Tool, ToolCall, ToolChoice } from '../openai-schema.js';
import type { FunctionToolEcho, InputItem, ResponseTextConfig, ResponseToolChoice, StoredItem } from './responses-types.js';

/**
 * The Responses API request (developers.openai.com/api/reference/resources/responses/methods/create;
 * the `openai` SDK's ResponseCreateParams) checked and translated into chat messages.
 *
 * Decisions:
 * - Checked field by field so a 400 names the parameter path as OpenAI does (`input.2.call_id`,
 *   `tools.0.type`); messages never quote the client's values (prompt text).
 * - Input items: messages (with or without `type: "message"`), function_call,
 *   function_call_output, item_reference (also `{id}` alone, as the SDK's ItemReference allows),
 *   reasoning (dropped: other providers cannot take OpenAI's reasoning back, and it carries no
 *   text the next turn needs). Hosted-tool items (web_search_call, computer_call, …) are refused.
 * - Content: input_text, output_text and refusal (assistant) become text; input_image with an
 *   image_url becomes an image_url part. file_id images, input_file and input_audio are refused:
 *   paygo has no file storage and no audio path.
 * - Tools: function tools only. Hosted tools (web_search, file_search, computer_use, code
 *   interpreter, image generation, mcp, shell, …) run inside OpenAI; another provider cannot run
 *   them, so they are refused naming `tools.N.type` rather than silently dropped. An absent
 *   `strict` stays absent: OpenAI would make such a tool strict by rewriting its schema, which
 *   other providers cannot do.
 * - Refused (400 naming the field) because dropping them would change the answer or the state
 *   the client expects: conversation (the Conversations API), background, prompt (stored prompt
 *   templates), top_logprobs > 0. Tolerated and not forwarded: include, service_tier,
 *   prompt_cache_key, prompt_cache_retention, safety_identifier, stream_options, max_tool_calls
 *   (counts hosted tool calls only), truncation ("auto" cannot be honoured: the request fails
 *   instead when the context is too long), text.verbosity, reasoning.summary.
 */

const Nullable = <T extends z.ZodType>(t: T) => t.nullable().optional();

const TextFormatSchema = z.discriminatedUnion('type', [
  z.looseObject({ type: z.literal('text') }),
  z.looseObject({ type: z.literal('json_object') }),
  z.looseObject({
    type: z.literal('json_schema'),
    name: z.string().min(1).max(64),
    schema: z.record(z.string(), z.unknown()),
    strict: Nullable(z.boolean()),
    description: Nullable(z.string()),
  }),
]);

export const ResponsesRequestSchema = z.looseObject({
  model: z.string().min(1),
  input: z.union([z.string(), z.array(z.unknown())]).optional(),
  instructions: Nullable(z.string()),
  previous_response_id: Nullable(z.string().min(1)),
  tools: Nullable(z.array(z.unknown())),
  tool_choice: Nullable(z.unknown()),
  max_output_tokens: Nullable(z.number().int().min(1)),
  temperature: Nullable(z.number().min(0).max(2)),
  top_p: Nullable(z.number().min(0).max(1)),
  text: Nullable(z.looseObject({ format: Nullable(TextFormatSchema) })),
  reasoning: Nullable(
    z.looseObject({
      effort: Nullable(z.enum(['none', 'minimal', 'low', 'medium', 'high', 'xhigh'])),
      summary: Nullable(z.string()),
    }),
  ),
  parallel_tool_calls: Nullable(z.boolean()),
  store: Nullable(z.boolean()),
  metadata: Nullable(z.record(z.string().max(64), z.string().max(512))),
  user: Nullable(z.string()),
  stream: Nullable(z.boolean()),
  truncation: Nullable(z.enum(['auto', 'disabled'])),
  background: Nullable(z.boolean()),
  top_logprobs: Nullable(z.number().int().min(0).max(20)),
});
export type ResponsesRequest = z.infer<typeof ResponsesRequestSchema>;

/**
 * Whether a parsed body is a Responses request of the plain shape — input as text or items (the
 * schema takes any items; they are checked as they are translated), scalar options, function
 * tools as any list, any unknown fields — checked by hand as ResponsesRequestSchema would check
 * it (plain-check.ts); text, reasoning and metadata go to zod.
 */
export const isPlainResponsesRequest = plainRequestCheck<ResponsesRequest>(
  Object.keys(ResponsesRequestSchema.shape),
  {
    model: text(1),
    input: (v) => typeof v === 'string' || Array.isArray(v),
    instructions: orNull(text()),
    previous_response_id: orNull(text(1)),
    tools: orNull(Array.isArray),
    tool_choice: () => true,
    max_output_tokens: orNull(count(1)),
    temperature: orNull(within(0, 2)),
    top_p: orNull(within(0, 1)),
    parallel_tool_calls: orNull(bool),
    store: orNull(bool),
    user: orNull(text()),
    stream: orNull(bool),
    truncation: orNull(oneOf('auto', 'disabled')),
    background: orNull(bool),
    top_logprobs: orNull(count(0, 20)),
  },
  ['model'],
);

/** A 400 naming the first issue's path, with zod's messages (which name expectations, never the values sent). */
function invalid(error: z.ZodError, prefix: string): ApiError {
  const pathOf = (i: z.core.$ZodIssue) => [prefix, ...i.path.map(String)].filter(Boolean).join('.');
  const said = error.issues.map((i) => (pathOf(i) ? `${pathOf(i)}: ${i.message}` : i.message)).join('; ');
  const first = error.issues[0];
  return invalidRequest(`Invalid request: ${said}`, first ? pathOf(first) || null : null);
}

function check<S extends z.ZodType>(schema: S, value: unknown, param: string): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw invalid(parsed.error, param);
  return parsed.data;
}

/** A type name safe to repeat in an error (an identifier, not free text). */
function quoted(type: unknown): string {
  return typeof type === 'string' && /^[\w.-]{1,64}$/.test(type) ? ` "${type}"` : '';
}

const unsupported = (message: string, param: string) => invalidRequest(message, param, 'unsupported_parameter');

/** The body checked: the top-level fields typed, refusals raised. Items, tools and tool_choice are checked by their translators. */
export function checkRequest(body: unknown): ResponsesRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalidRequest('The request body must be a JSON object.');
  // The plain request as it came; zod for the rest (same verdict, test/sidecar/apis/responses-request.test.ts).
  const req = isPlainResponsesRequest(body) ? body : check(ResponsesRequestSchema, body, '');
  const extra = req as Record<string, unknown>;
  if (extra.conversation != null) throw unsupported('conversation is not supported: paygo keeps responses, not conversations; chain them with previous_response_id.', 'conversation');
  if (extra.prompt != null) throw unsupported('prompt (a stored prompt template) is not supported: send instructions and input instead.', 'prompt');
  if (req.background) throw unsupported('background responses are not supported.', 'background');
  if (req.top_logprobs) throw unsupported('top_logprobs is not supported on /v1/responses.', 'top_logprobs');
  return req;
}

// ---------------------------------------------------------------------------------------------
// Tools

const FunctionToolSchema = z.looseObject({
  type: z.literal('function'),
  name: z.string().min(1).max(64),
  description: Nullable(z.string()),
  parameters: Nullable(z.record(z.string(), z.unknown())),
  strict: Nullable(z.boolean()),
});

/** Function tools → chat tools, and the tools as the Response echoes them. */
export function translateTools(tools: readonly unknown[] | null | undefined): { chat: Tool[]; echo: FunctionToolEcho[] } {
  const chat: Tool[] = [];
  const echo: FunctionToolEcho[] = [];
  (tools ?? []).forEach((raw, i) => {
    const type = (raw as { type?: unknown } | null)?.type;
    if (type !== 'function') {
      if (typeof type !== 'string') throw invalidRequest('Invalid request: each tool needs a type.', `tools.${i}.type`);
      throw unsupported(`The tool type${quoted(type)} is not supported: paygo serves function tools only (hosted tools run inside OpenAI).`, `tools.${i}.type`);
    }
    const t = check(FunctionToolSchema, raw, `tools.${i}`);
    chat.push({
      type: 'function',
      function: {
        name: t.name,
        ...(t.description != null && { description: t.description }),
        ...(t.parameters != null && { parameters: t.parameters }),
        ...(t.strict != null && { strict: t.strict }),
      },
    });
    echo.push({ type: 'function', name: t.name, description: t.description ?? null, parameters: t.parameters ?? null, strict: t.strict ?? null });
  });
  return { chat, echo };
}

const FunctionChoiceSchema = z.looseObject({ type: z.literal('function'), name: z.string().min(1) });

/** tool_choice → the chat tool_choice and the value the Response echoes. */
export function translateToolChoice(choice: unknown): { chat: ToolChoice; echo: ResponseToolChoice } | undefined {
  if (choice == null) return undefined;
  if (choice === 'auto' || choice === 'none' || choice === 'required') return { chat: choice, echo: choice };
  const type = (choice as { type?: unknown }).type;
  if (typeof choice !== 'object' || type === undefined) throw invalidRequest('Invalid request: tool_choice must be "auto", "none", "required" or {"type":"function","name":…}.', 'tool_choice');
  if (type !== 'function') throw unsupported(`The tool_choice type${quoted(type)} is not supported: paygo serves function tools only.`, 'tool_choice.type');
  const c = check(FunctionChoiceSchema, choice, 'tool_choice');
  return { chat: { type: 'function', function: { name: c.name } }, echo: { type: 'function', name: c.name } };
}

/** text.format → chat response_format (none for plain text). */
export function responseFormat(text: ResponsesRequest['text']): Record<string, unknown> & { type: string } | undefined {
  const f = text?.format;
  if (f == null || f.type === 'text') return undefined;
  if (f.type === 'json_object') return { type: 'json_object' };
  const s = f as { name: string; schema: Record<string, unknown>; strict?: boolean | null; description?: string | null };
  return {
    type: 'json_schema',
    json_schema: {
      name: s.name,
      schema: s.schema,
      ...(s.strict != null && { strict: s.strict }),
      ...(s.description != null && { description: s.description }),
    },
  };
}

/** The text configuration as the Response echoes it (OpenAI's default: plain text). */
export function textEcho(text: ResponsesRequest['text']): ResponseTextConfig {
  return text?.format != null ? { ...text, format: text.format } : { ...(text ?? {}), format: { type: 'text' } };
}

// ---------------------------------------------------------------------------------------------
// Input items

const PartsSchema = z.array(z.looseObject({ type: z.string() }));
const MessageItemSchema = z.looseObject({
  type: z.literal('message').optional(),
  role: z.enum(['user', 'assistant', 'system', 'developer']),
  content: z.union([z.string(), PartsSchema]),
  id: z.string().optional(),
});
const FunctionCallItemSchema = z.looseObject({
  type: z.literal('function_call'),
  call_id: z.string().min(1),
  name: z.string().min(1),
  arguments: z.string(),
  id: z.string().optional(),
});
const FunctionCallOutputItemSchema = z.looseObject({
  type: z.literal('function_call_output'),
  call_id: z.string().min(1),
  output: z.union([z.string(), PartsSchema]),
  id: Nullable(z.string()),
});
const ItemReferenceSchema = z.looseObject({ type: Nullable(z.literal('item_reference')), id: z.string().min(1) });
const TextPartSchema = z.looseObject({ text: z.string() });
const RefusalPartSchema = z.looseObject({ refusal: z.string() });
const ImagePartSchema = z.looseObject({ image_url: Nullable(z.string().min(1)), file_id: Nullable(z.string()), detail: Nullable(z.string()) });

type Parts = z.infer<typeof PartsSchema>;

/** Looks up an item_reference id (the store's item index). */
export type ItemResolver = (id: string) => StoredItem | undefined;

/** An unknown item_reference, as OpenAI answers it: 404 invalid_request_error. */
export function itemNotFound(id: string, param: string): ApiError {
  return new ApiError(404, 'invalid_request_error', 'item_not_found', `Item with id${idForMessage(id)} not found.`, param);
}

/** An id safe to repeat in a message (ids are not prompt text, but a client can put anything there). */
export function idForMessage(id: string): string {
  return /^[\w-]{1,128}$/.test(id) ? ` '${id}'` : '';
}

function userParts(parts: Parts, param: string): ContentPart[] {
  return parts.map((part, j): ContentPart => {
    const at = `${param}.${j}`;
    switch (part.type) {
      case 'input_text':
        return { type: 'text', text: check(TextPartSchema, part, at).text };
      case 'input_image': {
        const img = check(ImagePartSchema, part, at);
        if (img.image_url == null) {
          if (img.file_id != null) throw unsupported('Images by file_id are not supported: paygo has no file storage; send image_url (a URL or a data URL).', `${at}.file_id`);
          throw invalidRequest('Invalid request: input_image needs an image_url.', `${at}.image_url`);
        }
        const detail = img.detail === 'auto' || img.detail === 'low' || img.detail === 'high' ? img.detail : undefined;
        return { type: 'image_url', image_url: { url: img.image_url, ...(detail && { detail }) } };
      }
      case 'input_file':
        throw unsupported('input_file is not supported: paygo has no file storage and not every provider reads files.', `${at}.type`);
      default:
        throw unsupported(`The content type${quoted(part.type)} is not supported here.`, `${at}.type`);
    }
  });
}

/** Text-only content (system, developer): the parts as chat text parts. */
function textParts(parts: Parts, param: string): ContentPart[] {
  return parts.map((part, j): ContentPart => {
    if (part.type !== 'input_text') throw unsupported(`The content type${quoted(part.type)} is not supported here.`, `${param}.${j}.type`);
    return { type: 'text', text: check(TextPartSchema, part, `${param}.${j}`).text };
  });
}

/** Assistant content: the text of its output_text parts (and refusals), one string as chat assistants carry it. */
function assistantText(parts: Parts, param: string): string {
  let text = '';
  parts.forEach((part, j) => {
    const at = `${param}.${j}`;
    if (part.type === 'output_text' || part.type === 'input_text') text += check(TextPartSchema, part, at).text;
    else if (part.type === 'refusal') text += check(RefusalPartSchema, part, at).refusal;
    else throw unsupported(`The content type${quoted(part.type)} is not supported here.`, `${at}.type`);
  });
  return text;
}

/** A function_call_output's output as a tool message's text. */
function toolOutputText(output: string | Parts, param: string): string {
  if (typeof output === 'string') return output;
  let text = '';
  output.forEach((part, j) => {
    if (part.type !== 'input_text') throw unsupported(`The tool output type${quoted(part.type)} is not supported: chat tool results carry text only.`, `${param}.${j}.type`);
    text += check(TextPartSchema, part, `${param}.${j}`).text;
  });
  return text;
}

/**
 * Appends a tool call: to the assistant message just translated from this input (a message
 * item followed by its function calls is one chat turn), else as a new assistant message.
 */
function appendToolCall(out: Message[], call: ToolCall): void {
  const last = out[out.length - 1];
  if (last?.role === 'assistant') {
    out[out.length - 1] = { ...last, tool_calls: [...(last.tool_calls ?? []), call] };
    return;
  }
  out.push({ role: 'assistant', content: null, tool_calls: [call] });
}

/** The kind of an input item, from its type, or its role (a message) or its id alone (a reference). */
function kindOf(raw: unknown, param: string): string {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw invalidRequest('Invalid request: each input item must be an object.', param);
  const r = raw as Record<string, unknown>;
  if (typeof r.type === 'string') return r.type;
  if (r.type != null) throw invalidRequest('Invalid request: an input item type must be a string.', `${param}.type`);
  if (r.role !== undefined) return 'message';
  if (r.id !== undefined) return 'item_reference';
  throw invalidRequest('Invalid request: each input item needs a type (or a role, for a message).', `${param}.type`);
}

/**
 * Translates one input item onto `out`. Returns the item when it should be indexed for later
 * item_references (it has an id and is not itself a reference).
 */
function translateItem(raw: unknown, param: string, out: Message[], resolve: ItemResolver): InputItem | undefined {
  const kind = kindOf(raw, param);
  switch (kind) {
    case 'message': {
      const m = check(MessageItemSchema, raw, param);
      const content = m.content;
      const at = `${param}.content`;
      if (m.role === 'assistant') out.push({ role: 'assistant', content: typeof content === 'string' ? content : assistantText(content, at) });
      else if (m.role === 'user') out.push({ role: 'user', content: typeof content === 'string' ? content : userParts(content, at) });
      else out.push({ role: m.role, content: typeof content === 'string' ? content : textParts(content, at) });
      return m.id !== undefined ? { ...m, type: 'message' } : undefined;
    }
    case 'function_call': {
      const c = check(FunctionCallItemSchema, raw, param);
      appendToolCall(out, { id: c.call_id, type: 'function', function: { name: c.name, arguments: c.arguments } });
      return c.id !== undefined ? c : undefined;
    }
    case 'function_call_output': {
      const o = check(FunctionCallOutputItemSchema, raw, param);
      out.push({ role: 'tool', tool_call_id: o.call_id, content: toolOutputText(o.output, `${param}.output`) });
      return typeof o.id === 'string' ? { ...o, id: o.id } : undefined;
    }
    case 'item_reference': {
      const { id } = check(ItemReferenceSchema, raw, param);
      const item = resolve(id);
      if (item === undefined) throw itemNotFound(id, `${param}.id`);
      // Stored items were checked when they were stored; references never name references.
      translateItem(item, param, out, () => undefined);
      return undefined;
    }
    case 'reasoning':
      return undefined;
    default:
      throw unsupported(`The input item type${quoted(kind)} is not supported: paygo serves messages and function calls only.`, `${param}.type`);
  }
}

/**
 * The request's input as chat messages, and the items to index for item_reference. A string
 * input is one user message.
 */
export function translateInput(input: ResponsesRequest['input'], resolve: ItemResolver): { messages: Message[]; items: InputItem[] } {
  if (input === undefined) return { messages: [], items: [] };
  if (typeof input === 'string') return { messages: [{ role: 'user', content: input }], items: [] };
  const messages: Message[] = [];
  const items: InputItem[] = [];
  input.forEach((raw, i) => {
    const indexed = translateItem(raw, `input.${i}`, messages, resolve);
    if (indexed) items.push(indexed);
  });
  return { messages, items };
}
