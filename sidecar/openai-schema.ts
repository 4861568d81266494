import { z } from 'zod';

/**
 * The OpenAI Chat Completions request as the sidecar accepts it. Known fields are checked for
 * type so a bad request gets a 400 naming the field; unknown fields pass through to
 * OpenAI-compatible providers untouched.
 */
const TextPartSchema = z.object({ type: z.literal('text'), text: z.string() });
const ImagePartSchema = z.object({
  type: z.literal('image_url'),
  image_url: z.object({ url: z.string().min(1), detail: z.enum(['auto', 'low', 'high']).optional() }),
});
export const ContentPartSchema = z.union([TextPartSchema, ImagePartSchema, z.looseObject({ type: z.string() })]);
export type ContentPart = z.infer<typeof ContentPartSchema>;

export const ToolCallSchema = z.object({
  id: z.string(),
  type: z.literal('function'),
  function: z.object({ name: z.string(), arguments: z.string() }),
});
export type ToolCall = z.infer<typeof ToolCallSchema>;

const content = z.union([z.string(), z.array(ContentPartSchema)]);

export const MessageSchema = z.discriminatedUnion('role', [
  z.looseObject({ role: z.literal('system'), content, name: z.string().optional() }),
  z.looseObject({ role: z.literal('developer'), content, name: z.string().optional() }),
  z.looseObject({ role: z.literal('user'), content, name: z.string().optional() }),
  z.looseObject({
    role: z.literal('assistant'),
    content: content.nullable().optional(),
    tool_calls: z.array(ToolCallSchema).optional(),
    name: z.string().optional(),
  }),
  z.looseObject({ role: z.literal('tool'), content, tool_call_id: z.string() }),
]);
export type Message = z.infer<typeof MessageSchema>;

export const ToolSchema = z.object({
  type: z.literal('function'),
  function: z.object({
    name: z.string().min(1).max(64),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullable().optional(),
  }),
});
export type Tool = z.infer<typeof ToolSchema>;

export const ToolChoiceSchema = z.union([
  z.enum(['none', 'auto', 'required']),
  z.object({ type: z.literal('function'), function: z.object({ name: z.string() }) }),
]);
export type ToolChoice = z.infer<typeof ToolChoiceSchema>;

export const ChatRequestSchema = z.looseObject({
  model: z.string().min(1),
  messages: z.array(MessageSchema).min(1),
  stream: z.boolean().nullable().optional(),
  stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullable().optional(),
  max_tokens: z.number().int().min(1).nullable().optional(),
  max_completion_tokens: z.number().int().min(1).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().min(0).max(1).nullable().optional(),
  n: z.number().int().min(1).max(128).nullable().optional(),
  stop: z.union([z.string(), z.array(z.string()).max(16)]).nullable().optional(),
  tools: z.array(ToolSchema).optional(),
  tool_choice: ToolChoiceSchema.optional(),
  parallel_tool_calls: z.boolean().optional(),
  user: z.string().optional(),
  seed: z.number().int().nullable().optional(),
  presence_penalty: z.number().min(-2).max(2).nullable().optional(),
  frequency_penalty: z.number().min(-2).max(2).nullable().optional(),
  response_format: z.looseObject({ type: z.string() }).optional(),
});
export type ChatRequest = z.infer<typeof ChatRequestSchema>;

/** ChatRequestSchema's own fields: a plain request may carry any other field (it passes through). */
const CHAT_FIELDS: ReadonlySet<string> = new Set(Object.keys(ChatRequestSchema.shape));
const PLAIN_ROLES: ReadonlySet<unknown> = new Set(['system', 'developer', 'user', 'assistant']);
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isCount = (v: unknown, min: number, max = Number.MAX_SAFE_INTEGER) => Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max;
const isIn = (v: unknown, min: number, max: number) => typeof v === 'number' && v >= min && v <= max;

/** One field of a plain request, checked as ChatRequestSchema checks it; false: a field this check leaves to zod. */
function plainField(key: string, v: unknown): boolean {
  switch (key) {
    case 'model':
      return typeof v === 'string' && v.length > 0;
    case 'messages':
      return Array.isArray(v) && v.length > 0 && v.every(isPlainMessage);
    case 'stream':
      return v === null || typeof v === 'boolean';
    case 'max_tokens':
    case 'max_completion_tokens':
      return v === null || isCount(v, 1);
    case 'temperature':
      return v === null || isIn(v, 0, 2);
    case 'top_p':
      return v === null || isIn(v, 0, 1);
    case 'n':
      return v === null || isCount(v, 1, 128);
    case 'seed':
      return v === null || isCount(v, Number.MIN_SAFE_INTEGER);
    case 'presence_penalty':
    case 'frequency_penalty':
      return v === null || isIn(v, -2, 2);
    case 'stop':
      return v === null || typeof v === 'string' || (Array.isArray(v) && v.length <= 16 && v.every((x) => typeof x === 'string'));
    case 'parallel_tool_calls':
      return typeof v === 'boolean';
    case 'user':
      return typeof v === 'string';
    default:
      // Tools, tool_choice, stream_options, response_format: zod's.
      return false;
  }
}

/** A system, developer, user or assistant message with text content and nothing else. */
function isPlainMessage(m: unknown): boolean {
  if (!isObject(m) || !PLAIN_ROLES.has(m.role) || typeof m.content !== 'string') return false;
  for (const key in m) {
    if (key !== 'role' && key !== 'content' && !(key === 'name' && typeof m.name === 'string')) return false;
  }
  return true;
}

/**
 * Whether a parsed body is a chat request of the common plain shape (text messages, scalar
 * options, any unknown fields), checked by hand exactly as ChatRequestSchema would accept it:
 * such a body is the request as it is. zod's check costs ≈ 50 µs of a stream's first byte once
 * the sidecar has idled and its code went cold, this one under 1 µs (test/bench/README.md).
 * Anything else (tools, content parts, tool messages, a value out of range) is left to zod,
 * which also words the errors. test/sidecar/openai-schema.test.ts holds it to zod's verdict.
 */
export function isPlainChatRequest(body: unknown): body is ChatRequest {
  if (!isObject(body) || typeof body.model !== 'string' || !Array.isArray(body.messages)) return false;
  for (const key in body) {
    if (key === '__proto__') return false;
    if (CHAT_FIELDS.has(key) && !plainField(key, body[key])) return false;
  }
  return true;
}

export const EmbeddingsRequestSchema = z.looseObject({
  model: z.string().min(1),
  input: z.union([z.string(), z.array(z.string()), z.array(z.number().int()), z.array(z.array(z.number().int()))]),
  encoding_format: z.enum(['float', 'base64']).optional(),
  dimensions: z.number().int().min(1).optional(),
  user: z.string().optional(),
});
export type EmbeddingsRequest = z.infer<typeof EmbeddingsRequestSchema>;

/** OpenAI response objects (what clients receive). */
export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens?: number };
  completion_tokens_details?: { reasoning_tokens?: number };
}

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | 'function_call';

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: Array<{
    index: number;
    message: { role: 'assistant'; content: string | null; tool_calls?: ToolCall[]; refusal?: string | null };
    finish_reason: FinishReason | null;
    logprobs?: unknown;
  }>;
  usage?: CompletionUsage;
  system_fingerprint?: string | null;
}

export interface ChunkToolCall {
  index: number;
  id?: string;
  type?: 'function';
  function?: { name?: string; arguments?: string };
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: Array<{
    index: number;
    delta: { role?: 'assistant'; content?: string | null; tool_calls?: ChunkToolCall[]; refusal?: string | null };
    finish_reason: FinishReason | null;
    logprobs?: unknown;
  }>;
  usage?: CompletionUsage | null;
  system_fingerprint?: string | null;
}

/** The text of a message's content (text parts joined), for token estimates. */
export function contentText(c: string | ContentPart[] | null | undefined): string {
  if (c == null) return '';
  if (typeof c === 'string') return c;
  return c.map((p) => (p.type === 'text' && typeof (p as { text?: unknown }).text === 'string' ? (p as { text: string }).text : '')).join('');
}
