import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSnapshot, parseConfigDocuments } from '../../crds/src/index.js';
import { ConfigCompiler } from '../../sidecar/router/runtime.js';
import { buildApp } from '../../sidecar/server.js';
import type { Transport } from '../../sidecar/transport.js';
import type { RequestRecord } from '../../sidecar/metering/record.js';

/**
 * The chat routes' fast front (fast-front.ts) against fastify's own routes: the same app, once
 * over a real socket (the plain requests take the fast front) and once through `inject` (always
 * fastify). Every answer must be the same: status, body, and the headers clients read.
 */
const CONFIG = `
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: bot }
spec:
  model: bot
  targets: [{ provider: simulate, model: sim, simulate: { outputTokens: 3 } }]
  limits: { maxRequestBytes: 1024 }
`;
const config = new ConfigCompiler({} as Transport).compile(buildSnapshot({ ...parseConfigDocuments(CONFIG), env: {} }));
const metered: RequestRecord[] = [];
const app = buildApp({
  getConfig: () => config,
  meter: {
    record: (rec) => {
      metered.push(rec);
      return { costNano: 0n, priced: false };
    },
    flush: () => {},
  },
  logger: pino({ level: 'silent' }),
  bodyLimit: 8192,
});
// Requests over the socket that reached fastify's own routing (the fast front did not take them).
let reachedFastify = 0;
app.addHook('onRequest', (request, _reply, done) => {
  if (request.headers['x-test-socket'] === '1') reachedFastify++;
  done();
});
let base = '';
beforeAll(async () => {
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});
afterAll(() => app.close());

interface Exchange {
  url: string;
  body: string;
  headers?: Record<string, string>;
}

/** What a client reads of an answer; ids and timestamps that differ per request are masked. */
function normalized(status: number, headers: Record<string, string | string[] | undefined>, text: string) {
  const masked = text
    .replace(/"(id|created_at|created)":\s*("[^"]*"|\d+)/g, '"$1":"*"')
    .replace(/(chatcmpl|resp|msg|msg_|rs|item)[-_][\w-]+/g, '$1-*');
  const keep = ['content-type', 'x-paygo-route', 'x-paygo-target', 'x-paygo-provider', 'x-paygo-attempts', 'x-paygo-cost-usd'];
  return { status, headers: Object.fromEntries(keep.map((k) => [k, headers[k]])), body: masked, hasRequestId: headers['x-request-id'] !== undefined || headers['request-id'] !== undefined };
}

async function overSocket(x: Exchange) {
  const res = await fetch(`${base}${x.url}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-test-socket': '1', ...x.headers }, body: x.body });
  return normalized(res.status, Object.fromEntries(res.headers), await res.text());
}

async function throughFastify(x: Exchange) {
  const res = await app.inject({ method: 'POST', url: x.url, headers: { 'content-type': 'application/json', ...x.headers }, payload: x.body });
  return normalized(res.statusCode, res.headers as Record<string, string>, res.body);
}

const chat = (o: Record<string, unknown>) => JSON.stringify({ model: 'bot', messages: [{ role: 'user', content: 'hi' }], ...o });
const notJson = '{"model":"bot","messages":[{"role":"user","content": my secret prompt}]}';

describe('the fast front answers as fastify does', () => {
  it.each<[string, Exchange]>([
    ['a chat completion', { url: '/v1/chat/completions', body: chat({}) }],
    ['a streamed chat completion with usage', { url: '/v1/chat/completions', body: chat({ stream: true, stream_options: { include_usage: true } }) }],
    ['a Responses API answer', { url: '/v1/responses', body: JSON.stringify({ model: 'bot', input: 'hi', store: false }) }],
    ['a streamed Responses API answer', { url: '/v1/responses', body: JSON.stringify({ model: 'bot', input: 'hi', store: false, stream: true }) }],
    ['a Messages API answer', { url: '/v1/messages', body: JSON.stringify({ model: 'bot', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }) }],
    ['a streamed Messages API answer', { url: '/v1/messages', body: JSON.stringify({ model: 'bot', max_tokens: 5, stream: true, messages: [{ role: 'user', content: 'hi' }] }) }],
    ['invalid JSON (chat)', { url: '/v1/chat/completions', body: notJson }],
    ['invalid JSON (responses)', { url: '/v1/responses', body: notJson }],
    ['invalid JSON (messages: Anthropic’s shape)', { url: '/v1/messages', body: notJson }],
    ['a body that is not an object', { url: '/v1/chat/completions', body: '[1,2]' }],
    ['a wrong type, named', { url: '/v1/chat/completions', body: chat({ temperature: 'hot' }) }],
    ['an unknown model', { url: '/v1/chat/completions', body: chat({ model: 'nope' }) }],
    ['an unknown model (messages)', { url: '/v1/messages', body: JSON.stringify({ model: 'nope', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }) }],
    ['a body over the route’s maxRequestBytes', { url: '/v1/chat/completions', body: chat({ user: 'u'.repeat(1100) }) }],
    ['a streamed request that fails before its first byte', { url: '/v1/chat/completions', body: chat({ model: 'nope', stream: true }) }],
    ['a hosted tool on a route without OpenAI targets', { url: '/v1/responses', body: JSON.stringify({ model: 'bot', input: 'hi', tools: [{ type: 'web_search' }] }) }],
  ])('%s', async (_name, x) => {
    const before = reachedFastify;
    const fast = await overSocket(x);
    expect(reachedFastify).toBe(before);
    expect(fast).toEqual(await throughFastify(x));
    expect(fast.hasRequestId || fast.status >= 400).toBe(true);
    // The prompt text never comes back in an error.
    expect(fast.body).not.toContain('secret');
  });

  it('meters the same: one record per served request, none for a refused one', async () => {
    metered.length = 0;
    await overSocket({ url: '/v1/chat/completions', body: chat({}) });
    await overSocket({ url: '/v1/chat/completions', body: notJson });
    await overSocket({ url: '/v1/chat/completions', body: chat({ temperature: 'hot' }) });
    expect(metered.map((r) => [r.api, r.outcome, r.status])).toEqual([['chat', 'success', 200]]);
  });

  it('leaves to fastify what it does not take: another type, a query string, a chunked or empty body, a body over --max-body-bytes', async () => {
    const post = (url: string, init: RequestInit & { duplex?: 'half' }) =>
      fetch(`${base}${url}`, { method: 'POST', ...init, headers: { ...(init.headers as Record<string, string>), 'x-test-socket': '1' } });
    const before = reachedFastify;
    expect((await post('/v1/chat/completions', { headers: { 'content-type': 'text/plain' }, body: chat({}) })).status).toBe(415);
    expect((await post('/v1/chat/completions?x=1', { headers: { 'content-type': 'application/json' }, body: chat({}) })).status).toBe(200);
    expect((await post('/v1/chat/completions', { headers: { 'content-type': 'Application/JSON' }, body: chat({}) })).status).toBe(200);
    const chunked = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode(chat({})));
        c.close();
      },
    });
    expect((await post('/v1/chat/completions', { headers: { 'content-type': 'application/json' }, body: chunked, duplex: 'half' })).status).toBe(200);
    expect((await post('/v1/chat/completions', { headers: { 'content-type': 'application/json' } })).status).toBe(400);
    const big = await post('/v1/chat/completions', { headers: { 'content-type': 'application/json' }, body: chat({ user: 'u'.repeat(9000) }) });
    expect(big.status).toBe(413);
    expect(((await big.json()) as { error: { code: string } }).error.code).toBe('request_too_large');
    expect(reachedFastify - before).toBe(6);
  });

  it('keeps the client’s x-request-id', async () => {
    const res = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'mine-1' }, body: chat({}) });
    expect(res.headers.get('x-request-id')).toBe('mine-1');
  });
});
