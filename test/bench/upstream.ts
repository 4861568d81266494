/**
 * Bench upstream: a fast fake OpenAI/Anthropic server on 127.0.0.1 (own process), precomputed
 * bodies, keep-alive. Usage: node upstream.js → prints {"port":N} on stdout.
 *   POST /v1/chat/completions   OpenAI JSON, or SSE when the body has "stream":true
 *   POST /v1/messages           Anthropic JSON / SSE
 *   POST /fail/v1/...           500 (first target of the failover route)
 *   GET  /__count               {"count":N} requests answered (to verify proxies really reach us)
 */
import { createServer } from 'node:http';

const created = 1727000000;
const usage = { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 };
const chatJson = Buffer.from(
  JSON.stringify({
    id: 'chatcmpl-bench',
    object: 'chat.completion',
    created,
    model: 'gpt-4o-mini-2024-07-18',
    system_fingerprint: 'fp_bench',
    choices: [{ index: 0, message: { role: 'assistant', content: 'echo: hello from the bench', refusal: null }, logprobs: null, finish_reason: 'stop' }],
    usage,
  }),
);
const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
  `data: ${JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', created, model: 'gpt-4o-mini-2024-07-18', system_fingerprint: 'fp_bench', choices, ...extra })}\n\n`;
const words = ['echo:', ' hello', ' from', ' the', ' bench'];
const chatSse = Buffer.from(
  [
    chunk([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]),
    ...words.map((w) => chunk([{ index: 0, delta: { content: w }, logprobs: null, finish_reason: null }])),
    chunk([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]),
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
    content: [{ type: 'text', text: 'echo: hello from the bench' }],
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage: { input_tokens: 12, output_tokens: 5 },
  }),
);
const ev = (type: string, data: unknown) => `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
const anthropicSse = Buffer.from(
  [
    ev('message_start', { type: 'message_start', message: { id: 'msg_01bench', type: 'message', role: 'assistant', model: 'claude-3-5-haiku-20241022', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 12, output_tokens: 1 } } }),
    ev('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
    ...words.map((w) => ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: w } })),
    ev('content_block_stop', { type: 'content_block_stop', index: 0 }),
    ev('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 5 } }),
    ev('message_stop', { type: 'message_stop' }),
  ].join(''),
);
const failBody = Buffer.from(JSON.stringify({ error: { message: 'bench: forced failure', type: 'server_error', code: null } }));
const STREAM = Buffer.from('"stream":true');

let count = 0;
const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  const url = req.url ?? '';
  if (req.method === 'GET' && url === '/__count') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ count }));
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    count++;
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    const stream = body.includes(STREAM);
    if (url.startsWith('/fail/')) {
      res.writeHead(500, { 'content-type': 'application/json', 'content-length': failBody.length }).end(failBody);
    } else if (url.endsWith('/messages')) {
      if (stream) res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }).end(anthropicSse);
      else res.writeHead(200, { 'content-type': 'application/json', 'content-length': anthropicJson.length }).end(anthropicJson);
    } else if (url.endsWith('/chat/completions')) {
      if (stream) res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }).end(chatSse);
      else res.writeHead(200, { 'content-type': 'application/json', 'content-length': chatJson.length }).end(chatJson);
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"message":"not found"}}');
    }
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  const a = server.address();
  process.stdout.write(JSON.stringify({ port: typeof a === 'object' && a ? a.port : 0 }) + '\n');
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
