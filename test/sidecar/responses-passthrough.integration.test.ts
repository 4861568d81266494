import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { anthropicResponder } from '../support/fake-anthropic.js';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest, type Reply } from '../support/fake-upstream.js';
import { startSidecar, type SidecarProcess } from '../support/sidecar-process.js';

/**
 * A Responses request only OpenAI can answer (a hosted tool, an id the sidecar never issued)
 * passes through to the route's openai target unchanged but for model: the client gets OpenAI's
 * answer as it came, with usage.cost. Targets that cannot take it are skipped; a route without
 * such a target refuses it. The fake's answers follow OpenAI's web search guide and the
 * Responses streaming reference.
 */

const RESPONSE = JSON.stringify({
  id: 'resp_68a0openai000000000000000000000000000000000001',
  object: 'response',
  created_at: 1755000000,
  status: 'completed',
  model: 'gpt-4.1-2025-04-14',
  output: [
    { type: 'web_search_call', id: 'ws_68a0', status: 'completed', action: { type: 'search', query: 'positive news today' } },
    {
      type: 'message',
      id: 'msg_68a0',
      status: 'completed',
      role: 'assistant',
      content: [{ type: 'output_text', text: 'A new park opened.', annotations: [{ type: 'url_citation', start_index: 0, end_index: 18, url: 'https://example.com/park', title: 'Park' }] }],
    },
  ],
  tools: [{ type: 'web_search' }],
  usage: { input_tokens: 320, input_tokens_details: { cached_tokens: 0 }, output_tokens: 12, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 332 },
});

const event = (type: string, data: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
const STREAM = [
  event('response.created', { sequence_number: 0, response: { id: 'resp_stream1', object: 'response', status: 'in_progress', model: 'gpt-4.1-2025-04-14', output: [], usage: null } }),
  event('response.output_item.added', { sequence_number: 1, output_index: 0, item: { type: 'web_search_call', id: 'ws_1', status: 'in_progress' } }),
  event('response.web_search_call.completed', { sequence_number: 2, output_index: 0, item_id: 'ws_1' }),
  event('response.output_item.added', { sequence_number: 3, output_index: 1, item: { type: 'message', id: 'msg_1', status: 'in_progress', role: 'assistant', content: [] } }),
  event('response.output_text.delta', { sequence_number: 4, item_id: 'msg_1', output_index: 1, content_index: 0, delta: 'A new park', logprobs: [] }),
  event('response.output_text.delta', { sequence_number: 5, item_id: 'msg_1', output_index: 1, content_index: 0, delta: ' opened.', logprobs: [] }),
  event('response.output_item.done', { sequence_number: 6, output_index: 1, item: { type: 'message', id: 'msg_1', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'A new park opened.', annotations: [] }] } }),
  event('response.completed', {
    sequence_number: 7,
    response: { id: 'resp_stream1', object: 'response', status: 'completed', model: 'gpt-4.1-2025-04-14', output: [], usage: { input_tokens: 320, input_tokens_details: { cached_tokens: 256 }, output_tokens: 12, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 332 } },
  }),
];

let openai: FakeUpstream;
let anthropic: FakeUpstream;
let sidecar: SidecarProcess;

function responsesApi(req: RecordedRequest): Reply {
  if (req.url !== '/v1/responses') return { kind: 'json', status: 404, body: { error: { message: 'not found', type: 'invalid_request_error', param: null, code: null } } };
  if ((req.body as { stream?: boolean }).stream) return { kind: 'sse', frames: STREAM };
  return { kind: 'raw', body: RESPONSE, headers: { 'content-type': 'application/json' } };
}

beforeAll(async () => {
  openai = await startFakeUpstream(responsesApi);
  anthropic = await startFakeUpstream(anthropicResponder);
  sidecar = await startSidecar(`
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: search }
spec:
  model: search
  strategy: fallback
  targets:
    - { name: claude, provider: anthropic, model: claude-sonnet-4-5-20250929, baseURL: "${anthropic.url}", credentials: { secretRef: { name: keys, key: anthropic } } }
    - { name: gpt, provider: openai, model: gpt-4.1, baseURL: "${openai.url}/v1", credentials: { secretRef: { name: keys, key: openai } } }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: claude-only }
spec:
  model: claude-only
  targets:
    - { provider: anthropic, model: claude-sonnet-4-5-20250929, baseURL: "${anthropic.url}", credentials: { secretRef: { name: keys, key: anthropic } } }
---
apiVersion: v1
kind: Secret
metadata: { name: keys }
stringData: { anthropic: sk-ant-route-key, openai: sk-openai-route-key }
`);
});
afterAll(async () => {
  await sidecar?.stop();
  await openai?.close();
  await anthropic?.close();
});

function post(payload: unknown, requestId: string): Promise<Response> {
  return fetch(`${sidecar.url}/v1/responses`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-client-key', 'x-request-id': requestId },
    body: JSON.stringify(payload),
  });
}

async function usageLine(requestId: string): Promise<Record<string, unknown>> {
  return sidecar.usageLine(requestId);
}

const search = { model: 'search', input: 'What was a positive news story from today?', tools: [{ type: 'web_search' }], max_output_tokens: 500 };

describe('Responses passthrough for what only OpenAI can answer', () => {
  it('a hosted tool: the anthropic target is skipped, OpenAI gets the body as sent, the client its answer with usage.cost', async () => {
    const [a, o] = [anthropic.requests.length, openai.requests.length];
    const res = await post(search, 'rp-hosted');
    expect(res.status).toBe(200);
    expect(res.headers.get('x-paygo-target')).toBe('gpt');
    const line = await usageLine('rp-hosted');
    expect(line).toMatchObject({ api: 'responses', target: 'gpt', outcome: 'success', estimated: false, tokens: { input: 320, output: 12, cacheRead: 0, cacheWrite: 0, reasoning: 0 } });
    const cost = Number(line.costUsd);
    expect(cost).toBeGreaterThan(0);
    expect(res.headers.get('x-paygo-cost-usd')).toBe(line.costUsd);
    const provider = JSON.parse(RESPONSE) as { usage: object };
    expect(await res.json()).toEqual({ ...provider, usage: { ...provider.usage, cost } });
    expect(anthropic.requests.length).toBe(a);
    const sent = openai.requests.slice(o);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.body).toEqual({ ...search, model: 'gpt-4.1' });
    expect(sent[0]!.headers.authorization).toBe('Bearer sk-openai-route-key');
  });

  it('streamed: OpenAI events as they came, response.completed with usage.cost', async () => {
    const res = await post({ ...search, stream: true }, 'rp-stream');
    expect(res.status).toBe(200);
    const text = await res.text();
    const line = await usageLine('rp-stream');
    expect(line).toMatchObject({ api: 'responses', stream: true, outcome: 'success', tokens: { input: 320, output: 12, cacheRead: 256 } });
    const completed = JSON.parse(STREAM.at(-1)!.split('data: ')[1]!) as { sequence_number: number; response: { usage: object } };
    const closing = event('response.completed', { sequence_number: completed.sequence_number, response: { ...completed.response, usage: { ...completed.response.usage, cost: Number(line.costUsd) } } });
    expect(text).toBe([...STREAM.slice(0, -1), closing].join(''));
  });

  it('a previous_response_id the sidecar never issued is the provider\'s: it passes through', async () => {
    const o = openai.requests.length;
    const res = await post({ model: 'search', input: 'And tomorrow?', previous_response_id: 'resp_68a0openai000000000000000000000000000000000001' }, 'rp-prev');
    expect(res.status).toBe(200);
    expect(openai.requests.slice(o).map((r) => (r.body as { previous_response_id?: string }).previous_response_id)).toEqual(['resp_68a0openai000000000000000000000000000000000001']);
  });

  it('a route with no target that speaks the Responses API refuses it, naming the parameter; nothing is sent', async () => {
    const a = anthropic.requests.length;
    const res = await post({ ...search, model: 'claude-only' }, 'rp-refused');
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: { message: 'The tool type "web_search" is not supported: paygo serves function tools only (hosted tools run inside OpenAI).', type: 'invalid_request_error', param: 'tools.0.type', code: 'unsupported_parameter' },
    });
    expect(anthropic.requests.length).toBe(a);
  });
});
