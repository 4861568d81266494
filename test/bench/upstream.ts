/**
 * Bench upstream: a fast fake OpenAI / Anthropic server in its own process on 127.0.0.1.
 * Bodies are precomputed; connections are kept alive. Usage: `node upstream.js [port]`; prints
 * {"port":N} on stdout once listening.
 *
 *   POST …/chat/completions   OpenAI chat completion JSON, or SSE when the body has "stream":true
 *   POST …/messages           Anthropic Messages JSON / SSE
 *   POST /fail/…              500 (a target that is down)
 *   POST /flaky/…             500, except every FLAKY_EVERY-th request which is answered normally
 *                             (the failover route's first target: its circuit breaker never reaches
 *                             its threshold, so every request really pays the failover)
 *   POST /paced/<ms>/…        the same answers, but a stream comes at a model's pace: its first
 *                             event (OpenAI: the role chunk; Anthropic: message_start,
 *                             content_block_start and the first text delta, what a client sees
 *                             first) with the headers at once, then PACED_WRITES - 1 more writes
 *                             <ms> apart (the stream TTFB rows of run.ts)
 *   GET  /__count             {"count":N,"byPrefix":{...}}: requests answered, to verify that a
 *                             proxy really reached the upstream
 */
import { createServer, type ServerResponse } from 'node:http';
import { FLAKY_EVERY, PACED_WRITES } from './lib.js';
import { serveBenchProcess } from './serve.js';

const created = 1727000000;
const usage = { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 };
const words = ['echo:', ' hello', ' from', ' the', ' bench'];

const chatJson = Buffer.from(
  JSON.stringify({
    id: 'chatcmpl-bench',
    object: 'chat.completion',
    created,
    model: 'gpt-4o-mini-2024-07-18',
    system_fingerprint: 'fp_bench',
    choices: [{ index: 0, message: { role: 'assistant', content: words.join(''), refusal: null }, logprobs: null, finish_reason: 'stop' }],
    usage,
  }),
);
const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
  `data: ${JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', created, model: 'gpt-4o-mini-2024-07-18', system_fingerprint: 'fp_bench', choices, ...extra })}\n\n`;
// Like OpenAI with stream_options.include_usage: every chunk has "usage":null but the last.
const chatSse = Buffer.from(
  [
    chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }], { usage: null }),
    ...words.map((w) => chunk([{ index: 0, delta: { content: w }, logprobs: null, finish_reason: null }], { usage: null })),
    chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }], { usage: null }),
    chunk([], { usage }),
    'data: [DONE]\n\n',
  ].join(''),
);
const anthropicJson = Buffer.from(
  JSON.stringify({
    id: 'msg_01bench',
    type: 'message',
    role: 'assistant',
    model: 'claude-3-5-haiku-20241022',
    content: [{ type: 'text', text: words.join('') }],
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage: { input_tokens: 12, output_tokens: 5 },
  }),
);
const ev = (type: string, data: unknown) => `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
const anthropicSse = Buffer.from(
  [
    ev('message_start', {
      type: 'message_start',
      message: { id: 'msg_01bench', type: 'message', role: 'assistant', model: 'claude-3-5-haiku-20241022', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 12, output_tokens: 1 } },
    }),
    ev('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
    ...words.map((w) => ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: w } })),
    ev('content_block_stop', { type: 'content_block_stop', index: 0 }),
    ev('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 5 } }),
    ev('message_stop', { type: 'message_stop' }),
  ].join(''),
);
/**
 * Paced streams: the same events in PACED_WRITES writes, the first at once and the others spaced
 * (the last one carries the rest of the stream: finish, usage, [DONE] / message_stop).
 */
const chatSseParts = [
  chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }], { usage: null }),
  ...words.slice(0, PACED_WRITES - 2).map((w) => chunk([{ index: 0, delta: { content: w }, logprobs: null, finish_reason: null }], { usage: null })),
  [
    ...words.slice(PACED_WRITES - 2).map((w) => chunk([{ index: 0, delta: { content: w }, logprobs: null, finish_reason: null }], { usage: null })),
    chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }], { usage: null }),
    chunk([], { usage }),
    'data: [DONE]\n\n',
  ].join(''),
].map((p) => Buffer.from(p));
const anthropicSseParts = [
  [
    ev('message_start', {
      type: 'message_start',
      message: { id: 'msg_01bench', type: 'message', role: 'assistant', model: 'claude-3-5-haiku-20241022', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 12, output_tokens: 1 } },
    }),
    ev('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
    ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: words[0] } }),
  ].join(''),
  ...words.slice(1, PACED_WRITES - 1).map((w) => ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: w } })),
  [
    ...words.slice(PACED_WRITES - 1).map((w) => ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: w } })),
    ev('content_block_stop', { type: 'content_block_stop', index: 0 }),
    ev('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 5 } }),
    ev('message_stop', { type: 'message_stop' }),
  ].join(''),
].map((p) => Buffer.from(p));
if (Buffer.concat(chatSseParts).compare(chatSse) !== 0) throw new Error('paced OpenAI stream differs from the whole one');
if (Buffer.concat(anthropicSseParts).compare(anthropicSse) !== 0) throw new Error('paced Anthropic stream differs from the whole one');

/** Writes parts[0] with the headers at once, then the others gapMs apart (stops if the client left). */
function paced(res: ServerResponse, parts: Buffer[], gapMs: number): void {
  res.writeHead(200, SSE_HEADERS);
  res.write(parts[0]);
  let i = 1;
  const next = () => {
    if (res.destroyed) return;
    if (i === parts.length - 1) res.end(parts[i]);
    else {
      res.write(parts[i++]);
      setTimeout(next, gapMs);
    }
  };
  setTimeout(next, gapMs);
}

const failBody = Buffer.from(JSON.stringify({ error: { message: 'bench: forced failure', type: 'server_error', param: null, code: null } }));
const notFound = Buffer.from('{"error":{"message":"not found"}}');
const STREAM = Buffer.from('"stream":true');
const JSON_HEADERS = (len: number) => ({ 'content-type': 'application/json', 'content-length': len });
const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' };

const PACED_URL = /^\/paced\/(\d+)\//;

let count = 0;
const byPrefix: Record<string, number> = {};
let flaky = 0;

function answer(res: ServerResponse, url: string, stream: boolean, gapMs: number | undefined): void {
  if (url.endsWith('/messages')) {
    if (stream && gapMs !== undefined) paced(res, anthropicSseParts, gapMs);
    else if (stream) res.writeHead(200, SSE_HEADERS).end(anthropicSse);
    else res.writeHead(200, JSON_HEADERS(anthropicJson.length)).end(anthropicJson);
  } else if (url.endsWith('/chat/completions')) {
    if (stream && gapMs !== undefined) paced(res, chatSseParts, gapMs);
    else if (stream) res.writeHead(200, SSE_HEADERS).end(chatSse);
    else res.writeHead(200, JSON_HEADERS(chatJson.length)).end(chatJson);
  } else {
    res.writeHead(404, JSON_HEADERS(notFound.length)).end(notFound);
  }
}

const server = createServer({ keepAliveTimeout: 120_000, requestTimeout: 0 }, (req, res) => {
  const url = req.url ?? '';
  if (req.method === 'GET' && url === '/__count') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ count, byPrefix }));
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    count++;
    const pace = url.startsWith('/paced/') ? PACED_URL.exec(url) : null;
    const prefix = url.startsWith('/fail/') ? 'fail' : url.startsWith('/flaky/') ? 'flaky' : pace ? 'paced' : 'ok';
    byPrefix[prefix] = (byPrefix[prefix] ?? 0) + 1;
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    const stream = body.includes(STREAM);
    if (prefix === 'fail' || (prefix === 'flaky' && ++flaky % FLAKY_EVERY !== 0)) {
      res.writeHead(500, JSON_HEADERS(failBody.length)).end(failBody);
      return;
    }
    answer(res, url, stream, pace ? Number(pace[1]) : undefined);
  });
});
serveBenchProcess(server, Number(process.argv[2] ?? 0));
