import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { anthropicOverloaded, anthropicResponder } from '../support/fake-anthropic.js';
import { openaiResponder } from '../support/fake-openai.js';
import { startFakeUpstream, type Fault, type FakeUpstream } from '../support/fake-upstream.js';
import { postChat, startSidecar, type SidecarProcess } from '../support/sidecar-process.js';

/**
 * The README's status mapping ("Errors": what the client gets when every target failed), one
 * row per failure class, on the built sidecar process in front of fake providers.
 */
let openai: FakeUpstream;
let anthropic: FakeUpstream;
let sidecar: SidecarProcess;

const config = () => `
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: compat }
spec:
  model: compat
  targets:
    - { name: only, provider: openai-compatible, model: fake, baseURL: ${openai.url}/v1, timeoutMs: 300 }
  retry: { attempts: 1 }
  circuitBreaker: { consecutiveFailures: 1000, cooldownMs: 100 }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: compat-throttled }
spec:
  model: compat-throttled
  targets:
    - { name: only, provider: openai-compatible, model: fake, baseURL: ${openai.url}/v1, timeoutMs: 300 }
  retry: { attempts: 1 }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: claude }
spec:
  model: claude
  targets:
    - { name: claude, provider: anthropic, model: claude-3-5-haiku-latest, baseURL: ${anthropic.url}, credentials: { secretRef: { name: keys, key: anthropic } } }
  retry: { attempts: 1 }
  circuitBreaker: { consecutiveFailures: 1000, cooldownMs: 100 }
---
apiVersion: v1
kind: Secret
metadata: { name: keys }
stringData: { anthropic: sk-ant-test }
`;

beforeAll(async () => {
  openai = await startFakeUpstream(openaiResponder());
  anthropic = await startFakeUpstream(anthropicResponder);
  sidecar = await startSidecar(config());
});
afterAll(async () => {
  await sidecar?.stop();
  await Promise.all([openai?.close(), anthropic?.close()]);
});

async function failWith(upstream: FakeUpstream, model: string, fault: Fault, stream = false) {
  upstream.fault(fault);
  const res = await postChat(sidecar, { model, stream, messages: [{ role: 'user', content: 'hi' }] });
  const body = (await res.json()) as { error: { type: string; code: string; message: string } };
  return { status: res.status, retryAfter: res.headers.get('retry-after'), code: body.error.code, type: body.error.type };
}

describe('status mapping when every target failed', () => {
  // A 429 with Retry-After makes its target back off for that long (README "Rate limits"): a route of its own.
  it('openai-compatible: 429 with Retry-After → 429 upstream_rate_limited', async () => {
    expect(await failWith(openai, 'compat-throttled', { kind: 'status', status: 429, headers: { 'retry-after': '7' } })).toMatchObject({ status: 429, code: 'upstream_rate_limited', retryAfter: '7' });
  });

  it.each([
    ['503 with Retry-After', 503, 'upstream_overloaded', '30', { kind: 'status', status: 503, headers: { 'retry-after': '30' } }],
    ['503 without Retry-After', 503, 'upstream_overloaded', null, { kind: 'status', status: 503 }],
    ['500', 502, 'upstream_failed', null, { kind: 'status', status: 500 }],
    ['502', 502, 'upstream_failed', null, { kind: 'status', status: 502 }],
    ['connection reset', 502, 'upstream_failed', null, { kind: 'reset' }],
    ['a body that is not JSON', 502, 'upstream_failed', null, { kind: 'garbage' }],
    ['no answer within timeoutMs', 504, 'upstream_timeout', null, { kind: 'hang' }],
    ['401 (paygo’s key refused)', 502, 'upstream_auth_failed', null, { kind: 'status', status: 401 }],
    ['400 (the request refused)', 400, 'upstream_rejected_request', null, { kind: 'status', status: 400, body: '{"error":{"message":"bad temperature","type":"invalid_request_error"}}' }],
  ] as const)('openai-compatible: %s → %i %s', async (_name, status, code, retryAfter, fault) => {
    expect(await failWith(openai, 'compat', fault)).toMatchObject({ status, code, retryAfter });
  });

  it('anthropic 529 overloaded_error with Retry-After → 503 upstream_overloaded, Retry-After passed on', async () => {
    const out = await failWith(anthropic, 'claude', { kind: 'status', status: 529, body: anthropicOverloaded, headers: { 'retry-after': '12' } });
    expect(out).toEqual({ status: 503, code: 'upstream_overloaded', type: 'upstream_error', retryAfter: '12' });
  });

  it('anthropic stream opening with an overloaded_error event → 503 upstream_overloaded (nothing was streamed yet)', async () => {
    anthropic.respondWith(() => ({ kind: 'sse', frames: [`event: error\ndata: ${anthropicOverloaded}\n\n`] }));
    try {
      const res = await postChat(sidecar, { model: 'claude', stream: true, messages: [{ role: 'user', content: 'hi' }] });
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('upstream_overloaded');
    } finally {
      anthropic.respondWith(anthropicResponder);
    }
  });

  it('the usage log records the status and the error code', async () => {
    const since = sidecar.lines.length;
    await failWith(openai, 'compat', { kind: 'status', status: 503 });
    const rec = await sidecar.waitForLog((r) => r.msg === 'usage' && r.route === 'compat', { since });
    expect(rec).toMatchObject({ status: 503, errorType: 'upstream_overloaded', outcome: 'upstream_error' });
  });
});
