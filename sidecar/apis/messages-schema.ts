import { z } from 'zod';
import { invalidRequest, type ApiError } from '../errors.js';
import { bool, count, list, oneOf, orNull, plainRequestCheck, record, text, within } from '../plain-check.js';

/**
 * Anthropic's Messages API request (POST /v1/messages, /v1/messages/count_tokens) as paygo's
 * front door accepts it: the fields of the API reference (platform.claude.com/docs/en/api/messages)
 * and of the official SDK's MessageCreateParams (anthropic-sdk-typescript
 * src/resources/messages/messages.ts). Objects are loose: fields paygo does not translate
 * (cache_control, citations, service_tier, container, …) are tolerated and dropped. What paygo
 * cannot honour without changing the answer (server tools, documents, Files API images) is a
 * 400 naming the field, e.g. `messages.1.content.0.type`.
 */

/** A client's tag value quoted in an error only when it is an identifier (never free text). */
function quoted(v: unknown): string | undefined {
  return typeof v === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(v) ? `"${v}"` : undefined;
}

/** The message of a discriminated union whose tag matched none of its options. */
function unsupportedTag(what: string, key: string, expected: string) {
  return (issue: { code?: string; input?: unknown }): string | undefined => {
    if (issue.code !== 'invalid_union') return undefined;
    const input = issue.input;
    const tag = input !== null && typeof input === 'object' ? (input as Record<string, unknown>)[key] : undefined;
    const name = quoted(tag);
    return tag === undefined ? `${what} is missing; expected ${expected}.` : `${what} ${name ?? ''}${name ? ' ' : ''}is not supported; expected ${expected}.`;
  };
}

const TextBlock = z.looseObject({ type: z.literal('text'), text: z.string() });

/** Anthropic's base64 media types (Base64ImageSource.media_type); Files API sources need Anthropic's storage. */
const ImageSource = z.discriminatedUnion(
  'type',
  [
    z.looseObject({ type: z.literal('base64'), media_type: z.enum(['image/jpeg', 'image/png', 'image/gif', 'image/webp']), data: z.string().min(1) }),
    z.looseObject({ type: z.literal('url'), url: z.string().min(1) }),
  ],
  { error: unsupportedTag('Image source type', 'type', 'base64 or url (paygo cannot read Anthropic Files API uploads)') },
);
const ImageBlock = z.looseObject({ type: z.literal('image'), source: ImageSource });

const ToolResultBlock = z.looseObject({
  type: z.literal('tool_result'),
  tool_use_id: z.string().min(1),
  content: z
    .union([
      z.string(),
      z.array(z.discriminatedUnion('type', [TextBlock, ImageBlock], { error: unsupportedTag('tool_result content block type', 'type', 'text or image') })),
    ])
    .optional(),
  is_error: z.boolean().nullable().optional(),
});

const ToolUseBlock = z.looseObject({
  type: z.literal('tool_use'),
  id: z.string().min(1),
  name: z.string().min(1),
  input: z.record(z.string(), z.unknown()),
});

// Earlier answers' reasoning: validated by tag only, since it is dropped (see messages.ts).
const ThinkingBlock = z.looseObject({ type: z.literal('thinking') });
const RedactedThinkingBlock = z.looseObject({ type: z.literal('redacted_thinking') });

const UserBlock = z.discriminatedUnion('type', [TextBlock, ImageBlock, ToolResultBlock], {
  error: unsupportedTag('Content block type', 'type', 'text, image or tool_result in a user message'),
});
const AssistantBlock = z.discriminatedUnion('type', [TextBlock, ToolUseBlock, ThinkingBlock, RedactedThinkingBlock], {
  error: unsupportedTag('Content block type', 'type', 'text, tool_use, thinking or redacted_thinking in an assistant message'),
});

const SystemContent = z.union([z.string(), z.array(TextBlock)]);

const MessageParam = z.discriminatedUnion(
  'role',
  [
    z.looseObject({ role: z.literal('user'), content: z.union([z.string(), z.array(UserBlock)]) }),
    z.looseObject({ role: z.literal('assistant'), content: z.union([z.string(), z.array(AssistantBlock)]) }),
    // The SDK's MessageParam also has a system role (SystemMessageParam): text only.
    z.looseObject({ role: z.literal('system'), content: SystemContent }),
  ],
  { error: unsupportedTag('Message role', 'role', 'user or assistant') },
);

/**
 * A client tool (type absent, null or "custom"). Server tools (web_search_*, bash_*,
 * text_editor_*, computer_*, code_execution_*, …) run on Anthropic's side: no other provider
 * can run them, so they are refused rather than dropped. `type` is first, so its issue is the
 * one reported for a server tool.
 */
const Tool = z.looseObject({
  type: z
    .literal('custom', {
      error: (issue) => {
        const name = quoted(issue.input);
        return `Tool type ${name ?? ''}${name ? ' ' : ''}is not supported: paygo serves custom tools (name, description, input_schema) only; Anthropic's server tools run on Anthropic's side.`;
      },
    })
    .nullable()
    .optional(),
  name: z.string().min(1),
  description: z.string().optional(),
  input_schema: z.looseObject({ type: z.literal('object') }),
  strict: z.boolean().nullable().optional(),
});

const parallelFlag = { disable_parallel_tool_use: z.boolean().nullable().optional() };
const ToolChoice = z.discriminatedUnion(
  'type',
  [
    z.looseObject({ type: z.literal('auto'), ...parallelFlag }),
    z.looseObject({ type: z.literal('any'), ...parallelFlag }),
    z.looseObject({ type: z.literal('tool'), name: z.string().min(1), ...parallelFlag }),
    z.looseObject({ type: z.literal('none') }),
  ],
  { error: unsupportedTag('tool_choice type', 'type', 'auto, any, tool or none') },
);

/** budget_tokens: "Must be ≥1024 and less than max_tokens" (ThinkingConfigEnabled). */
const Thinking = z.discriminatedUnion(
  'type',
  [
    z.looseObject({ type: z.literal('enabled'), budget_tokens: z.number().int().min(1024) }),
    z.looseObject({ type: z.literal('disabled') }),
    z.looseObject({ type: z.literal('adaptive') }),
    z.looseObject({ type: z.literal('between_tools') }),
  ],
  { error: unsupportedTag('thinking type', 'type', 'enabled, disabled or adaptive') },
);

const OutputConfig = z.looseObject({
  effort: z.enum(['low', 'medium', 'high', 'xhigh', 'max']).nullable().optional(),
  format: z.looseObject({ type: z.literal('json_schema'), schema: z.record(z.string(), z.unknown()) }).nullable().optional(),
});

const requestShape = {
  model: z.string().min(1),
  // Anthropic requires it (and allows 0 to pre-warm a cache, which paygo cannot do: ≥ 1).
  max_tokens: z.number().int().min(1),
  messages: z.array(MessageParam).min(1),
  system: SystemContent.nullable().optional(),
  stop_sequences: z.array(z.string()).nullable().optional(),
  temperature: z.number().min(0).max(1).nullable().optional(),
  top_p: z.number().min(0).max(1).nullable().optional(),
  top_k: z.number().int().min(0).nullable().optional(),
  tools: z.array(Tool).nullable().optional(),
  tool_choice: ToolChoice.nullable().optional(),
  metadata: z.looseObject({ user_id: z.string().nullable().optional() }).nullable().optional(),
  stream: z.boolean().nullable().optional(),
  thinking: Thinking.nullable().optional(),
  output_config: OutputConfig.nullable().optional(),
  // Remote MCP servers are called by Anthropic's API itself: refused like server tools.
  mcp_servers: z.array(z.unknown()).max(0, { error: 'MCP servers are called by Anthropic itself and are not supported by paygo.' }).nullable().optional(),
};

export const MessagesRequestSchema = z.looseObject(requestShape);
export type MessagesRequest = z.infer<typeof MessagesRequestSchema>;

const PLAIN_MESSAGE = record({ role: oneOf('user', 'assistant', 'system'), content: text() }, ['role', 'content']);

/**
 * Whether a parsed body is a Messages request of the plain shape — text messages, a text system
 * prompt, scalar options, any unknown fields — checked by hand as MessagesRequestSchema would
 * check it (plain-check.ts); content blocks, tools, thinking, metadata and the rest go to zod.
 */
export const isPlainMessagesRequest = plainRequestCheck<MessagesRequest>(
  Object.keys(requestShape),
  {
    model: text(1),
    max_tokens: count(1),
    messages: list(PLAIN_MESSAGE, 1),
    system: orNull(text()),
    stop_sequences: orNull(list(text())),
    temperature: orNull(within(0, 1)),
    top_p: orNull(within(0, 1)),
    top_k: orNull(count(0)),
    stream: orNull(bool),
  },
  ['model', 'max_tokens', 'messages'],
);

/** count_tokens takes the same body without max_tokens (a max_tokens sent anyway is tolerated). */
const { max_tokens: _maxTokens, stream: _stream, ...countShape } = requestShape;
export const CountTokensRequestSchema = z.looseObject(countShape);
export type CountTokensRequest = z.infer<typeof CountTokensRequestSchema>;

export type UserBlockParam = z.infer<typeof UserBlock>;
export type AssistantBlockParam = z.infer<typeof AssistantBlock>;
export type ImageBlockParam = z.infer<typeof ImageBlock>;
export type TextBlockParam = z.infer<typeof TextBlock>;
export type ToolResultBlockParam = z.infer<typeof ToolResultBlock>;

// ---------------------------------------------------------------------------------------------
// Issues → one 400 naming the field

interface Located {
  path: PropertyKey[];
  message: string;
}

/**
 * The issue to report. A union (content: string or blocks) that fails reports the option that
 * got furthest: `messages.1.content.0.text`, not `messages.1.content`.
 */
function locate(issue: z.core.$ZodIssue, base: PropertyKey[]): Located {
  const path = [...base, ...issue.path];
  if (issue.code !== 'invalid_union' || issue.errors.length === 0) return { path, message: issue.message };
  let best: Located | undefined;
  for (const option of issue.errors) {
    const first = option[0];
    if (!first) continue;
    const found = locate(first, path);
    if (!best || found.path.length > best.path.length) best = found;
  }
  if (best && best.path.length > path.length) return best;
  // Every option failed on the value itself: name the types it may have.
  const expected = issue.errors.flatMap((option) => (option[0]?.code === 'invalid_type' ? [option[0].expected] : []));
  return { path, message: expected.length > 0 ? `Invalid input: expected ${expected.join(' or ')}` : issue.message };
}

/** The first issue as paygo's 400: param `messages.1.content.0.type`, message `<param>: <what is wrong>`. */
export function requestError(error: z.ZodError): ApiError {
  const first = error.issues[0];
  if (!first) return invalidRequest('Invalid request.');
  const { path, message } = locate(first, []);
  const param = path.map(String).join('.');
  return param ? invalidRequest(`${param}: ${message}`, param) : invalidRequest(message);
}

export function parseWith<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalidRequest('The request body must be a JSON object.');
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw requestError(parsed.error);
  return parsed.data;
}
