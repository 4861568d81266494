import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openaiResponder } from '../support/fake-openai.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { postChat, startSidecar, type SidecarProcess } from '../support/sidecar-process.js';

/** The built sidecar as a real process, in front of fake OpenAI-wire upstreams that inject faults. */
let a: FakeUpstream;
let b: FakeUpstream;
let c: FakeUpstream;
let sidecar: SidecarProcess;

const config = () => `
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: failover }
spec:
  model: failover
  targets:
    - { name: a, provider: openai-compatible, model: fake-a, baseURL: ${a.url}/v1, timeoutMs: 500, credentials: { secretRef: { name: keys, key: a } } }
    - { name: b, provider: openai-compatible, model: fake-b, baseURL: ${b.url}/v1, timeoutMs: 500 }
  retry: { attempts: 2, initialBackoffMs: 1, maxBackoffMs: 1500, totalTimeoutMs: 5000 }
  # Kept closed here so the failover cases stay independent; the breaker is tested on "single".
  circuitBreaker: { consecutiveFailures: 1000, cooldownMs: 400 }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: single }
spec:
  model: [single, single-alias]
  targets:
    - { name: only, provider: openai-compatible, model: fake-c, baseURL: ${c.url}/v1, timeoutMs: 500 }
  retry: { attempts: 1 }
  circuitBreaker: { consecutiveFailures: 3, cooldownMs: 400 }
  limits: { maxOutputTokens: 3, maxRequestBytes: 2048 }
---
apiVersion: v1
kind: Secret
metadata: { name: keys }
stringData: { a: sk-upstream-secret-a }
`;

async function chat(body: Record<string, unknown>, init: RequestInit = {}) {
  return postChat(sidecar, { messages: [{ role: 'user', content: 'hi there' }], ...body }, init);
}

// Response bodies are checked field by field: loosely typed on purpose.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const jsonOf = (res: Response): Promise<any> => res.json();

/** Reads an SSE response into its data payloads. */
async function sseData(res: Response): Promise<string[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter(Boolean)
    .map((f) => f.replace(/^data: /, ''));
}

beforeAll(async () => {
  a = await startFakeUpstream(openaiResponder());
  b = await startFakeUpstream(openaiResponder());
  c = await startFakeUpstream(openaiResponder());
  sidecar = await startSidecar(config());
});
afterAll(async () => {
  await sidecar?.stop();
  await Promise.all([a?.close(), b?.close(), c?.close()]);
});
beforeEach(() => {
  for (const u of [a, b, c]) u.requests.length = 0;
});

describe('sidecar process: routing', () => {
  it('serves a completion with routing headers and the upstream key', async () => {
    const res = await chat({ model: 'failover' });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-paygo-route')).toBe('failover');
    expect(res.headers.get('x-paygo-target')).toBe('a');
    expect(res.headers.get('x-paygo-provider')).toBe('openai-compatible');
    expect(res.headers.get('x-paygo-attempts')).toBe('1');
    const body = await jsonOf(res);
    expect(body.choices[0].message.content).toBe('echo: hi there');
    expect(a.requests[0]!.headers.authorization).toBe('Bearer sk-upstream-secret-a');
    expect((a.requests[0]!.body as { model: string }).model).toBe('fake-a');
  });

  it('retries a 429 after its Retry-After and succeeds on the same target', async () => {
    a.fault({ kind: 'status', status: 429, headers: { 'retry-after': '1' } });
    const t0 = Date.now();
    const res = await chat({ model: 'failover' });
    expect(res.status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(res.headers.get('x-paygo-target')).toBe('a');
    expect(res.headers.get('x-paygo-attempts')).toBe('2');
  });

  it.each([
    ['500', { kind: 'status', status: 500 }],
    ['503', { kind: 'status', status: 503 }],
    ['connection reset', { kind: 'reset' }],
    ['timeout', { kind: 'hang' }],
    ['invalid JSON', { kind: 'garbage' }],
  ] as const)('fails over to the next target on %s', async (_name, fault) => {
    a.fault(fault, fault);
    const res = await chat({ model: 'failover' });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-paygo-target')).toBe('b');
    expect(res.headers.get('x-paygo-attempts')).toBe('3');
    expect(a.requests).toHaveLength(2);
    expect(b.requests).toHaveLength(1);
  });

  it('returns a clean OpenAI-style error when every target fails', async () => {
    a.fault({ kind: 'status', status: 500 }, { kind: 'status', status: 500 });
    b.fault({ kind: 'status', status: 502 }, { kind: 'status', status: 502 });
    const res = await chat({ model: 'failover' });
    expect(res.status).toBe(502);
    const body = await jsonOf(res);
    expect(body).toEqual({ error: { message: expect.stringContaining('Every target of route "failover" failed after 4 attempts'), type: 'upstream_error', param: null, code: 'upstream_failed' } });
    expect(JSON.stringify(body)).not.toContain('sk-upstream-secret-a');
  });

  it('opens the circuit of a failing single target, then closes it after a successful probe', async () => {
    c.fault({ kind: 'status', status: 500 }, { kind: 'status', status: 500 }, { kind: 'status', status: 500 });
    for (let i = 0; i < 3; i++) expect((await chat({ model: 'single' })).status).toBe(502);
    const open = await chat({ model: 'single' });
    expect(open.status).toBe(503);
    expect((await jsonOf(open)).error.code).toBe('no_available_target');
    expect(c.requests).toHaveLength(3);
    const metrics = await (await fetch(sidecar.metricsUrl)).text();
    expect(metrics).toMatch(/paygo_circuit_open\{namespace="default",route="single",target="only",provider="openai-compatible"\} 1/);
    // After the cooldown (400 ms) one probe goes through and succeeds: poll for it, bounded.
    let status = 503;
    for (let i = 0; i < 200 && status === 503; i++) {
      const res = await chat({ model: 'single' });
      status = res.status;
      await res.arrayBuffer();
      if (status === 503) await new Promise((r) => setTimeout(r, 50));
    }
    expect(status).toBe(200);
    expect(c.requests).toHaveLength(4); // nothing reached the target while the circuit was open
    const after = await (await fetch(sidecar.metricsUrl)).text();
    expect(after).toMatch(/paygo_circuit_open\{namespace="default",route="single",target="only",provider="openai-compatible"\} 0/);
  });

  it('resolves a route by any of its model names and caps max_tokens', async () => {
    const res = await chat({ model: 'single-alias', max_tokens: 50 });
    expect(res.status).toBe(200);
    expect((c.requests[0]!.body as { max_tokens: number }).max_tokens).toBe(3);
    const injected = await chat({ model: 'single' });
    expect(injected.status).toBe(200);
    expect((c.requests[1]!.body as { max_tokens: number }).max_tokens).toBe(3);
  });

  it('lists the route model names', async () => {
    const res = await fetch(`${sidecar.url}/v1/models`);
    const body = await jsonOf(res);
    expect(body.object).toBe('list');
    expect(body.data.map((m: { id: string }) => m.id).sort()).toEqual(['failover', 'single', 'single-alias']);
  });
});

describe('sidecar process: streaming', () => {
  it('streams chunks and adds a usage chunk when the client asks', async () => {
    const res = await chat({ model: 'failover', stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const frames = await sseData(res);
    expect(frames.at(-1)).toBe('[DONE]');
    const chunks = frames.slice(0, -1).map((f) => JSON.parse(f));
    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')).toBe('echo: hi there');
    expect(chunks.at(-1).choices).toEqual([]);
    expect(chunks.at(-1).usage).toMatchObject({ prompt_tokens: 8, completion_tokens: 3, total_tokens: 11 });
    // paygo always asks upstream for usage
    expect((a.requests[0]!.body as { stream_options: unknown }).stream_options).toEqual({ include_usage: true });
  });

  it('sends no usage chunk when the client did not ask', async () => {
    const frames = await sseData(await chat({ model: 'failover', stream: true }));
    const chunks = frames.slice(0, -1).map((f) => JSON.parse(f));
    expect(chunks.every((c) => c.choices.length > 0 && !('usage' in c))).toBe(true);
  });

  it('keeps the upstream connection of a finished stream for the next request', async () => {
    await sseData(await chat({ model: 'single', stream: true })); // opens a connection to c
    const before = c.connections;
    for (let i = 0; i < 5; i++) expect((await sseData(await chat({ model: 'single', stream: true }))).at(-1)).toBe('[DONE]');
    expect(c.requests.length).toBeGreaterThanOrEqual(6);
    expect(c.connections - before).toBe(0);
  });

  it('fails over when the stream breaks before its first byte', async () => {
    a.fault({ kind: 'cut', afterFrames: 0 }, { kind: 'status', status: 503 });
    const res = await chat({ model: 'failover', stream: true });
    expect(res.headers.get('x-paygo-target')).toBe('b');
    const frames = await sseData(res);
    const text = frames.slice(0, -1).map((f) => JSON.parse(f).choices[0]?.delta?.content ?? '').join('');
    expect(text).toBe('echo: hi there');
  });

  it('never fails over after bytes reached the client: a mid-stream cut ends with an error event', async () => {
    // Frames are spaced so the first chunk surely reached the client before the cut.
    a.respondWith((req) => {
      const r = openaiResponder()(req);
      return r.kind === 'sse' ? { ...r, frameDelayMs: 30 } : r;
    });
    try {
      a.fault({ kind: 'cut', afterFrames: 3 });
      const res = await chat({ model: 'failover', stream: true, messages: [{ role: 'user', content: 'one two three four five' }] });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-paygo-target')).toBe('a');
      const frames = await sseData(res);
      const last = JSON.parse(frames.at(-1)!);
      expect(last.error.code).toBe('upstream_stream_error');
      expect(frames).not.toContain('[DONE]');
      const text = frames.slice(0, -1).map((f) => JSON.parse(f).choices[0]?.delta?.content ?? '').join('');
      expect(text).toBe('echo: one'); // exactly the frames a sent, nothing duplicated, nothing from b
      expect(b.requests).toHaveLength(0);
      const rec = await sidecar.waitForLog((r) => r.msg === 'usage' && r.outcome === 'stream_error');
      expect(rec.estimated).toBe(true);
    } finally {
      a.respondWith(openaiResponder());
    }
  });

  it('aborts the upstream request when the client disconnects mid-stream, and still bills it', async () => {
    a.respondWith((req) => {
      const r = openaiResponder()(req);
      return r.kind === 'sse' ? { ...r, frameDelayMs: 50 } : r;
    });
    try {
      const ac = new AbortController();
      const res = await chat({ model: 'failover', stream: true, messages: [{ role: 'user', content: 'w '.repeat(40) }] }, { signal: ac.signal });
      const reader = res.body!.getReader();
      await reader.read();
      ac.abort();
      const rec = await sidecar.waitForLog((r) => r.msg === 'usage' && r.outcome === 'client_aborted');
      expect(rec.estimated).toBe(true);
      expect((rec.tokens as { input: number }).input).toBeGreaterThan(0);
      const before = a.framesSent;
      await new Promise((r) => setTimeout(r, 300));
      expect(a.framesSent - before).toBeLessThanOrEqual(1); // upstream stopped being read
    } finally {
      a.respondWith(openaiResponder());
    }
  });
});

describe('sidecar process: bad input', () => {
  it.each([
    { name: 'invalid JSON', body: '{"model": "failover",', status: 400, code: 'invalid_json' },
    { name: 'a non-object body', body: '[1,2]', status: 400, code: 'invalid_request' },
    { name: 'missing messages', body: JSON.stringify({ model: 'failover' }), status: 400, code: 'invalid_request' },
    { name: 'a wrong type', body: JSON.stringify({ model: 'failover', messages: [{ role: 'user', content: 'x' }], temperature: 'hot' }), status: 400, code: 'invalid_request' },
    { name: 'an unknown role', body: JSON.stringify({ model: 'failover', messages: [{ role: 'wizard', content: 'x' }] }), status: 400, code: 'invalid_request' },
    { name: 'an unknown model', body: JSON.stringify({ model: 'nope', messages: [{ role: 'user', content: 'x' }] }), status: 404, code: 'model_not_found' },
    { name: 'a body over the route limit', body: JSON.stringify({ model: 'single', messages: [{ role: 'user', content: 'x'.repeat(4000) }] }), status: 413, code: 'request_too_large' },
  ])('$name → $status in OpenAI shape, and the sidecar keeps serving', async ({ body, status, code }) => {
    const res = await fetch(`${sidecar.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(res.status).toBe(status);
    const json = await jsonOf(res);
    expect(json.error).toMatchObject({ code, type: expect.any(String), message: expect.any(String) });
    expect((await chat({ model: 'failover' })).status).toBe(200);
  });

  it('names the offending field', async () => {
    const res = await chat({ model: 'failover', temperature: 'hot' });
    const json = await jsonOf(res);
    expect(json.error.param).toBe('temperature');
    expect(json.error.message).toContain('temperature');
  });

  it('refuses a body over the global limit (--max-body-bytes) with 413', async () => {
    const small = await startSidecar(config(), { args: ['--max-body-bytes', '4096'] });
    try {
      const res = await fetch(`${small.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'failover', messages: [{ role: 'user', content: 'x'.repeat(5000) }] }),
      });
      expect(res.status).toBe(413);
      expect((await jsonOf(res)).error).toMatchObject({ code: 'request_too_large', message: 'Request body exceeds the limit of 4096 bytes.' });
    } finally {
      await small.stop();
    }
  });

  it('answers unknown paths with a 404 in OpenAI shape', async () => {
    const res = await fetch(`${sidecar.url}/v1/nothing`);
    expect(res.status).toBe(404);
    expect((await jsonOf(res)).error.code).toBe('unknown_url');
  });
});

describe('sidecar process: config reload', () => {
  it('reloads on SIGHUP and on file change; refuses an invalid file and keeps serving', async () => {
    const original = config();
    let since = sidecar.lines.length;
    writeFileSync(sidecar.configPath, original.replace('model: [single, single-alias]', 'model: [single, renamed]'));
    await sidecar.waitForLog((r) => r.msg === 'config reloaded', { since });
    expect((await chat({ model: 'renamed' })).status).toBe(200);

    since = sidecar.lines.length;
    writeFileSync(sidecar.configPath, original.replace('provider: openai-compatible, model: fake-c', 'provider: nope, model: fake-c'));
    const refused = await sidecar.waitForLog((r) => r.msg === 'config refused; still serving the previous config', { since });
    expect(String(refused.error)).toMatch(/spec\.targets\[0\]\.provider/);
    expect((await chat({ model: 'renamed' })).status).toBe(200);

    const lines = sidecar.lines.length;
    writeFileSync(sidecar.configPath, original);
    sidecar.child.kill('SIGHUP');
    await sidecar.waitForLog((r) => r.msg === 'config reloaded', { since: lines });
    expect((await chat({ model: 'single-alias' })).status).toBe(200);
    expect((await chat({ model: 'renamed' })).status).toBe(404);
  });

  it('never logs the upstream key', () => {
    expect(sidecar.lines.join('\n')).not.toContain('sk-upstream-secret-a');
  });
});
