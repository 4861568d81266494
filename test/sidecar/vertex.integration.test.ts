import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import {
  googleError,
  serviceAccountKey,
  startFakeMetadataServer,
  startFakeTokenEndpoint,
  vertexResponder,
  type FakeMetadataServer,
  type FakeTokenEndpoint,
} from '../support/fake-vertex.js';
import { postChat, startSidecar, type SidecarProcess } from '../support/sidecar-process.js';

/**
 * The vertex and vertex-anthropic providers on the built sidecar process, against fakes of Google
 * Cloud on 127.0.0.1 (test/support/fake-vertex.ts): Vertex AI's publisher endpoints (Gemini's
 * generateContent / streamGenerateContent?alt=sse, Claude's rawPredict / streamRawPredict), a
 * service-account token endpoint that verifies the signed JWT assertion with the account's public
 * key (the key's token_uri points at it), and a GKE metadata server for workload identity
 * (GCE_METADATA_HOST). Checked: non-stream, stream, tool calls, usage in OpenAI's shape and in the
 * usage log with a catalog price, throttling and overload mapped per README's failure table, an
 * unusable key, the token cached across requests, and that no credential (private key, key JSON,
 * assertion, access token) appears in stdout, stderr, /metrics or an error body.
 */

const PROJECT = 'paygo-test-project';
const LOCATION = 'us-central1';
const EMAIL = 'paygo-sidecar@paygo-test-project.iam.gserviceaccount.com';
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const PEM = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
/** A key Google does not know for this account: the token endpoint answers invalid_grant. */
const WRONG_PEM = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const pemBody = (pem: string) => pem.split('\n').filter((l) => l && !l.startsWith('-----')).join('');

let tokens: FakeTokenEndpoint;
let metadata: FakeMetadataServer;
let vertex: FakeUpstream;
let sidecar: SidecarProcess;
let goodKey: string;
let badKey: string;
let stderr = '';
const bodies: string[] = [];

/** YAML double-quoted scalars take JSON string escapes as they are. */
const yamlString = (s: string) => JSON.stringify(s);

const route = (name: string, target: string, extra = '') => `
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: ${name} }
spec:
  model: ${name}
  retry: { attempts: 1 }${extra}
  targets:
    - ${target}
`;

beforeAll(async () => {
  tokens = await startFakeTokenEndpoint({ email: EMAIL, publicKey });
  metadata = await startFakeMetadataServer(PROJECT);
  vertex = await startFakeUpstream(vertexResponder({ project: PROJECT, location: LOCATION, tokens: () => [...tokens.issued, ...metadata.issued] }));
  goodKey = serviceAccountKey({ email: EMAIL, privateKeyPem: PEM, projectId: PROJECT, tokenUri: tokens.tokenUri });
  badKey = serviceAccountKey({ email: EMAIL, privateKeyPem: WRONG_PEM, projectId: PROJECT, tokenUri: tokens.tokenUri });
  const base = `baseURL: "${vertex.url}", region: ${LOCATION}`;
  const config = [
    route('gemini', `{ name: gemini, provider: vertex, model: gemini-2.0-flash-001, ${base}, credentials: { secretRef: { name: gcp, key: key.json } } }`),
    route('claude', `{ name: claude, provider: vertex-anthropic, model: "claude-3-5-haiku@20241022", ${base}, credentials: { secretRef: { name: gcp, key: key.json } } }`),
    route('gemini-wi', `{ name: gemini-wi, provider: vertex, model: gemini-2.0-flash-001, ${base}, project: ${PROJECT} }`),
    route('claude-badkey', `{ name: claude-badkey, provider: vertex-anthropic, model: "claude-3-5-haiku@20241022", ${base}, credentials: { secretRef: { name: gcp, key: bad.json } } }`),
    `
apiVersion: v1
kind: Secret
metadata: { name: gcp }
stringData:
  key.json: ${yamlString(goodKey)}
  bad.json: ${yamlString(badKey)}
`,
  ].join('---\n');
  sidecar = await startSidecar(config, { env: { GCE_METADATA_HOST: metadata.host } });
  sidecar.child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
});
afterAll(async () => {
  await sidecar?.stop();
  await vertex?.close();
  await tokens?.close();
  await metadata?.close();
});

async function send(model: string, body: Record<string, unknown>): Promise<{ res: Response; text: string }> {
  const res = await postChat(sidecar, { model, ...body });
  const text = await res.text();
  bodies.push(text);
  return { res, text };
}

/** The JSON payloads of an OpenAI SSE response ([DONE] as the string). */
function sse(text: string): unknown[] {
  return text
    .split('\n\n')
    .filter(Boolean)
    .map((f) => f.replace(/^data: /, ''))
    .map((d) => (d === '[DONE]' ? d : JSON.parse(d)));
}

type Chunk = { choices: Array<{ delta: { content?: string; tool_calls?: Array<{ function: { name?: string; arguments?: string } }> }; finish_reason: string | null }>; usage?: Record<string, unknown> };

const hello = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hello from paygo' },
];
const weatherTool = {
  type: 'function',
  function: { name: 'get_current_weather', description: 'Get the current weather in a given location', parameters: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] } },
};

describe('vertex (Gemini on Vertex AI)', () => {
  it('non-stream: the Vertex URL with a Bearer token from the service-account key; OpenAI usage; priced', async () => {
    const since = vertex.requests.length;
    const { res, text } = await send('gemini', { messages: hello });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-paygo-provider')).toBe('vertex');
    const body = JSON.parse(text) as { choices: Array<{ message: { content: string } }>; model: string; usage: Record<string, unknown> };
    expect(body.choices[0]?.message.content).toBe('Gemini echo: Hello from paygo');
    expect(body.model).toBe('gemini-2.0-flash-001');
    // fake: prompt = 5 words (system + user), output = 5 pieces
    expect(body.usage).toEqual({ prompt_tokens: 5, completion_tokens: 5, total_tokens: 10, prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 }, cost: 0.0000025 });
    // $0.10 in / $0.40 out per million (catalog google gemini-2.0-flash): 5 × 0.10 + 5 × 0.40 = 2.5 µUSD
    expect(res.headers.get('x-paygo-cost-usd')).toBe('0.000002500');
    const [req] = vertex.requests.slice(since);
    expect(req?.url).toBe(`/v1/projects/${PROJECT}/locations/${LOCATION}/publishers/google/models/gemini-2.0-flash-001:generateContent`);
    expect(req?.headers.authorization).toBe(`Bearer ${tokens.grants[0]?.token}`);
    expect(req?.body).toEqual({ systemInstruction: { parts: [{ text: 'Be brief.' }] }, contents: [{ role: 'user', parts: [{ text: 'Hello from paygo' }] }] });
    const log = await sidecar.waitForLog((r) => r.msg === 'usage' && r.route === 'gemini');
    expect(log).toMatchObject({ provider: 'vertex', providerModel: 'gemini-2.0-flash-001', priced: true, estimated: false, costNanoUsd: 2500, tokens: { input: 5, output: 5, cacheRead: 0, cacheWrite: 0, reasoning: 0 } });
  });

  it('stream: SSE from :streamGenerateContent?alt=sse, usage chunk when asked', async () => {
    const since = vertex.requests.length;
    const { res, text } = await send('gemini', { messages: hello, stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    const events = sse(text);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1) as Chunk[];
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Gemini echo: Hello from paygo');
    expect(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0]?.finish_reason).toBe('stop');
    expect(chunks.at(-1)?.usage).toMatchObject({ prompt_tokens: 5, completion_tokens: 5, total_tokens: 10 });
    expect(vertex.requests[since]?.url).toBe(`/v1/projects/${PROJECT}/locations/${LOCATION}/publishers/google/models/gemini-2.0-flash-001:streamGenerateContent?alt=sse`);
  });

  it('a tool call comes back as OpenAI tool_calls', async () => {
    const { res, text } = await send('gemini', { messages: [{ role: 'user', content: 'Weather in Boston?' }], tools: [weatherTool], tool_choice: 'required' });
    expect(res.status).toBe(200);
    const body = JSON.parse(text) as { choices: Array<{ message: { tool_calls: Array<{ function: { name: string; arguments: string } }> }; finish_reason: string }> };
    expect(body.choices[0]?.finish_reason).toBe('tool_calls');
    expect(body.choices[0]?.message.tool_calls[0]?.function).toEqual({ name: 'get_current_weather', arguments: JSON.stringify({ prompt: 'Weather in Boston?' }) });
  });

  it('429 RESOURCE_EXHAUSTED → 429 upstream_rate_limited; 503 UNAVAILABLE → 503 upstream_overloaded', async () => {
    vertex.fault({ kind: 'status', status: 429, body: googleError(429, 'RESOURCE_EXHAUSTED', 'Resource exhausted, please try again later.') });
    const limited = await send('gemini', { messages: hello });
    expect(limited.res.status).toBe(429);
    expect(JSON.parse(limited.text)).toMatchObject({ error: { code: 'upstream_rate_limited' } });
    expect(limited.text).toContain('Resource exhausted, please try again later.');

    vertex.fault({ kind: 'status', status: 503, body: googleError(503, 'UNAVAILABLE', 'The model is overloaded. Please try again later.'), headers: { 'retry-after': '7' } });
    const overloaded = await send('gemini', { messages: hello });
    expect(overloaded.res.status).toBe(503);
    expect(overloaded.res.headers.get('retry-after')).toBe('7');
    expect(JSON.parse(overloaded.text)).toMatchObject({ error: { code: 'upstream_overloaded' } });
  });

  it('without credentials the token comes from the metadata server (workload identity)', async () => {
    const since = vertex.requests.length;
    const { res } = await send('gemini-wi', { messages: hello });
    expect(res.status).toBe(200);
    const [token] = [...metadata.issued];
    expect(token).toBeDefined();
    expect(vertex.requests[since]?.headers.authorization).toBe(`Bearer ${token}`);
    expect(metadata.paths.some((p) => p.startsWith('/computeMetadata/v1/instance/service-accounts/default/token?scopes='))).toBe(true);
  });
});

describe('vertex-anthropic (Claude on Vertex AI)', () => {
  it('non-stream: :rawPredict with anthropic_version and no model in the body; OpenAI usage; priced', async () => {
    const since = vertex.requests.length;
    const { res, text } = await send('claude', { messages: hello, max_tokens: 64 });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-paygo-provider')).toBe('vertex-anthropic');
    const body = JSON.parse(text) as { id: string; choices: Array<{ message: { content: string } }>; usage: Record<string, unknown> };
    expect(body.id).toMatch(/^msg_vrtx_/);
    expect(body.choices[0]?.message.content).toMatch(/Hello from paygo/);
    expect(body.usage).toMatchObject({ prompt_tokens: expect.any(Number), completion_tokens: expect.any(Number), prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 } });
    expect(res.headers.get('x-paygo-cost-usd')).toMatch(/^0\.\d{9}$/);
    const [req] = vertex.requests.slice(since);
    expect(req?.url).toBe(`/v1/projects/${PROJECT}/locations/${LOCATION}/publishers/anthropic/models/claude-3-5-haiku@20241022:rawPredict`);
    expect(req?.body).toEqual({ anthropic_version: 'vertex-2023-10-16', max_tokens: 64, system: 'Be brief.', messages: [{ role: 'user', content: 'Hello from paygo' }] });
    const log = await sidecar.waitForLog((r) => r.msg === 'usage' && r.route === 'claude');
    expect(log).toMatchObject({ provider: 'vertex-anthropic', priced: true, estimated: false });
  });

  it('stream: :streamRawPredict with "stream": true, translated chunk by chunk', async () => {
    const since = vertex.requests.length;
    const { res, text } = await send('claude', { messages: hello, stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    const events = sse(text);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1) as Chunk[];
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toMatch(/Hello from paygo/);
    expect(chunks.at(-1)?.usage).toMatchObject({ prompt_tokens: expect.any(Number), completion_tokens: expect.any(Number) });
    expect(vertex.requests[since]?.url).toMatch(/:streamRawPredict$/);
    expect((vertex.requests[since]?.body as { stream?: boolean }).stream).toBe(true);
  });

  it('a forced tool call streams as OpenAI tool_calls', async () => {
    const { res, text } = await send('claude', { messages: [{ role: 'user', content: 'Weather in Boston?' }], tools: [weatherTool], tool_choice: 'required', stream: true });
    expect(res.status).toBe(200);
    const chunks = sse(text).slice(0, -1) as Chunk[];
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls[0]?.function.name).toBe('get_current_weather');
    expect(JSON.parse(calls.map((c) => c.function.arguments ?? '').join(''))).toBeTypeOf('object');
    expect(chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0]?.finish_reason).toBe('tool_calls');
  });

  it('529 overloaded_error → 503 upstream_overloaded', async () => {
    vertex.fault({ kind: 'status', status: 529, body: JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }) });
    const { res, text } = await send('claude', { messages: hello });
    expect(res.status).toBe(503);
    expect(JSON.parse(text)).toMatchObject({ error: { code: 'upstream_overloaded' } });
    expect(text).toContain('Overloaded');
  });

  it('a key the token endpoint refuses (invalid_grant) → 502 upstream_auth_failed naming the problem, no request to Vertex', async () => {
    const since = vertex.requests.length;
    const { res, text } = await send('claude-badkey', { messages: hello });
    expect(res.status).toBe(502);
    const err = JSON.parse(text) as { error: { code: string; message: string } };
    expect(err.error.code).toBe('upstream_auth_failed');
    expect(err.error.message).toContain('the token endpoint refused the credentials (HTTP 400, invalid_grant: Invalid JWT Signature.)');
    expect(vertex.requests.length).toBe(since);
  });
});

describe('vertex: credentials', () => {
  it('one token grant per key for all requests (cached by the library until shortly before expiry)', () => {
    expect(tokens.grants.length).toBe(1);
    expect(tokens.grants[0]?.claims).toMatchObject({ iss: EMAIL, aud: tokens.tokenUri, scope: 'https://www.googleapis.com/auth/cloud-platform' });
    expect(metadata.issued.size).toBe(1);
  });

  it('no private key, key JSON, assertion or access token in stdout, stderr, /metrics or error bodies', async () => {
    const metrics = await (await fetch(sidecar.metricsUrl)).text();
    expect(metrics).toContain('paygo_requests_total');
    const secrets = [
      pemBody(PEM).slice(0, 40),
      pemBody(PEM).slice(-40),
      pemBody(WRONG_PEM).slice(0, 40),
      goodKey.slice(0, 40),
      badKey.slice(0, 40),
      ...tokens.grants.flatMap((g) => [g.token, g.assertion.split('.')[2] as string]),
      ...metadata.issued,
    ];
    expect(secrets.length).toBeGreaterThan(6);
    const everything = [sidecar.lines.join('\n'), stderr, metrics, bodies.join('\n')];
    for (const text of everything) for (const s of secrets) expect(text).not.toContain(s);
    // the logs do name what failed
    expect(sidecar.lines.join('\n')).toContain('invalid_grant');
  });
});
