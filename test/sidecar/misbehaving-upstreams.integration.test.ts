import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openaiResponder } from '../support/fake-openai.js';
import { sseFrame, startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { postChat, startSidecar, type SidecarProcess } from '../support/sidecar-process.js';

/**
 * Providers that misbehave in ways a socket reset does not cover, each with the outcome the
 * README promises: a stream that ends cleanly before its end marker (before and after the first
 * chunk), a client that reads slowly, and embeddings that fail.
 */
let a: FakeUpstream;
let b: FakeUpstream;
let sidecar: SidecarProcess;

const config = (aUrl: string, bUrl: string) => `
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: failover }
spec:
  model: failover
  strategy: fallback
  retry: { attempts: 1 }
  targets:
    - { name: a, provider: openai-compatible, model: m, baseURL: ${aUrl}/v1, pricing: { input: "1.00", output: "2.00" } }
    - { name: b, provider: openai-compatible, model: m, baseURL: ${bUrl}/v1, pricing: { input: "1.00", output: "2.00" } }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: single }
spec:
  model: single
  retry: { attempts: 2, initialBackoffMs: 1 }
  targets:
    - { name: a, provider: openai-compatible, model: m, baseURL: ${aUrl}/v1, pricing: { input: "1.00", output: "2.00" } }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: embed }
spec:
  model: embed
  retry: { attempts: 2, initialBackoffMs: 1 }
  targets:
    - { name: a, provider: openai-compatible, model: e, baseURL: ${aUrl}/v1, pricing: { input: "0.10", output: "0" } }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: embed-throttled }
spec:
  model: embed-throttled
  retry: { attempts: 2, initialBackoffMs: 1 }
  targets:
    - { name: a, provider: openai-compatible, model: e, baseURL: ${aUrl}/v1, pricing: { input: "0.10", output: "0" } }
`;

beforeAll(async () => {
  a = await startFakeUpstream(openaiResponder());
  b = await startFakeUpstream(openaiResponder());
  sidecar = await startSidecar(config(a.url, b.url));
});

afterAll(async () => {
  await sidecar?.stop();
  await a?.close();
  await b?.close();
});

afterEach(() => {
  a.respondWith(openaiResponder());
});

const sseData = async (res: Response) =>
  (await res.text())
    .split('\n\n')
    .filter((f) => f.startsWith('data: '))
    .map((f) => f.slice('data: '.length));

/** The first usage record logged after the `before`-th that matches (usage lines go out in batches). */
async function usageAfter(before: number, pred: (r: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
  for (let i = 0; i < 500; i++) {
    const hit = sidecar.usage().slice(before).find(pred);
    if (hit) return hit;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no matching usage record; got ${JSON.stringify(sidecar.usage().slice(before))}`);
}

describe('a stream that ends cleanly before its end marker', () => {
  it('before the first chunk: not committed, so the next target answers', async () => {
    a.fault({ kind: 'end', afterFrames: 0 });
    const before = sidecar.usage().length;
    const res = await postChat(sidecar, { model: 'failover', stream: true, messages: [{ role: 'user', content: 'hi there' }] });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-paygo-target')).toBe('b');
    const frames = await sseData(res);
    expect(frames.at(-1)).toBe('[DONE]');
    expect(frames.slice(0, -1).map((f) => JSON.parse(f).choices[0]?.delta?.content ?? '').join('')).toBe('echo: hi there');
    expect(await usageAfter(before, (r) => r.route === 'failover')).toMatchObject({ target: 'b', outcome: 'success', attempts: 2, estimated: false });
  });

  it('before the first chunk with no other target: 502 upstream_failed after the retries', async () => {
    a.fault({ kind: 'end', afterFrames: 0 }, { kind: 'end', afterFrames: 0 });
    const requests = a.requests.length;
    const before = sidecar.usage().length;
    const res = await postChat(sidecar, { model: 'single', stream: true, messages: [{ role: 'user', content: 'hi' }] });
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('upstream_failed');
    expect(a.requests.length - requests).toBe(2); // the protocol failure is retried as a 5xx
    expect(await usageAfter(before, (r) => r.route === 'single')).toMatchObject({ target: 'a', outcome: 'upstream_error', status: 502, attempts: 2 });
  });

  it('after the first chunk: the client gets an upstream_stream_error event and no [DONE]; the usage is estimated', async () => {
    a.fault({ kind: 'end', afterFrames: 3 }); // role chunk and two words, then a clean end
    const before = sidecar.usage().length;
    const res = await postChat(sidecar, { model: 'single', stream: true, messages: [{ role: 'user', content: 'one two three four five' }] });
    expect(res.status).toBe(200);
    const frames = await sseData(res);
    expect(frames).not.toContain('[DONE]');
    const last = JSON.parse(frames.at(-1)!) as { error: { code: string; message: string } };
    expect(last.error.code).toBe('upstream_stream_error');
    expect(last.error.message).toMatch(/ended the stream early/);
    expect(frames.slice(0, -1).map((f) => JSON.parse(f).choices[0]?.delta?.content ?? '').join('')).toBe('echo: one');
    // (The previous test's 502 may be logged after `before`: usage lines go out in batches.)
    const rec = await usageAfter(before, (r) => r.route === 'single' && r.stream === true && r.status === 200);
    expect(rec).toMatchObject({ target: 'a', outcome: 'stream_error', estimated: true });
    expect((rec.tokens as { output: number }).output).toBeGreaterThan(0);
  });
});

describe('a stream cut early, on the other APIs: each ends with its own error event, the usage estimated', () => {
  const post = (path: string, body: unknown, requestId: string) =>
    fetch(`${sidecar.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': requestId }, body: JSON.stringify(body) });
  const events = (text: string) =>
    text
      .split('\n\n')
      .filter(Boolean)
      .map((f) => ({ event: /^event: (.*)$/m.exec(f)?.[1], data: JSON.parse(/^data: (.*)$/m.exec(f)![1]!) as Record<string, unknown> }));

  it('/v1/responses: response.failed with upstream_stream_error, never response.completed, nothing stored', async () => {
    a.fault({ kind: 'end', afterFrames: 3 });
    const res = await post('/v1/responses', { model: 'single', stream: true, input: 'one two three four five' }, 'cut-responses');
    expect(res.status).toBe(200);
    const got = events(await res.text());
    expect(got.map((e) => e.event)).not.toContain('response.completed');
    const last = got.at(-1)!;
    expect(last.event).toBe('response.failed');
    const response = last.data.response as { id: string; status: string; error: { code: string; message: string } };
    expect(response.status).toBe('failed');
    expect(response.error.code).toBe('upstream_stream_error');
    expect((await fetch(`${sidecar.url}/v1/responses/${response.id}`)).status).toBe(404);
    expect(await sidecar.usageLine('cut-responses')).toMatchObject({ api: 'responses', target: 'a', outcome: 'stream_error', estimated: true });
  });

  it('/v1/messages: an error event, never message_stop', async () => {
    a.fault({ kind: 'end', afterFrames: 3 });
    const res = await post('/v1/messages', { model: 'single', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'one two three four five' }] }, 'cut-messages');
    expect(res.status).toBe(200);
    const got = events(await res.text());
    expect(got.map((e) => e.event)).not.toContain('message_stop');
    expect(got.at(-1)).toEqual({ event: 'error', data: { type: 'error', error: { type: 'api_error', message: expect.stringMatching(/ended the stream early/) } } });
    const line = await sidecar.usageLine('cut-messages');
    expect(line).toMatchObject({ api: 'messages', target: 'a', outcome: 'stream_error', estimated: true });
    expect((line.tokens as { output: number }).output).toBeGreaterThan(0);
  });
});

describe('a client that reads slowly', () => {
  it('holds the provider back (back-pressure end to end) and then delivers every chunk, in order', async () => {
    const FRAMES = 40_000;
    const piece = 'x'.repeat(1_000);
    a.respondWith((req) => {
      const body = req.body as { model: string };
      const base = { id: 'chatcmpl-big', object: 'chat.completion.chunk', created: 1727000000, model: body.model };
      const frames = [sseFrame({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] })];
      for (let i = 0; i < FRAMES; i++) frames.push(sseFrame({ ...base, choices: [{ index: 0, delta: { content: `${i}:${piece}|` }, finish_reason: null }] }));
      frames.push(sseFrame({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }), 'data: [DONE]\n\n');
      return { kind: 'sse', frames };
    });
    const sentBefore = a.framesSent;
    const res = await request(`${sidecar.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'single', stream: true, messages: [{ role: 'user', content: 'a long answer please' }] }),
    });
    expect(res.statusCode).toBe(200);
    // The client reads nothing for a while: the provider must be held back, not buffered in the sidecar.
    let last = -1;
    for (let i = 0; i < 100 && a.framesSent !== last; i++) {
      last = a.framesSent;
      await new Promise((r) => setTimeout(r, 100));
    }
    const whilePaused = a.framesSent - sentBefore;
    expect(whilePaused).toBeLessThan(FRAMES);
    const text = await res.body.text();
    const contents = text
      .split('\n\n')
      .filter((f) => f.startsWith('data: {'))
      .map((f) => (JSON.parse(f.slice(6)) as { choices: Array<{ delta: { content?: string } }> }).choices[0]?.delta.content ?? '')
      .join('');
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
    const parts = contents.split('|').filter(Boolean);
    expect(parts).toHaveLength(FRAMES);
    parts.forEach((p, i) => expect(p).toBe(`${i}:${piece}`));
    expect(a.framesSent - sentBefore).toBe(FRAMES + 3);
  }, 120_000);
});

describe('embeddings that fail', () => {
  const embed = (model = 'embed') =>
    fetch(`${sidecar.url}/v1/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, input: ['a', 'b'] }) });

  it('upstream 429 with Retry-After → 429 upstream_rate_limited, metered under the target; the target then backs off until then', async () => {
    // A Retry-After beyond the route's maxBackoffMs is not waited for: no retry, no other target.
    a.fault({ kind: 'status', status: 429, headers: { 'retry-after': '7' } });
    const requests = a.requests.length;
    const before = sidecar.usage().length;
    const res = await embed('embed-throttled');
    expect([res.status, res.headers.get('retry-after'), ((await res.json()) as { error: { code: string } }).error.code]).toEqual([429, '7', 'upstream_rate_limited']);
    const rec = await usageAfter(before, (r) => r.operation === 'embeddings' && r.route === 'embed-throttled');
    expect(rec).toMatchObject({ target: 'a', status: 429, outcome: 'upstream_error', attempts: 1 });
    // The provider asked for 7 s: the next request is refused here, not sent.
    const next = await embed('embed-throttled');
    expect(next.status).toBe(429);
    expect(Number(next.headers.get('retry-after'))).toBeLessThanOrEqual(7);
    expect(((await next.json()) as { error: { code: string } }).error.code).toBe('rate_limit_exceeded');
    expect(a.requests.length - requests).toBe(1);
    // Metered as sent nowhere (and logged before the next test counts usage lines).
    expect(await usageAfter(before, (r) => r.route === 'embed-throttled' && r.errorType === 'rate_limit_exceeded')).toMatchObject({ status: 429, attempts: 0 });
  });

  it.each([
    { fault: { kind: 'status' as const, status: 500 }, times: 2, status: 502, code: 'upstream_failed', retryAfter: null, outcome: 'upstream_error' },
    { fault: { kind: 'status' as const, status: 401 }, times: 1, status: 502, code: 'upstream_auth_failed', retryAfter: null, outcome: 'upstream_error' },
    {
      fault: { kind: 'status' as const, status: 400, body: '{"error":{"message":"input too long","type":"invalid_request_error","code":"context_length_exceeded"}}' },
      times: 1,
      status: 400,
      code: 'context_length_exceeded',
      retryAfter: null,
      outcome: 'client_error',
    },
    { fault: { kind: 'garbage' as const }, times: 2, status: 502, code: 'upstream_failed', retryAfter: null, outcome: 'upstream_error' },
  ])('upstream $fault.kind $fault.status → $status $code, metered under the target it reached', async ({ fault, times, status, code, retryAfter, outcome }) => {
    a.fault(...Array.from({ length: times }, () => fault));
    const requests = a.requests.length;
    const before = sidecar.usage().length;
    const res = await embed();
    expect(res.status).toBe(status);
    expect(res.headers.get('retry-after')).toBe(retryAfter);
    const body = (await res.json()) as { error: { code: string; type: string } };
    expect(body.error.code).toBe(code);
    expect(a.requests.length - requests).toBe(times);
    const rec = await usageAfter(before, (r) => r.operation === 'embeddings' && r.status !== 200);
    expect(rec).toMatchObject({ route: 'embed', target: 'a', status, outcome, attempts: times });
    // Works again once the provider does.
    expect((await embed()).status).toBe(200);
  });
});
