import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp, requestId } from '../../sidecar/server.js';

/** The app without a config: the body is parsed (or refused) before any route is resolved. */
const app = buildApp({
  getConfig: () => undefined,
  meter: { record: () => ({ costNano: 0n, priced: false }), flush: () => {} },
  logger: pino({ level: 'silent' }),
  bodyLimit: 1_000_000,
});
afterAll(() => app.close());

const UNSUPPORTED = { error: { message: 'The request body must be application/json.', type: 'invalid_request_error', param: null, code: 'unsupported_media_type' } };

describe('request content types (README "Errors": 415 unsupported_media_type)', () => {
  const body = JSON.stringify({ model: 'bot', messages: [{ role: 'user', content: 'hi' }] });

  it.each([
    ['text/plain', body],
    ['text/plain; charset=utf-8', body],
    ['text/plain', ''],
    ['application/x-www-form-urlencoded', 'model=bot'],
    ['multipart/form-data; boundary=x', '--x--'],
    ['application/jsonx', body],
    ['application/octet-stream', body],
  ])('%s with body %j → 415 in OpenAI shape, on both POST endpoints', async (type, payload) => {
    for (const url of ['/v1/chat/completions', '/v1/embeddings']) {
      const res = await app.inject({ method: 'POST', url, headers: { 'content-type': type }, payload });
      expect(res.statusCode).toBe(415);
      expect(res.json()).toEqual(UNSUPPORTED);
    }
  });

  it('a body without a content type → 415', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/chat/completions', payload: body });
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.statusCode).toBe(415);
    expect(res.json()).toEqual(UNSUPPORTED);
  });

  it('application/json (any parameters, any case) is parsed: the request then fails on what comes next (no config yet → 503)', async () => {
    for (const type of ['application/json', 'application/json; charset=utf-8', 'Application/JSON']) {
      const res = await app.inject({ method: 'POST', url: '/v1/chat/completions', headers: { 'content-type': type }, payload: body });
      expect(res.statusCode).toBe(503);
      expect(res.json().error.code).toBe('not_ready');
    }
  });

  it('no body and no content type is not a media type problem: 400, the body must be a JSON object', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/chat/completions' });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('invalid_request');
  });
});

describe('x-request-id', () => {
  it('is taken from the client only when it is a sane identifier (it lands in logs and headers), else a new UUID', () => {
    expect(requestId({ headers: { 'x-request-id': 'req-1.a:B_2' } })).toBe('req-1.a:B_2');
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    for (const bad of ['Bearer sk-live-123', 'a\nfake log line', 'x'.repeat(129), '', '<script>', 'id with space']) {
      expect(requestId({ headers: { 'x-request-id': bad } })).toMatch(uuid);
    }
    expect(requestId({ headers: { 'x-request-id': ['a', 'b'] } })).toMatch(uuid);
    expect(requestId({ headers: {} })).toMatch(uuid);
  });
});

describe('a body that is not JSON, on every API', () => {
  // V8's JSON.parse message quotes the text around the error: the prompt must not reach the client.
  const payload = '{"model":"bot","messages":[{"role":"user","content": my secret prompt about Contoso}]}';

  it('400 invalid_json in each API\'s shape, the text not quoted', async () => {
    const openai = { error: { message: 'We could not parse the JSON body of your request: it is not valid JSON.', type: 'invalid_request_error', param: null, code: 'invalid_json' } };
    for (const url of ['/v1/chat/completions', '/v1/responses', '/v1/embeddings']) {
      const res = await app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual(openai);
    }
    for (const url of ['/v1/messages', '/v1/messages/count_tokens']) {
      const res = await app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload });
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({ type: 'error', error: { type: 'invalid_request_error', message: openai.error.message } });
      expect(res.headers['request-id']).toEqual(expect.any(String));
    }
  });

  it('keeps the position when the parser gives one', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, payload: '{"model": ' });
    expect(res.json().error.message).toMatch(/^We could not parse the JSON body of your request: it is not valid JSON( \(at position \d+\))?\.$/);
    expect(res.body).not.toContain('model');
  });
});
