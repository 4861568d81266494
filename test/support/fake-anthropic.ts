import { createHash } from 'node:crypto';
import { sseFrame, type Fault, type RecordedRequest, type Reply, type Responder } from './fake-upstream.js';

/**
 * A fake Anthropic Messages API (POST /v1/messages) for the fake upstream server, answering with
 * Anthropic's own JSON and SSE framing (`event: <type>\ndata: <json>\n\n`: message_start,
 * content_block_start, ping, content_block_delta..., content_block_stop, message_delta,
 * message_stop). Everything is deterministic: the reply echoes the last user text, one word per
 * delta; input_tokens is the prompt's word count (plus one per non-text block) and output_tokens
 * is the number of content_block_delta events. A request whose tool_choice forces a tool ("any"
 * or "tool") gets a tool_use reply instead; with anthropicResponderWith({ autoToolUse }), so does
 * one that offers tools while the user has the last word (not tool results), as a model uses its
 * tools unasked.
 */

interface Block {
  type?: string;
  text?: string;
  content?: unknown;
}

interface MessagesRequest {
  model?: unknown;
  max_tokens?: unknown;
  messages?: Array<{ role?: string; content?: string | Block[] }>;
  system?: string | Block[];
  stop_sequences?: string[];
  temperature?: number;
  tools?: Array<{ name: string }>;
  tool_choice?: { type?: string; name?: string };
  stream?: boolean;
}

/** Anthropic's error body: {"type":"error","error":{"type","message"}}. */
export function anthropicError(type: string, message: string): string {
  return JSON.stringify(errorObject(type, message));
}

/** The body of the 529 Anthropic answers when it is overloaded (also sent as a stream `error` event). */
export const anthropicOverloaded = anthropicError('overloaded_error', 'Overloaded');

function errorObject(type: string, message: string) {
  return { type: 'error', error: { type, message } };
}

function errorReply(status: number, type: string, message: string): Reply {
  return { kind: 'json', status, body: errorObject(type, message) };
}

const words = (s: string) => s.split(/\s+/).filter(Boolean).length;

function blocksOf(content: string | Block[] | undefined): Block[] {
  if (content === undefined) return [];
  return typeof content === 'string' ? [{ type: 'text', text: content }] : content;
}

/** Prompt size: words of every text block (system included), plus one per other block. */
function promptTokens(body: MessagesRequest): number {
  const blocks = [...blocksOf(body.system), ...(body.messages ?? []).flatMap((m) => blocksOf(m.content))];
  const n = blocks.reduce((sum, b) => sum + (b.type === 'text' && typeof b.text === 'string' ? words(b.text) : 1), 0);
  return Math.max(1, n);
}

function lastUserText(body: MessagesRequest): string {
  const user = [...(body.messages ?? [])].reverse().find((m) => m.role === 'user');
  return blocksOf(user?.content)
    .flatMap((b) => (b.type === 'text' && typeof b.text === 'string' ? [b.text] : []))
    .join(' ')
    .trim();
}

function hash(req: RecordedRequest): string {
  return createHash('sha256').update(req.url + req.rawBody).digest('hex');
}

interface Plan {
  id: string;
  model: string;
  prompt: number;
  block: { type: 'text'; text: string } | { type: 'tool_use'; id: string; name: string; input: Record<string, unknown> };
  /** The streamed deltas: text pieces, or partial JSON of the tool input. */
  deltas: string[];
  stopReason: 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use';
  stopSequence: string | null;
  /** Reported as cache_read_input_tokens / cache_creation_input_tokens (input_tokens excludes them, as on Anthropic). */
  cacheRead: number;
  cacheWrite: number;
}

/** tool_choice "any" or "tool" makes the model call a tool: the named one, or the first declared. */
function forcedTool(body: MessagesRequest): string | undefined {
  const choice = body.tool_choice;
  if (choice?.type === 'tool') return choice.name;
  if (choice?.type === 'any') return body.tools?.[0]?.name;
  return undefined;
}

/**
 * A model that uses its tools unasked: tools offered, tool_choice not "none", and the last user
 * turn is not tool results → a call of the first tool.
 */
function autoTool(body: MessagesRequest): string | undefined {
  if (!body.tools?.length || body.tool_choice?.type === 'none') return undefined;
  const last = body.messages?.at(-1);
  if (last?.role !== 'user' || blocksOf(last.content).some((b) => b.type === 'tool_result')) return undefined;
  return body.tools[0]!.name;
}

/** The echo, cut before the first stop sequence, then at max_tokens pieces. */
function textPlan(body: MessagesRequest, maxTokens: number): Pick<Plan, 'deltas' | 'stopReason' | 'stopSequence'> {
  const said = lastUserText(body);
  let text = said ? `Claude echo: ${said}` : 'Claude received the tool results.';
  let stopReason: Plan['stopReason'] = 'end_turn';
  let stopSequence: string | null = null;
  const hit = (body.stop_sequences ?? [])
    .map((s) => ({ s, at: text.indexOf(s) }))
    .filter((x) => x.at >= 0)
    .sort((a, b) => a.at - b.at)[0];
  if (hit) {
    text = text.slice(0, hit.at);
    stopReason = 'stop_sequence';
    stopSequence = hit.s;
  }
  let deltas = text.split(/(?=\s)/).filter(Boolean);
  if (deltas.length > maxTokens) {
    deltas = deltas.slice(0, maxTokens);
    stopReason = 'max_tokens';
    stopSequence = null;
  }
  return { deltas, stopReason, stopSequence };
}

function plan(req: RecordedRequest, body: MessagesRequest, maxTokens: number, opts: AnthropicResponderOptions = {}): Plan {
  const h = hash(req);
  const base = { id: `msg_01${h.slice(0, 22)}`, model: String(body.model), prompt: promptTokens(body), cacheRead: opts.cacheReadTokens ?? 0, cacheWrite: opts.cacheWriteTokens ?? 0 };
  const tool = forcedTool(body) ?? (opts.autoToolUse ? autoTool(body) : undefined);
  if (tool) {
    const input = { prompt: lastUserText(body) };
    const json = JSON.stringify(input);
    const half = Math.ceil(json.length / 2);
    // Like Anthropic: an empty first partial_json, then the JSON in pieces.
    const deltas = ['', json.slice(0, half), json.slice(half)];
    return { ...base, block: { type: 'tool_use', id: `toolu_01${h.slice(22, 44)}`, name: tool, input }, deltas, stopReason: 'tool_use', stopSequence: null };
  }
  const text = textPlan(body, maxTokens);
  return { ...base, block: { type: 'text', text: text.deltas.join('') }, ...text };
}

function usage(p: Plan, output: number) {
  return { input_tokens: p.prompt, cache_creation_input_tokens: p.cacheWrite, cache_read_input_tokens: p.cacheRead, output_tokens: output };
}

function jsonReply(p: Plan): Reply {
  return {
    kind: 'json',
    body: { id: p.id, type: 'message', role: 'assistant', model: p.model, content: [p.block], stop_reason: p.stopReason, stop_sequence: p.stopSequence, usage: usage(p, p.deltas.length) },
  };
}

function sseReply(p: Plan): Reply {
  const start = { id: p.id, type: 'message', role: 'assistant', model: p.model, content: [], stop_reason: null, stop_sequence: null, usage: usage(p, 1) };
  const block = p.block.type === 'text' ? { type: 'text', text: '' } : { ...p.block, input: {} };
  const delta = (piece: string) => (p.block.type === 'text' ? { type: 'text_delta', text: piece } : { type: 'input_json_delta', partial_json: piece });
  const frames = [
    sseFrame({ type: 'message_start', message: start }, 'message_start'),
    sseFrame({ type: 'content_block_start', index: 0, content_block: block }, 'content_block_start'),
    sseFrame({ type: 'ping' }, 'ping'),
    ...p.deltas.map((piece) => sseFrame({ type: 'content_block_delta', index: 0, delta: delta(piece) }, 'content_block_delta')),
    sseFrame({ type: 'content_block_stop', index: 0 }, 'content_block_stop'),
    // message_delta usage is cumulative and, on today's API, repeats the input fields too.
    sseFrame({ type: 'message_delta', delta: { stop_reason: p.stopReason, stop_sequence: p.stopSequence }, usage: usage(p, p.deltas.length) }, 'message_delta'),
    sseFrame({ type: 'message_stop' }, 'message_stop'),
  ];
  return { kind: 'sse', frames };
}

/** The checks Anthropic makes that an adapter bug would trip, with Anthropic's messages. */
function invalid(req: RecordedRequest, body: MessagesRequest | undefined): Reply | undefined {
  if (!req.headers['x-api-key']) return errorReply(401, 'authentication_error', 'x-api-key header is required');
  if (!req.headers['anthropic-version']) return errorReply(400, 'invalid_request_error', 'anthropic-version: header is required');
  if (!body || typeof body !== 'object') return errorReply(400, 'invalid_request_error', 'Request body must be a JSON object');
  if (typeof body.model !== 'string') return errorReply(400, 'invalid_request_error', 'model: Field required');
  if (typeof body.max_tokens !== 'number') return errorReply(400, 'invalid_request_error', 'max_tokens: Field required');
  if (!Array.isArray(body.messages) || body.messages.length === 0) return errorReply(400, 'invalid_request_error', 'messages: Field required');
  if (typeof body.temperature === 'number' && body.temperature > 1) {
    return errorReply(400, 'invalid_request_error', 'temperature: Input should be less than or equal to 1');
  }
  return undefined;
}

/**
 * Where an Anthropic rate limit stands, for its headers (docs.anthropic.com, "Rate limits",
 * response headers): per resource the limit, what is left, and when it is whole again.
 */
export type AnthropicRateLimit = Partial<Record<'requests' | 'tokens' | 'input-tokens' | 'output-tokens', { limit: number; remaining: number; reset: Date }>>;

/** Anthropic's anthropic-ratelimit-* headers (resets in RFC 3339), on every answer. */
export function anthropicRateLimitHeaders(r: AnthropicRateLimit): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [resource, v] of Object.entries(r)) {
    out[`anthropic-ratelimit-${resource}-limit`] = String(v.limit);
    out[`anthropic-ratelimit-${resource}-remaining`] = String(v.remaining);
    out[`anthropic-ratelimit-${resource}-reset`] = v.reset.toISOString().replace(/\.\d{3}Z$/, 'Z');
  }
  return out;
}

/** Anthropic's 429 rate_limit_error: its body, `retry-after` (whole seconds) and the exhausted limit's headers. */
export function anthropicRateLimited(resource: 'requests' | 'tokens' | 'input-tokens' | 'output-tokens', limit: number, retryAfterS: number, now = Date.now()): Fault {
  const headers = { 'retry-after': String(retryAfterS), ...anthropicRateLimitHeaders({ [resource]: { limit, remaining: 0, reset: new Date(now + retryAfterS * 1000) } }) };
  return { kind: 'status', status: 429, body: anthropicError('rate_limit_error', `This request would exceed your organization's rate limit of ${limit} ${resource.replace('-', ' ')} per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.`), headers };
}

export interface AnthropicResponderOptions {
  /** Use the first tool unasked (see autoTool); without it only a forced tool_choice calls one. */
  autoToolUse?: boolean;
  /** Prompt tokens reported as read from / written to the prompt cache, besides input_tokens. */
  cacheReadTokens?: number;
  cacheWriteTokens?: number;
  /** Rate-limit headers on every answer (anthropicRateLimitHeaders). */
  rateLimit?: () => AnthropicRateLimit;
}

/** The fake with options; `anthropicResponder` is it with none. */
export function anthropicResponderWith(opts: AnthropicResponderOptions): Responder {
  return (req) => {
    if (req.method !== 'POST' || req.url.split('?')[0] !== '/v1/messages') return errorReply(404, 'not_found_error', 'Not Found');
    const body = req.body as MessagesRequest | undefined;
    const bad = invalid(req, body);
    if (bad || !body) return bad ?? errorReply(400, 'invalid_request_error', 'Request body must be a JSON object');
    const p = plan(req, body, body.max_tokens as number, opts);
    const reply = body.stream === true ? sseReply(p) : jsonReply(p);
    return { ...reply, headers: { 'request-id': `req_01${hash(req).slice(44, 66)}`, ...(opts.rateLimit ? anthropicRateLimitHeaders(opts.rateLimit()) : {}) } };
  };
}

export const anthropicResponder: Responder = anthropicResponderWith({});
