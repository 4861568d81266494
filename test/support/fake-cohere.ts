import { createHash } from 'node:crypto';
import type { RecordedRequest, Reply, Responder } from './fake-upstream.js';

/**
 * A fake Cohere Chat API v2 (POST /v2/chat) for the fake upstream server, answering with Cohere's
 * own JSON and SSE framing (docs.cohere.com/reference/chat, /reference/chat-stream,
 * /v2/docs/streaming): one `event: <type>` + `data: <json>` frame per event — message-start,
 * content-start, content-delta..., content-end, message-end — and, when the request forces a tool
 * (tool_choice REQUIRED), message-start, tool-plan-delta, tool-call-start, tool-call-delta...,
 * tool-call-end, message-end. Errors are Cohere's {"message": "..."} bodies
 * (docs.cohere.com/reference/errors). Deterministic: the reply echoes the last user text, one
 * word per content-delta; usage.billed_units.input_tokens is the prompt's word count,
 * output_tokens the number of deltas, and usage.tokens adds the 200 tokens of Cohere's own
 * preamble to the input (billed units are what Cohere charges).
 */

interface V2Message {
  role?: string;
  content?: string | Array<{ type?: string; text?: string }>;
  tool_calls?: unknown[];
}

interface V2ChatRequest {
  stream?: unknown;
  model?: unknown;
  messages?: V2Message[];
  tools?: Array<{ type?: string; function?: { name?: string } }>;
  tool_choice?: string;
  max_tokens?: number;
}

/** Tokens of the preamble Cohere adds to every prompt (counted in usage.tokens, not billed). */
export const COHERE_PREAMBLE_TOKENS = 200;

const words = (s: string) => s.split(/\s+/).filter(Boolean).length;

function texts(content: V2Message['content']): string[] {
  if (content === undefined) return [];
  if (typeof content === 'string') return [content];
  return content.flatMap((p) => (p.type === 'text' && typeof p.text === 'string' ? [p.text] : []));
}

function promptWords(body: V2ChatRequest): number {
  return Math.max(1, (body.messages ?? []).reduce((n, m) => n + texts(m.content).reduce((k, t) => k + words(t), 0) + (m.tool_calls?.length ?? 0), 0));
}

function lastUserText(body: V2ChatRequest): string {
  const user = [...(body.messages ?? [])].reverse().find((m) => m.role === 'user');
  return texts(user?.content).join(' ').trim();
}

function frame(data: Record<string, unknown>): string {
  return `event: ${String(data.type)}\ndata: ${JSON.stringify(data)}\n\n`;
}

function errorReply(status: number, message: string): Reply {
  return { kind: 'json', status, body: { message } };
}

function usage(prompt: number, output: number) {
  return { billed_units: { input_tokens: prompt, output_tokens: output }, tokens: { input_tokens: prompt + COHERE_PREAMBLE_TOKENS, output_tokens: output } };
}

/** The checks Cohere makes that an adapter bug would trip, with Cohere's messages. */
function invalid(req: RecordedRequest, body: V2ChatRequest | undefined): Reply | undefined {
  const auth = req.headers.authorization;
  if (typeof auth !== 'string' || !/^Bearer \S+$/.test(auth)) return errorReply(401, 'no api key supplied');
  if (!body || typeof body !== 'object') return errorReply(400, 'invalid json syntax: request body must be an object');
  if (typeof body.stream !== 'boolean') return errorReply(400, "invalid request: 'stream' must be a boolean");
  if (typeof body.model !== 'string') return errorReply(400, 'a model parameter is required for this endpoint.');
  if (!Array.isArray(body.messages) || body.messages.length === 0) return errorReply(400, 'invalid request: messages must not be empty');
  if (body.messages.slice(1).some((m) => m.role === 'system')) return errorReply(400, 'system turn must be the first in the list');
  if (body.tool_choice !== undefined && !body.tools?.length) return errorReply(400, 'invalid request: tool_choice requires tools');
  return undefined;
}

export const cohereResponder: Responder = (req) => {
  if (req.method !== 'POST' || req.url.split('?')[0] !== '/v2/chat') return errorReply(404, 'not found, make sure you are using the correct endpoint');
  const body = req.body as V2ChatRequest | undefined;
  const bad = invalid(req, body);
  if (bad || !body) return bad ?? errorReply(400, 'invalid request');
  const id = createHash('sha256').update(req.rawBody).digest('hex').slice(0, 32).replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
  const prompt = promptWords(body);
  const stream = body.stream === true;

  const tool = body.tool_choice === 'REQUIRED' ? body.tools?.[0]?.function?.name : undefined;
  if (tool) {
    const args = JSON.stringify({ query: lastUserText(body) });
    const callId = `${tool}_${id.slice(0, 12)}`;
    const plan = `I will use ${tool}.`;
    const u = usage(prompt, words(plan) + 1);
    if (!stream) {
      return {
        kind: 'json',
        body: { id, message: { role: 'assistant', tool_plan: plan, tool_calls: [{ id: callId, type: 'function', function: { name: tool, arguments: args } }] }, finish_reason: 'TOOL_CALL', usage: u },
      };
    }
    const half = Math.ceil(args.length / 2);
    return {
      kind: 'sse',
      frames: [
        frame({ id, type: 'message-start', delta: { message: { role: 'assistant', content: [], tool_plan: '', tool_calls: [], citations: [] } } }),
        ...plan.split(/(?=\s)/).map((piece) => frame({ type: 'tool-plan-delta', delta: { message: { tool_plan: piece } } })),
        frame({ type: 'tool-call-start', index: 0, delta: { message: { tool_calls: { id: callId, type: 'function', function: { name: tool, arguments: '' } } } } }),
        frame({ type: 'tool-call-delta', index: 0, delta: { message: { tool_calls: { function: { arguments: args.slice(0, half) } } } } }),
        frame({ type: 'tool-call-delta', index: 0, delta: { message: { tool_calls: { function: { arguments: args.slice(half) } } } } }),
        frame({ type: 'tool-call-end', index: 0 }),
        frame({ type: 'message-end', delta: { finish_reason: 'TOOL_CALL', usage: u } }),
      ],
    };
  }

  const said = lastUserText(body);
  let pieces = (said ? `Cohere echo: ${said}` : 'Cohere received the tool results.').split(/(?=\s)/);
  let finish = 'COMPLETE';
  if (typeof body.max_tokens === 'number' && pieces.length > body.max_tokens) {
    pieces = pieces.slice(0, body.max_tokens);
    finish = 'MAX_TOKENS';
  }
  const u = usage(prompt, pieces.length);
  if (!stream) {
    return { kind: 'json', body: { id, message: { role: 'assistant', content: [{ type: 'text', text: pieces.join('') }] }, finish_reason: finish, usage: u } };
  }
  return {
    kind: 'sse',
    frames: [
      frame({ id, type: 'message-start', delta: { message: { role: 'assistant', content: [], tool_plan: '', tool_calls: [], citations: [] } } }),
      frame({ type: 'content-start', index: 0, delta: { message: { content: { type: 'text', text: '' } } } }),
      ...pieces.map((text) => frame({ type: 'content-delta', index: 0, delta: { message: { content: { text } } } })),
      frame({ type: 'content-end', index: 0 }),
      frame({ type: 'message-end', delta: { finish_reason: finish, usage: u } }),
    ],
  };
};
