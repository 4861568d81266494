import { describe, expect, it } from 'vitest';
import type { ProviderName } from '../../../crds/src/index.js';
import type { ChatRequest } from '../../../sidecar/openai-schema.js';
import { UpstreamStreamError } from '../../../sidecar/providers/errors.js';
import { ADAPTERS } from '../../../sidecar/providers/index.js';
import { ECHO_WINDOW, MAX_OUTPUT, REDACTED, safeCode, SECRET_WINDOW, upstreamText, type RedactionContext } from '../../../sidecar/providers/redact.js';
import type { TargetContext } from '../../../sidecar/providers/types.js';

const KEY = 'sk-proj-Q7vX2mK9pL4nR8sT1wY6zA3bC5dE0fG';
const PROMPT = 'My launch plan is codenamed BLUE HERON and it ships on the ninth of May.';
const request: ChatRequest = {
  model: 'bot',
  messages: [
    { role: 'system', content: 'You answer questions about the quarterly roadmap.' },
    { role: 'user', content: [{ type: 'text', text: PROMPT }] },
  ],
};
const ctx: RedactionContext = { apiKey: KEY, request };

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** Every window of `secret` of `n` characters that occurs in `text` (none when the text is clean). */
function leaks(text: string | undefined, secret: string, n: number): string[] {
  const found: string[] = [];
  for (let i = 0; i + n <= secret.length; i++) if (text?.includes(secret.slice(i, i + n))) found.push(secret.slice(i, i + n));
  return found;
}

/** No key fragment of SECRET_WINDOW characters, no prompt run of ECHO_WINDOW characters, in any form. */
function expectClean(text: string | undefined): void {
  expect(leaks(text, KEY, SECRET_WINDOW)).toEqual([]);
  expect(leaks(text, b64(KEY).slice(0, -2), SECRET_WINDOW)).toEqual([]);
  expect(leaks(text, PROMPT, ECHO_WINDOW)).toEqual([]);
  expect(leaks(text, 'You answer questions about the quarterly roadmap.', ECHO_WINDOW)).toEqual([]);
}

describe('upstreamText: the credentials in any form', () => {
  it('removes the key raw, after Bearer, and a fragment of 8 characters', () => {
    expect(upstreamText(`Incorrect API key provided: ${KEY}.`, ctx)).toBe(`Incorrect API key provided: ${REDACTED}.`);
    expect(upstreamText(`bad header Authorization: Bearer ${KEY}`, ctx)).toBe(`bad header Authorization: ${REDACTED} ${REDACTED}`);
    expect(upstreamText(`key ending ${KEY.slice(-8)} was revoked`, ctx)).toBe(`key ending ${REDACTED} was revoked`);
    // Fewer than 8 characters of it are not a fragment.
    expect(upstreamText(`key ending ${KEY.slice(-7)} was revoked`, ctx)).toBe(`key ending ${KEY.slice(-7)} was revoked`);
  });

  it('removes its base64 and base64url at every alignment (Basic auth "user:key"), and its URL encoding', () => {
    const key = 'a0~b1?c2/d3+e4>f5;g6<h7';
    const c: RedactionContext = { apiKey: key };
    for (const prefix of ['', 'u:', 'ab:']) {
      const encoded = b64(prefix + key);
      expect(leaks(upstreamText(`proxy saw Authorization ${encoded} and refused`, c), encoded.slice(4, -4), SECRET_WINDOW)).toEqual([]);
      const url = encoded.replace(/\+/g, '-').replace(/\//g, '_');
      expect(leaks(upstreamText(`token=${url}`, c), url.slice(4, -4), SECRET_WINDOW)).toEqual([]);
    }
    // The match widens over up to 4 adjacent base64 characters (an encoding's mixed edges): "k=" here.
    expect(upstreamText(`query had ?k=${encodeURIComponent(key)} in it`, c)).toBe(`query had ?${REDACTED} in it`);
  });

  it('removes every credential part and the secret fields of a JSON key, PEM lines included', () => {
    const pem = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n-----END PRIVATE KEY-----\n';
    const json = JSON.stringify({ type: 'service_account', project_id: 'my-project', private_key_id: 'f3c1a9e07d2b4c5e', private_key: pem, client_email: 'bot@my-project.iam.gserviceaccount.com' });
    expect(upstreamText('key f3c1a9e07d2b4c5e of bot@my-project.iam.gserviceaccount.com is disabled; line BKcwggSjAgEAAoIB', { apiKey: json })).toBe(
      `key ${REDACTED} of bot@my-project.iam.gserviceaccount.com is disabled; line ${REDACTED}`,
    );
    const parts: RedactionContext = { apiKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCY', settings: { credentialParts: { accessKeyId: 'AKIDEXAMPLE123', sessionToken: 'IQoJb3JpZ2luX2VjEJr' } } };
    expect(upstreamText('signature of AKIDEXAMPLE123 with token IQoJb3JpZ2lu does not match', parts)).toBe(`signature of ${REDACTED} with token ${REDACTED} does not match`);
  });
});

describe('upstreamText: anything key-shaped, whoever it belongs to', () => {
  it.each([
    ['an OpenAI-style key', 'Incorrect API key provided: sk-ant-api03-abcdef. You can find your key', `Incorrect API key provided: ${REDACTED}. You can find your key`],
    ['Bearer anything', 'rejected Bearer abc.def', `rejected Bearer ${REDACTED}`],
    ['Basic credentials', 'header Basic dXNlcjpwYXNzd29yZA== refused', `header Basic ${REDACTED} refused`],
    ['an AWS access key id', 'The security token included in the request is invalid: AKIAIOSFODNN7EXAMPLE', `The security token included in the request is invalid: ${REDACTED}`],
    ['a Google API key', 'API key AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY not valid', `API key ${REDACTED} not valid`],
    ['a JWT', 'assertion eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib3QifQ.c2lnbmF0dXJl expired', `assertion ${REDACTED} expired`],
    ['a long hex token', 'request 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 failed', `request ${REDACTED} failed`],
    ['a header echo', '{"x-api-key": "abc123", "api_key=zzz"}', `{"x-api-key": "${REDACTED}", "api_key=${REDACTED}"}`],
    ['a PEM private key', 'bad key -----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY----- given', `bad key ${REDACTED} given`],
  ])('%s', (_what, text, expected) => {
    expect(upstreamText(text, undefined)).toBe(expected);
  });

  it('keeps ordinary text: words, model ids, codes and short numbers', () => {
    const text = 'Rate limit of 30000 tokens per min on gpt-4o-mini-2024-07-18 reached (context_length_exceeded_for_model); basic tier.';
    expect(upstreamText(text, ctx)).toBe(text);
  });
});

describe("upstreamText: the request's own content", () => {
  it('removes any run of 12 characters of a message, raw or JSON-escaped, and keeps shorter ones', () => {
    expect(upstreamText(`Invalid prompt: "${PROMPT}"`, ctx)).toBe(`Invalid prompt: "${REDACTED}"`);
    expect(upstreamText(`near 'codenamed BLUE HER'`, ctx)).toBe(`near '${REDACTED}'`);
    expect(upstreamText(`the bird: BLUE HERON`, ctx)).toBe('the bird: BLUE HERON');
    const multiline: RedactionContext = { request: { model: 'bot', messages: [{ role: 'user', content: 'line one of it\n"quoted" line two' }] } };
    expect(upstreamText('body was {"content":"line one of it\\n\\"quoted\\" line two"}', multiline)).toBe(`body was {"content":"${REDACTED}"}`);
    expectClean(upstreamText(`echo: ${PROMPT} / ${JSON.stringify(request)}`, ctx));
  });

  it('removes embeddings inputs and tool-call arguments', () => {
    const emb: RedactionContext = { request: { model: 'e', input: ['first document to embed', 'x'] } };
    expect(upstreamText('input "first document to embed" too long', emb)).toBe(`input "${REDACTED}" too long`);
    const tools: RedactionContext = {
      request: { model: 'bot', messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{"city":"Reykjavik harbour"}' } }] }] },
    };
    expect(upstreamText('bad arguments {"city":"Reykjavik harbour"}', tools)).toBe(`bad arguments ${REDACTED}`);
  });

  it('flattens control characters to one line and keeps at most MAX_OUTPUT characters', () => {
    expect(upstreamText('a\nb\r\n\tc\u0000d\u2028e', undefined)).toBe('a b c d e');
    expect(upstreamText('x'.repeat(10_000), undefined)).toBe(`${'x'.repeat(MAX_OUTPUT)}…`);
    expect(upstreamText('', ctx)).toBeUndefined();
    expect(upstreamText(42, ctx)).toBeUndefined();
    expect(upstreamText(' \n ', ctx)).toBeUndefined();
  });
});

describe('safeCode', () => {
  it('passes provider codes and refuses anything else', () => {
    for (const code of ['content_filter', 'context_length_exceeded', 'invalid_request_error', 'overloaded_error', 'INVALID_ARGUMENT', 'RESOURCE_EXHAUSTED', 'ValidationException', 'v1.2-x']) {
      expect(safeCode(code)).toBe(code);
    }
    for (const bad of ['', 'has space', 'a'.repeat(65), 'sk:1', '<script>', 42, null, undefined, { code: 'x' }]) expect(safeCode(bad)).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------
// Every adapter, with a fake provider that echoes the key and the prompt

const ECHO = `Incorrect API key provided: Bearer ${KEY} (${b64(KEY)}). Your prompt "${PROMPT}" was rejected.`;

type Family = 'openai' | 'anthropic' | 'gemini' | 'cohere' | 'bedrock';

/** Per wire format: an echoing error body (+ headers), the code the client gets, and an echoing stream error event. */
const FAMILIES: Record<Family, { body: string; headers: Record<string, string>; code: string | undefined; type?: string; event: { event?: string; data: string }; streamType: string }> = {
  openai: {
    body: JSON.stringify({ error: { message: ECHO, type: 'invalid_request_error', param: 'messages', code: 'content_filter' } }),
    headers: {},
    code: 'content_filter',
    type: 'invalid_request_error',
    event: { data: JSON.stringify({ error: { message: ECHO, type: 'server_error', code: 'context_length_exceeded' } }) },
    streamType: 'context_length_exceeded',
  },
  anthropic: {
    body: JSON.stringify({ type: 'error', error: { type: 'invalid_request_error', message: ECHO } }),
    headers: {},
    code: 'invalid_request_error',
    type: 'invalid_request_error',
    event: { event: 'error', data: JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: ECHO } }) },
    streamType: 'overloaded_error',
  },
  gemini: {
    body: JSON.stringify([{ error: { code: 400, message: ECHO, status: 'INVALID_ARGUMENT' } }]),
    headers: {},
    code: 'INVALID_ARGUMENT',
    event: { data: JSON.stringify({ error: { code: 429, message: ECHO, status: 'RESOURCE_EXHAUSTED' } }) },
    streamType: 'RESOURCE_EXHAUSTED',
  },
  cohere: {
    body: JSON.stringify({ id: 'e1', message: ECHO }),
    headers: {},
    code: undefined,
    event: { event: 'message-end', data: JSON.stringify({ type: 'message-end', delta: { finish_reason: 'ERROR', error: ECHO } }) },
    streamType: 'error',
  },
  bedrock: {
    body: JSON.stringify({ message: ECHO }),
    headers: { 'x-amzn-errortype': 'ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/' },
    code: 'ValidationException',
    event: { event: 'validationException', data: JSON.stringify({ message: ECHO }) },
    streamType: 'validationException',
  },
};

const FAMILY: Record<ProviderName, Family> = {
  openai: 'openai', deepseek: 'openai', qwen: 'openai', mistral: 'openai', openrouter: 'openai', xai: 'openai', groq: 'openai', together: 'openai',
  fireworks: 'openai', cerebras: 'openai', perplexity: 'openai', 'openai-compatible': 'openai', simulate: 'openai', azure: 'openai',
  anthropic: 'anthropic', 'vertex-anthropic': 'anthropic', gemini: 'gemini', vertex: 'gemini', cohere: 'cohere', bedrock: 'bedrock',
};

const targetCtx = (): TargetContext => ({ model: 'm', baseURL: 'https://upstream.test', apiKey: KEY, created: 1, responseId: 'chatcmpl-1', settings: { region: 'us-east-1', project: 'p' }, request });

describe.each(Object.keys(ADAPTERS) as ProviderName[])('%s adapter: echoed text never leaves', (provider) => {
  const adapter = ADAPTERS[provider];
  const family = FAMILIES[FAMILY[provider]];

  it(`error body: message redacted, provider code ${family.code ?? '(none)'} kept`, () => {
    const info = adapter.errorInfo(family.body, targetCtx(), family.headers);
    expectClean(info.message);
    expect(info.message).toBe(`Incorrect API key provided: Bearer ${REDACTED} (${REDACTED}). Your prompt "${REDACTED}" was rejected.`);
    expect(info.code).toBe(family.code);
    expect(info.type).toBe(family.type);
  });

  it(`stream error event: message redacted, type ${family.streamType}`, () => {
    const translator = adapter.chatStream(targetCtx());
    let thrown: unknown;
    try {
      translator.push(family.event);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(UpstreamStreamError);
    const e = thrown as UpstreamStreamError;
    expectClean(e.message);
    expect(e.message).toBe(`Incorrect API key provided: Bearer ${REDACTED} (${REDACTED}). Your prompt "${REDACTED}" was rejected.`);
    expect(e.errorType).toBe(family.streamType);
  });
});
