import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bedrockResponder, eventStreamReply, fixtureEvents, startFakeSts, startPacedBedrock, STS_EXAMPLE_CREDENTIALS, type FakeSts } from '../support/fake-bedrock.js';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest } from '../support/fake-upstream.js';
import { postChat, startSidecar, type SidecarProcess } from '../support/sidecar-process.js';

/**
 * Amazon Bedrock (Converse / ConverseStream) on the built sidecar process. A fake Bedrock runtime
 * on 127.0.0.1 (test/support/fake-bedrock.ts) checks every request's SigV4 signature with its own
 * verifier and answers in Bedrock's wire format (JSON, application/vnd.amazon.eventstream, error
 * bodies with x-amzn-ErrorType); a fake STS answers AssumeRoleWithWebIdentity for a second sidecar
 * that runs with a pod web identity (IRSA: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, STS reached
 * through AWS_ENDPOINT_URL_STS). Checked: non-stream, stream, tool calls, usage in OpenAI's shape
 * (cache reads included), throttling and overload before and inside a stream mapped per the
 * README's failure table, failover before commit, and that no credential reaches the logs, the
 * metrics or an error body.
 */

const ACCESS_KEY_ID = 'AKIAPAYGOBEDROCK7EXA';
const SECRET = 'pAyG0sEcReT/bEdRoCk+K7MDENG/bPxRfiCYEXAMPLE';
const TEMP_KEY_ID = 'ASIAPAYGOTEMPORARY7E';
const TEMP_SECRET = 'tEmPoRaRy/SeCrEt+bPxRfiCYEXAMPLEKEY0000';
const SESSION_TOKEN = 'IQoJb3JpZ2luX2VjEPAYGOsessionTOKENexample0123456789';
const ROLE_ARN = 'arn:aws:iam::123456789012:role/paygo-bedrock';
const WEB_IDENTITY_TOKEN = 'eyJhbGciOiJSUzI1NiIsImtpZCI6InBheWdvIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXBwOndlYiJ9.UEFZR09XRUJJREVOVElUWQ';
const MODEL = 'anthropic.claude-3-5-haiku-20241022-v1:0';
const CREDENTIALS = [SECRET, TEMP_SECRET, SESSION_TOKEN, STS_EXAMPLE_CREDENTIALS.secretAccessKey, STS_EXAMPLE_CREDENTIALS.sessionToken, WEB_IDENTITY_TOKEN];
const ERROR_NS = 'http://internal.amazon.com/coral/com.amazon.bedrock/';
const FIXTURES = join(import.meta.dirname, 'providers/fixtures/bedrock');

let upstream: FakeUpstream;
let paced: { url: string; close(): Promise<void> };
let sts: FakeSts;
let keys: SidecarProcess;
let irsa: SidecarProcess;
const stderr = { keys: '', irsa: '' };

const target = (name: string, region: string, credentials: string, prefix = '') =>
  `{ name: ${name}, provider: bedrock, model: "${MODEL}", region: ${region}, baseURL: "${upstream.url}${prefix}"${credentials ? `, credentials: ${credentials}` : ''} }`;
const KEYS = '{ secretRef: { name: aws, key: AWS_SECRET_ACCESS_KEY }, accessKeyIdRef: { name: aws, key: AWS_ACCESS_KEY_ID } }';
const TEMP = '{ secretRef: { name: aws-temp, key: AWS_SECRET_ACCESS_KEY }, accessKeyIdRef: { name: aws-temp, key: AWS_ACCESS_KEY_ID }, sessionTokenRef: { name: aws-temp, key: AWS_SESSION_TOKEN } }';

const route = (name: string, targets: string[]) => `
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: ${name} }
spec:
  model: ${name}
  retry: { attempts: 1 }
  targets: [${targets.join(', ')}]
`;

const secrets = `
apiVersion: v1
kind: Secret
metadata: { name: aws }
stringData: { AWS_ACCESS_KEY_ID: ${ACCESS_KEY_ID}, AWS_SECRET_ACCESS_KEY: "${SECRET}" }
---
apiVersion: v1
kind: Secret
metadata: { name: aws-temp }
stringData: { AWS_ACCESS_KEY_ID: ${TEMP_KEY_ID}, AWS_SECRET_ACCESS_KEY: "${TEMP_SECRET}", AWS_SESSION_TOKEN: "${SESSION_TOKEN}" }
`;

beforeAll(async () => {
  upstream = await startFakeUpstream(
    bedrockResponder({
      region: 'us-east-1',
      keys: {
        [ACCESS_KEY_ID]: { secretAccessKey: SECRET },
        [TEMP_KEY_ID]: { secretAccessKey: TEMP_SECRET, sessionToken: SESSION_TOKEN },
        [STS_EXAMPLE_CREDENTIALS.accessKeyId]: { secretAccessKey: STS_EXAMPLE_CREDENTIALS.secretAccessKey, sessionToken: STS_EXAMPLE_CREDENTIALS.sessionToken },
      },
      // Targets whose baseURL has these paths get a recorded failing stream instead of an answer.
      scenario: (prefix, stream) => (stream && prefix === '/throttled' ? eventStreamReply(fixtureEvents('stream-throttled.events.json')) : undefined),
    }),
  );
  // The recorded stream that breaks after its first text, its exception in a later write.
  const broken = fixtureEvents('stream-error.events.json');
  paced = await startPacedBedrock({ region: 'us-east-1', keys: { [ACCESS_KEY_ID]: { secretAccessKey: SECRET } }, parts: [broken.slice(0, -1), broken.slice(-1)] });
  sts = await startFakeSts({ roleArn: ROLE_ARN, token: WEB_IDENTITY_TOKEN });

  keys = await startSidecar(
    [
      route('bedrock', [target('bedrock', 'us-east-1', KEYS)]),
      route('bedrock-temp', [target('bedrock-temp', 'us-east-1', TEMP)]),
      route('bedrock-throttled', [target('throttled', 'us-east-1', KEYS, '/throttled')]),
      route('bedrock-broken', [`{ name: broken, provider: bedrock, model: "${MODEL}", region: us-east-1, baseURL: "${paced.url}", credentials: ${KEYS} }`]),
      route('bedrock-failover', [target('throttled', 'us-east-1', KEYS, '/throttled'), target('healthy', 'us-east-1', TEMP)]),
      secrets,
    ].join('---\n'),
  );
  keys.child.stderr!.on('data', (d: string) => (stderr.keys += d));

  const dir = mkdtempSync(join(tmpdir(), 'paygo-irsa-'));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, WEB_IDENTITY_TOKEN);
  irsa = await startSidecar([route('bedrock-irsa', [target('irsa', 'us-east-1', '')]), route('bedrock-irsa-refused', [target('irsa-refused', 'eu-west-1', '')])].join('---\n'), {
    env: {
      AWS_ROLE_ARN: ROLE_ARN,
      AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile,
      AWS_ENDPOINT_URL_STS: sts.url,
      AWS_CONFIG_FILE: join(dir, 'no-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(dir, 'no-credentials'),
    },
  });
  irsa.child.stderr!.on('data', (d: string) => (stderr.irsa += d));
});

afterAll(async () => {
  await keys?.stop();
  await irsa?.stop();
  await upstream?.close();
  await paced?.close();
  await sts?.close();
});

const messages = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hello from paygo' },
];
/** The fake reports the system prompt's 2 words as cache reads and the user's 3 as inputTokens; 5 echoed words out. */
const USAGE = { prompt_tokens: 5, completion_tokens: 5, total_tokens: 10, prompt_tokens_details: { cached_tokens: 2, cache_write_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 } };
const weather = { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { location: { type: 'string' } } } } };

async function ssePayloads(res: Response): Promise<unknown[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter(Boolean)
    .map((frame) => frame.replace(/^data: /, ''))
    .map((data) => (data === '[DONE]' ? data : JSON.parse(data)));
}

const since = () => upstream.requests.length;
const received = (from: number): RecordedRequest[] => upstream.requests.slice(from);
type Chunk = { choices: Array<{ delta: { content?: string; tool_calls?: Array<{ index: number; id?: string; function?: { name?: string; arguments?: string } }> }; finish_reason: string | null }>; usage?: unknown };

describe('bedrock through the sidecar process (keys from a Secret)', () => {
  it('non-stream: 200, SigV4 with the Secret\'s key pair at /model/{id}/converse, OpenAI usage with the cache reads, priced from the catalog', async () => {
    const from = since();
    const res = await postChat(keys, { model: 'bedrock', messages, max_tokens: 64 });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-paygo-provider')).toBe('bedrock');
    expect(res.headers.get('x-paygo-usage-estimated')).toBeNull();
    // The catalog's AWS Bedrock price of Claude 3.5 Haiku: 3 input × $0.80 + 2 cache reads × $0.08 + 5 output × $4 per million.
    expect(res.headers.get('x-paygo-cost-usd')).toBe('0.000022560');
    const body = (await res.json()) as { object: string; model: string; choices: Array<{ message: { content: string }; finish_reason: string }>; usage: unknown };
    expect(body).toMatchObject({ object: 'chat.completion', model: MODEL });
    expect(body.choices[0]).toMatchObject({ message: { role: 'assistant', content: 'Bedrock echo: Hello from paygo' }, finish_reason: 'stop' });
    expect(body.usage).toEqual({ ...USAGE, cost: 0.00002256 });

    const [req] = received(from);
    expect(req!.url).toBe('/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse');
    expect(req!.headers.authorization).toMatch(new RegExp(`^AWS4-HMAC-SHA256 Credential=${ACCESS_KEY_ID}/\\d{8}/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=[0-9a-f]{64}$`));
    expect(req!.headers['x-amz-security-token']).toBeUndefined();
    expect(req!.body).toEqual({ messages: [{ role: 'user', content: [{ text: 'Hello from paygo' }] }], system: [{ text: 'Be brief.' }], inferenceConfig: { maxTokens: 64 } });
  });

  it('stream with include_usage: /converse-stream event-stream translated to chunks, the usage chunk, [DONE]', async () => {
    const from = since();
    const res = await postChat(keys, { model: 'bedrock', messages, stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const payloads = await ssePayloads(res);
    expect(payloads.at(-1)).toBe('[DONE]');
    const chunks = payloads.slice(0, -1) as Chunk[];
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage).toEqual({ ...USAGE, cost: 0.00002256 });
    const content = chunks.slice(0, -1);
    expect(content.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Bedrock echo: Hello from paygo');
    expect(content.flatMap((c) => c.choices.map((ch) => ch.finish_reason)).filter((f) => f != null)).toEqual(['stop']);
    expect(received(from)[0]!.url).toBe('/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream');
  });

  it('a forced tool call, non-stream and streamed, in OpenAI tool_calls', async () => {
    const ask = { model: 'bedrock', messages: [{ role: 'user', content: 'weather in Paris' }], tools: [weather], tool_choice: { type: 'function', function: { name: 'get_weather' } } };
    const from = since();
    const res = await postChat(keys, ask);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { choices: Array<{ message: { content: string | null; tool_calls: Array<{ id: string; function: { name: string; arguments: string } }> }; finish_reason: string }> };
    expect(body.choices[0]!.finish_reason).toBe('tool_calls');
    expect(body.choices[0]!.message.content).toBeNull();
    const [call] = body.choices[0]!.message.tool_calls;
    expect(call!.id).toMatch(/^tooluse_/);
    expect(call!.function.name).toBe('get_weather');
    expect(JSON.parse(call!.function.arguments)).toEqual({ query: 'weather in Paris' });
    expect((received(from)[0]!.body as { toolConfig: unknown }).toolConfig).toEqual({
      tools: [{ toolSpec: { name: 'get_weather', inputSchema: { json: weather.function.parameters } } }],
      toolChoice: { tool: { name: 'get_weather' } },
    });

    const streamed = await postChat(keys, { ...ask, stream: true });
    const chunks = (await ssePayloads(streamed)).slice(0, -1) as Chunk[];
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls[0]).toMatchObject({ index: 0, id: call!.id, function: { name: 'get_weather', arguments: '' } });
    expect(JSON.parse(calls.map((c) => c.function?.arguments ?? '').join(''))).toEqual({ query: 'weather in Paris' });
    expect(chunks.flatMap((c) => c.choices.map((ch) => ch.finish_reason)).filter((f) => f != null)).toEqual(['tool_calls']);
  });

  it('temporary credentials: the session token is sent as x-amz-security-token and signed', async () => {
    const from = since();
    const res = await postChat(keys, { model: 'bedrock-temp', messages });
    expect(res.status).toBe(200);
    const [req] = received(from);
    expect(req!.headers['x-amz-security-token']).toBe(SESSION_TOKEN);
    expect(req!.headers.authorization).toContain(`Credential=${TEMP_KEY_ID}/`);
    expect(req!.headers.authorization).toContain('SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,');
  });

  it('the usage log meters what the client was told, cache reads apart', async () => {
    const id = 'bedrock-usage-log';
    const res = await postChat(keys, { model: 'bedrock', messages }, { headers: { 'content-type': 'application/json', 'x-request-id': id } });
    expect(res.status).toBe(200);
    const rec = await keys.waitForLog((r) => r.msg === 'usage' && r.requestId === id);
    expect(rec).toMatchObject({ provider: 'bedrock', providerModel: MODEL, estimated: false, priced: true, costUsd: '0.000022560', tokens: { input: 5, output: 5, cacheRead: 2, cacheWrite: 0, reasoning: 0 } });
  });
});

describe('bedrock failures (README failure table)', () => {
  it('HTTP 429 ThrottlingException → 429 upstream_rate_limited with Bedrock\'s message', async () => {
    upstream.fault({ kind: 'status', status: 429, body: readFileSync(join(FIXTURES, 'error-429.json'), 'utf8'), headers: { 'x-amzn-errortype': `ThrottlingException:${ERROR_NS}` } });
    const res = await postChat(keys, { model: 'bedrock', messages });
    expect(res.status).toBe(429);
    const err = ((await res.json()) as { error: { code: string; message: string } }).error;
    expect(err.code).toBe('upstream_rate_limited');
    expect(err.message).toContain('Too many tokens, please wait before trying again.');
  });

  it('HTTP 503 ServiceUnavailableException → 503 upstream_overloaded', async () => {
    upstream.fault({ kind: 'status', status: 503, body: JSON.stringify({ message: 'Bedrock is unable to process your request.' }), headers: { 'x-amzn-errortype': `ServiceUnavailableException:${ERROR_NS}` } });
    const res = await postChat(keys, { model: 'bedrock', messages });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('upstream_overloaded');
  });

  it('HTTP 400 ValidationException is the request\'s fault: its status, exception name (code) and message pass through', async () => {
    upstream.fault({ kind: 'status', status: 400, body: readFileSync(join(FIXTURES, 'error-400.json'), 'utf8'), headers: { 'x-amzn-errortype': `ValidationException:${ERROR_NS}` } });
    const res = await postChat(keys, { model: 'bedrock', messages });
    expect(res.status).toBe(400);
    const err = ((await res.json()) as { error: { code: string; type: string; message: string } }).error;
    expect(err).toMatchObject({ code: 'ValidationException', type: 'invalid_request_error' });
    expect(err.message).toContain('A conversation must start with a user message.');
  });

  it('a stream that opens with a throttlingException event → 503 upstream_overloaded (nothing was committed)', async () => {
    const res = await postChat(keys, { model: 'bedrock-throttled', messages, stream: true });
    expect(res.status).toBe(503);
    const err = ((await res.json()) as { error: { code: string; message: string } }).error;
    expect(err.code).toBe('upstream_overloaded');
    expect(err.message).toContain('Too many tokens');
  });

  it('…and with another target the route fails over before committing', async () => {
    const res = await postChat(keys, { model: 'bedrock-failover', messages, stream: true });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-paygo-target')).toBe('healthy');
    expect(res.headers.get('x-paygo-attempts')).toBe('2');
    const payloads = await ssePayloads(res);
    expect(payloads.at(-1)).toBe('[DONE]');
    expect((payloads.slice(0, -1) as Chunk[]).map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Bedrock echo: Hello from paygo');
  });

  it('a modelStreamErrorException after the first text ends the committed stream with an error event and no [DONE]', async () => {
    const res = await postChat(keys, { model: 'bedrock-broken', messages, stream: true });
    expect(res.status).toBe(200);
    const payloads = await ssePayloads(res);
    expect(payloads).not.toContain('[DONE]');
    expect((payloads.slice(0, -1) as Chunk[]).map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Partly');
    expect(payloads.at(-1)).toEqual({ error: { message: 'The model encountered an error while streaming.', type: 'modelStreamErrorException', param: null, code: 'upstream_stream_error' } });
  });
});

describe('bedrock with the pod web identity (IRSA) and a fake STS', () => {
  it('exchanges the web identity token at STS once and signs with the temporary key and session token', async () => {
    const from = since();
    const stsBefore = sts.calls;
    for (const stream of [false, true, false]) {
      const res = await postChat(irsa, { model: 'bedrock-irsa', messages, stream });
      expect(res.status).toBe(200);
      await res.text();
    }
    expect(sts.calls - stsBefore).toBe(1);
    const reqs = received(from);
    expect(reqs).toHaveLength(3);
    for (const req of reqs) {
      expect(req.headers['x-amz-security-token']).toBe(STS_EXAMPLE_CREDENTIALS.sessionToken);
      expect(req.headers.authorization).toContain(`Credential=${STS_EXAMPLE_CREDENTIALS.accessKeyId}/`);
    }
  });

  it('a refused web identity → 502 upstream_auth_failed naming the STS error, never the token', async () => {
    sts.refuse = true;
    try {
      const from = since();
      const res = await postChat(irsa, { model: 'bedrock-irsa-refused', messages });
      expect(res.status).toBe(502);
      const text = await res.text();
      const err = (JSON.parse(text) as { error: { code: string; message: string } }).error;
      expect(err.code).toBe('upstream_auth_failed');
      expect(err.message).toContain('InvalidIdentityToken');
      for (const c of CREDENTIALS) expect(text).not.toContain(c);
      expect(received(from)).toEqual([]);
    } finally {
      sts.refuse = false;
    }
  });
});

describe('no credential leaks', () => {
  it('no secret key, session token or web identity token in stdout, stderr, /metrics or error bodies', async () => {
    // An error body from a signature failure: the sidecar signs with a key the fake does not know.
    upstream.fault({
      kind: 'status',
      status: 403,
      body: JSON.stringify({ message: `The request signature we calculated does not match the signature you provided.\n\nThe Canonical String for this request should have been\n'x-amz-security-token:${SESSION_TOKEN}'` }),
      headers: { 'x-amzn-errortype': `InvalidSignatureException:${ERROR_NS}` },
    });
    const res = await postChat(keys, { model: 'bedrock-temp', messages });
    expect(res.status).toBe(502);
    const body = await res.text();
    expect(JSON.parse(body)).toMatchObject({ error: { code: 'upstream_auth_failed' } });
    for (const c of CREDENTIALS) expect(body).not.toContain(c);

    for (const sidecar of [keys, irsa]) {
      const metrics = await (await fetch(sidecar.metricsUrl)).text();
      expect(metrics).toContain('bedrock');
      const logs = sidecar.lines.join('\n');
      expect(logs).toContain('"provider":"bedrock"');
      for (const c of [...CREDENTIALS, ACCESS_KEY_ID, TEMP_KEY_ID]) {
        expect(logs).not.toContain(c);
        expect(metrics).not.toContain(c);
      }
    }
    for (const c of [...CREDENTIALS, ACCESS_KEY_ID, TEMP_KEY_ID]) {
      expect(stderr.keys).not.toContain(c);
      expect(stderr.irsa).not.toContain(c);
    }
  });
});
