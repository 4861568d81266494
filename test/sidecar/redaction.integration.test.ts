import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest, type Reply } from '../support/fake-upstream.js';
import { BOT_KEY_REF, botRouteConfig, postChat, startSidecar, type SidecarProcess } from '../support/sidecar-process.js';

/**
 * Provider text is untrusted (README "Security"): a fake OpenAI-wire provider that echoes the
 * Authorization header it got, the key's base64 and the prompt in its errors. Neither the
 * client's error body, nor a stream's error event, nor any line the sidecar logs may contain them.
 */
const KEY = 'sk-live-9fQ2xLm7Rt4Kp8Vz3Nc6Hb1Jd5Wg0Ys';
const PROMPT = 'Summarise the acquisition of Northwind Traders by Contoso, closing on 14 March, for the board.';
const PREFIX = PROMPT.slice(0, 40);

let upstream: FakeUpstream;
let sidecar: SidecarProcess;

function echo(req: RecordedRequest): string {
  const auth = String(req.headers.authorization);
  return `Incorrect API key provided: ${auth} (${Buffer.from(auth.slice('Bearer '.length)).toString('base64')}). Your prompt was: ${req.rawBody}`;
}

/** Which echo the fake sends is chosen by the request's last message ("mode: …"). */
function responder(req: RecordedRequest): Reply {
  const messages = (req.body as { messages: Array<{ content: string }> }).messages;
  const mode = messages[messages.length - 1]!.content;
  const error = (code: string) => ({ error: { message: echo(req), type: 'invalid_request_error', param: null, code } });
  if (mode === 'mode: 400') return { kind: 'json', status: 400, body: error('content_filter') };
  if (mode === 'mode: 401') return { kind: 'json', status: 401, body: error('invalid_api_key') };
  if (mode === 'mode: 429') return { kind: 'json', status: 429, body: error('rate_limit_exceeded') };
  const chunk = { id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'fake', choices: [{ index: 0, delta: { content: 'Partly' }, finish_reason: null }] };
  const failure = `data: ${JSON.stringify(error('server_error'))}\n\n`;
  if (mode === 'mode: stream-first') return { kind: 'sse', frames: [failure] };
  // Apart, so the sidecar commits to the stream with the first chunk before the error comes.
  return { kind: 'sse', frames: [`data: ${JSON.stringify(chunk)}\n\n`, failure], frameDelayMs: 100 };
}

beforeAll(async () => {
  upstream = await startFakeUpstream(responder);
  sidecar = await startSidecar(
    botRouteConfig([`{ name: echo, provider: openai-compatible, model: fake, baseURL: ${upstream.url}/v1, ${BOT_KEY_REF} }`], {
      apiKey: KEY,
      spec: ['retry: { attempts: 1 }', 'circuitBreaker: { consecutiveFailures: 1000, cooldownMs: 100 }'],
    }),
  );
});
afterAll(async () => {
  await sidecar?.stop();
  await upstream?.close();
});

const ask = (mode: string, stream = false) =>
  postChat(sidecar, { model: 'bot', stream, messages: [{ role: 'user', content: PROMPT }, { role: 'user', content: mode }] });

/** Every way the key or the prompt could show: the key, 8-character pieces of it and of its base64, 16-character pieces of the prompt. */
function leaks(text: string): string[] {
  const b64 = Buffer.from(KEY).toString('base64');
  const pieces = [KEY, ...[0, 8, 16, 24, 31].map((i) => KEY.slice(i, i + 8)), ...[4, 12, 20, 28].map((i) => b64.slice(i, i + 8)), ...[0, 20, 40, 60, 76].map((i) => PROMPT.slice(i, i + 16))];
  return pieces.filter((p) => text.includes(p));
}

describe('echoed keys and prompts never leave the sidecar', () => {
  it('the fake really echoes them (the test is not vacuous)', async () => {
    const before = upstream.requests.length;
    await ask('mode: 400');
    const sent = upstream.requests[before]!;
    expect(echo(sent)).toContain(KEY);
    expect(echo(sent)).toContain(PREFIX);
  });

  it('400: the provider code content_filter and its status reach the client, the echo does not', async () => {
    const res = await ask('mode: 400');
    expect(res.status).toBe(400);
    const text = await res.text();
    expect(leaks(text)).toEqual([]);
    const { error } = JSON.parse(text) as { error: { code: string; type: string; message: string } };
    expect(error).toMatchObject({ code: 'content_filter', type: 'invalid_request_error' });
    expect(error.message).toMatch(/^echo \(openai-compatible\) answered 400: content_filter: Incorrect API key provided: Bearer \[redacted\] \(\[redacted\]\)\. Your prompt was: /);
  });

  it('401 and 429 (the failover classes): paygo’s codes, the message names the provider’s code, no echo', async () => {
    const auth = await ask('mode: 401');
    expect(auth.status).toBe(502);
    const authText = await auth.text();
    expect(leaks(authText)).toEqual([]);
    expect(JSON.parse(authText).error).toMatchObject({ code: 'upstream_auth_failed' });
    expect(JSON.parse(authText).error.message).toContain('answered 401: invalid_api_key: Incorrect API key provided: Bearer [redacted]');
    const limited = await ask('mode: 429');
    expect(limited.status).toBe(429);
    const limitedText = await limited.text();
    expect(leaks(limitedText)).toEqual([]);
    expect(JSON.parse(limitedText).error).toMatchObject({ code: 'upstream_rate_limited' });
  });

  it('a stream whose first event is an error: the JSON error has no echo', async () => {
    const res = await ask('mode: stream-first', true);
    expect(res.status).toBe(502);
    const text = await res.text();
    expect(leaks(text)).toEqual([]);
    expect(JSON.parse(text).error).toMatchObject({ code: 'upstream_failed' });
  });

  it('a stream cut by an error event after the first chunk: the SSE error event has no echo', async () => {
    const res = await ask('mode: stream-late', true);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(leaks(text)).toEqual([]);
    const events = text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => JSON.parse(e.slice('data: '.length)) as Record<string, unknown>);
    expect(events.at(-1)).toEqual({
      error: { message: expect.stringMatching(/^Incorrect API key provided: Bearer \[redacted\] \(\[redacted\]\)\. Your prompt was: /), type: 'server_error', param: null, code: 'upstream_stream_error' },
    });
  });

  it("no log line of the process contains the key or the prompt, though it logged each failed attempt", async () => {
    await sidecar.waitForLog((r) => r.msg === 'usage' && r.status === 200 && r.outcome === 'stream_error');
    const warned = sidecar.lines.filter((l) => l.includes('upstream attempt failed'));
    expect(warned.length).toBeGreaterThanOrEqual(5);
    expect(warned.some((l) => l.includes('Incorrect API key provided: Bearer [redacted]'))).toBe(true);
    expect(sidecar.lines.flatMap(leaks)).toEqual([]);
  });
});
