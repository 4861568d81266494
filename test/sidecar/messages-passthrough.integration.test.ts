import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openaiResponder } from '../support/fake-openai.js';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest, type Reply } from '../support/fake-upstream.js';
import { startSidecar, type SidecarProcess } from '../support/sidecar-process.js';

/**
 * /v1/messages to a target that speaks the Messages API (anthropic) passes through: the provider
 * gets the client's body as it came (only model and the output cap set for the target, the
 * client's betas, the route's key), and the client gets the provider's answer as it came, with
 * usage.cost added. A target that does not speak it (openai) gets the translation.
 * The fake answers are the examples of Anthropic's docs (extended thinking, streaming guide).
 */

const NON_STREAM = JSON.stringify({
  id: 'msg_01PassThroughExample00000',
  type: 'message',
  role: 'assistant',
  model: 'claude-sonnet-4-5-20250929',
  content: [
    { type: 'thinking', thinking: 'Let me think step by step.', signature: 'EuYBCkQYAiJA' },
    { type: 'text', text: 'Paris.' },
  ],
  stop_reason: 'stop_sequence',
  stop_sequence: '###',
  usage: { input_tokens: 12, cache_creation_input_tokens: 0, cache_read_input_tokens: 2048, output_tokens: 40, service_tier: 'standard' },
});

const STREAM_FRAMES = [
  'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_01PassThroughStream000000","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":2048,"output_tokens":1}}}\n\n',
  'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}\n\n',
  'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Step by step."}}\n\n',
  'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM"}}\n\n',
  'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
  'event: ping\ndata: {"type": "ping"}\n\n',
  'event: content_block_start\ndata: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}\n\n',
  'event: content_block_delta\ndata: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Paris."}}\n\n',
  'event: content_block_stop\ndata: {"type":"content_block_stop","index":1}\n\n',
  'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":40}}\n\n',
  'event: message_stop\ndata: {"type":"message_stop"}\n\n',
];

let anthropic: FakeUpstream;
let openai: FakeUpstream;
let sidecar: SidecarProcess;

function claude(req: RecordedRequest): Reply {
  if ((req.body as { stream?: boolean }).stream) return { kind: 'sse', frames: STREAM_FRAMES };
  return { kind: 'raw', body: NON_STREAM, headers: { 'content-type': 'application/json' } };
}

beforeAll(async () => {
  anthropic = await startFakeUpstream(claude);
  openai = await startFakeUpstream(openaiResponder());
  sidecar = await startSidecar(`
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: claude }
spec:
  model: claude
  limits: { maxOutputTokens: 1000 }
  targets:
    - { provider: anthropic, model: claude-sonnet-4-5-20250929, baseURL: "${anthropic.url}", credentials: { secretRef: { name: keys, key: anthropic } } }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: gpt }
spec:
  model: gpt
  targets:
    - { provider: openai, model: gpt-4o-mini, baseURL: "${openai.url}/v1", credentials: { secretRef: { name: keys, key: openai } } }
---
apiVersion: v1
kind: Secret
metadata: { name: keys }
stringData: { anthropic: sk-ant-route-key, openai: sk-openai-route-key }
`);
});
afterAll(async () => {
  await sidecar?.stop();
  await anthropic?.close();
  await openai?.close();
});

/** What Claude Code and other Anthropic clients send: cache_control, thinking, top_k, metadata. */
const body = (model: string, extra: Record<string, unknown> = {}) => ({
  model,
  max_tokens: 4000,
  system: [{ type: 'text', text: 'You are terse.', cache_control: { type: 'ephemeral' } }],
  messages: [{ role: 'user', content: [{ type: 'text', text: 'Capital of France?', cache_control: { type: 'ephemeral', ttl: '1h' } }] }],
  thinking: { type: 'enabled', budget_tokens: 2048 },
  top_k: 5,
  stop_sequences: ['###'],
  metadata: { user_id: 'u-1' },
  ...extra,
});

function post(payload: unknown, requestId: string): Promise<Response> {
  return fetch(`${sidecar.url}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': 'sk-ant-client-key', 'anthropic-version': '2023-06-01', 'anthropic-beta': 'context-1m-2025-08-07', 'x-request-id': requestId },
    body: JSON.stringify(payload),
  });
}

async function costOf(requestId: string): Promise<number> {
  const line = await sidecar.usageLine(requestId);
  expect(line.api).toBe('messages');
  return Number(line.costUsd);
}

describe('Messages API passthrough to a Messages-speaking target', () => {
  it('non-stream: the provider gets the body as sent (model and the route cap set), the client the answer as it came plus usage.cost', async () => {
    const since = anthropic.requests.length;
    const res = await post(body('claude'), 'pt-nonstream');
    expect(res.status).toBe(200);
    expect(res.headers.get('x-paygo-provider')).toBe('anthropic');
    const answer = await res.json();
    const cost = await costOf('pt-nonstream');
    expect(cost).toBeGreaterThan(0);
    expect(res.headers.get('x-paygo-cost-usd')).toBe(cost.toFixed(9));
    const provider = JSON.parse(NON_STREAM) as { usage: object };
    expect(answer).toEqual({ ...provider, usage: { ...provider.usage, cost } });

    const sent = anthropic.requests.slice(since);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.url).toBe('/v1/messages');
    // max_tokens: the route's limits.maxOutputTokens (1000) caps the client's 4000
    expect(sent[0]!.body).toEqual({ ...body('claude'), model: 'claude-sonnet-4-5-20250929', max_tokens: 1000 });
    expect(sent[0]!.headers['x-api-key']).toBe('sk-ant-route-key');
    expect(sent[0]!.headers['anthropic-beta']).toBe('context-1m-2025-08-07');
    expect(sent[0]!.rawBody).not.toContain('sk-ant-client-key');
  });

  it('stream: the provider events byte for byte, but message_delta carries usage.cost', async () => {
    const res = await post(body('claude', { stream: true }), 'pt-stream');
    expect(res.status).toBe(200);
    const text = await res.text();
    const cost = await costOf('pt-stream');
    const delta = '{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":40,"cost":' + JSON.stringify(cost) + '}}';
    expect(text).toBe([...STREAM_FRAMES.slice(0, -2), `event: message_delta\ndata: ${delta}\n\n`, STREAM_FRAMES.at(-1)].join(''));
    // priced from usage: 12 input + 2048 cache reads + 40 output, as the stream reported them
    const line = sidecar.usage().find((r) => r.requestId === 'pt-stream')!;
    expect(line.tokens).toEqual({ input: 2060, output: 40, cacheRead: 2048, cacheWrite: 0, reasoning: 0 });
    expect(line.estimated).toBe(false);
  });

  it('stream at a model\'s pace: a thinking block reaches the client as it comes, before the provider has sent any text', async () => {
    anthropic.respondWith(() => ({ kind: 'sse', frames: STREAM_FRAMES, frameDelayMs: 150 }));
    try {
      const before = anthropic.framesSent;
      const res = await post(body('claude', { stream: true }), 'pt-thinking');
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let text = '';
      while (!text.includes('"thinking_delta"')) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      // Frame 7 is the first text delta: the client had the thinking long before it existed.
      expect(anthropic.framesSent - before).toBeLessThan(7);
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
      }
      expect(text.startsWith(STREAM_FRAMES.slice(0, 3).join(''))).toBe(true);
      expect(text).toContain('event: message_stop');
    } finally {
      anthropic.respondWith(claude);
    }
  });

  it('what only a Messages-speaking provider can take (a PDF document, a server tool) passes through there, and is refused elsewhere naming the field', async () => {
    const pdf = {
      model: 'claude',
      max_tokens: 200,
      messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBERi0xLjQK' } }, { type: 'text', text: 'Summarise.' }] }],
      tools: [{ type: 'web_search_20250305', name: 'web_search', max_uses: 2 }],
    };
    const since = anthropic.requests.length;
    const res = await post(pdf, 'pt-document');
    expect(res.status).toBe(200);
    const provider = JSON.parse(NON_STREAM) as { usage: object };
    const line = await sidecar.usageLine('pt-document');
    expect(await res.json()).toEqual({ ...provider, usage: { ...provider.usage, cost: Number(line.costUsd) } });
    expect(anthropic.requests.slice(since).map((r) => r.body)).toEqual([{ ...pdf, model: 'claude-sonnet-4-5-20250929' }]);

    const o = openai.requests.length;
    const refused = await post({ ...pdf, model: 'gpt' }, 'pt-document-refused');
    expect(refused.status).toBe(400);
    expect(await refused.json()).toEqual({
      type: 'error',
      error: { type: 'invalid_request_error', message: expect.stringMatching(/^messages\.0\.content\.0\.type: Content block type "document" is not supported/) },
    });
    expect(openai.requests.length).toBe(o);
  });

  it('a target that does not speak the Messages API gets the translation, and the client still a Message', async () => {
    const since = openai.requests.length;
    const res = await post({ model: 'gpt', max_tokens: 50, messages: [{ role: 'user', content: 'Hello there' }] }, 'pt-translated');
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { type: string; content: Array<{ type: string }>; usage: { cost: number } };
    expect(answer.type).toBe('message');
    expect(answer.content[0]!.type).toBe('text');
    expect(answer.usage.cost).toBe(await costOf('pt-translated'));
    const sent = openai.requests.slice(since);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.url).toBe('/v1/chat/completions');
    expect((sent[0]!.body as { messages: unknown }).messages).toEqual([{ role: 'user', content: 'Hello there' }]);
    expect(sent[0]!.headers.authorization).toBe('Bearer sk-openai-route-key');
    expect(sent[0]!.headers['anthropic-beta']).toBeUndefined();
  });
});
