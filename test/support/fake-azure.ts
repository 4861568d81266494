import type { RecordedRequest, Reply, Responder } from './fake-upstream.js';

/**
 * A fake Azure OpenAI resource plus its Microsoft Entra ID token endpoint, for the fake upstream
 * server. Azure's wire format (learn.microsoft.com/azure/ai-services/openai/reference, spec
 * inference/stable/2024-10-21): `POST /openai/deployments/{deployment}/chat/completions?api-version=…`
 * with `api-key: <key>` or `Authorization: Bearer <Entra ID token>`; responses carry
 * `prompt_filter_results` and `choices[].content_filter_results` (concepts/content-filter);
 * streams open with the prompt annotation event (empty `choices`, empty id and model), then
 * `chat.completion.chunk`s with content-filter results, the usage chunk when
 * `stream_options.include_usage` is set, and `data: [DONE]` (default streaming mode, concepts/content-streaming).
 * Errors are `{"error":{"code","message"}}`. The token endpoint is the client-credentials grant of
 * learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow ("Third case").
 *
 * Deterministic: the reply echoes the last user text one word per content chunk; with tools it
 * calls the first tool with `{"location":"San Francisco"}`. prompt_tokens is the prompt's word
 * count plus 1000, 512 of them cached (prompt caching reports cached_tokens).
 */
export interface FakeAzureOptions {
  apiKey: string;
  tenantId: string;
  clientId: string;
  /** The federated token the pod presents (client_assertion). */
  assertion: string;
  /** The access token the endpoint issues. */
  accessToken: string;
  /** Set to refuse token requests with Entra's documented error body. */
  refuseTokens?: () => boolean;
}

export const AZURE_CACHED_TOKENS = 512;

const SAFE = { filtered: false, severity: 'safe' };
const PROMPT_FILTER_RESULTS = [{ prompt_index: 0, content_filter_results: { hate: SAFE, jailbreak: { filtered: false, detected: false }, self_harm: SAFE, sexual: SAFE, violence: SAFE } }];
const CHOICE_FILTER_RESULTS = { hate: SAFE, self_harm: SAFE, sexual: SAFE, violence: SAFE };
const MODEL = 'gpt-4o-2024-11-20';

interface Body {
  messages?: Array<{ role?: string; content?: unknown }>;
  tools?: Array<{ function?: { name?: string } }>;
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
}

const error = (status: number, code: string, message: string, headers?: Record<string, string>): Reply => ({ kind: 'json', status, body: { error: { code, message } }, headers });

function text(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p: { text?: unknown }) => (typeof p?.text === 'string' ? p.text : '')).join(' ');
  return '';
}

function usage(body: Body, completion: number) {
  const words = (body.messages ?? []).reduce((n, m) => n + text(m.content).split(/\s+/).filter(Boolean).length, 0);
  const prompt = words + 1000;
  return {
    completion_tokens: completion,
    completion_tokens_details: { accepted_prediction_tokens: 0, audio_tokens: 0, reasoning_tokens: 0, rejected_prediction_tokens: 0 },
    prompt_tokens: prompt,
    prompt_tokens_details: { audio_tokens: 0, cached_tokens: AZURE_CACHED_TOKENS },
    total_tokens: prompt + completion,
  };
}

function tokenReply(req: RecordedRequest, o: FakeAzureOptions): Reply {
  const form = Object.fromEntries(new URLSearchParams(req.rawBody));
  if (req.headers['content-type'] !== 'application/x-www-form-urlencoded') return { kind: 'json', status: 400, body: { error: 'invalid_request', error_codes: [900144] } };
  if (o.refuseTokens?.()) {
    // Entra's documented error body; the description here even echoes the assertion, so a test
    // can show that paygo never passes the description (or the assertion) on.
    return {
      kind: 'json',
      status: 400,
      body: {
        error: 'invalid_client',
        error_description: `AADSTS700213: No matching federated identity record found for presented assertion subject. Assertion: ${form.client_assertion}`,
        error_codes: [700213],
        timestamp: '2025-01-01 00:00:00Z',
        trace_id: '255d1aef-8c98-452f-ac51-23d051240864',
        correlation_id: 'fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7',
      },
    };
  }
  const ok =
    form.grant_type === 'client_credentials' &&
    form.client_id === o.clientId &&
    form.scope === 'https://cognitiveservices.azure.com/.default' &&
    form.client_assertion_type === 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer' &&
    form.client_assertion === o.assertion;
  if (!ok) return { kind: 'json', status: 401, body: { error: 'invalid_client', error_codes: [7000215] } };
  return { kind: 'json', body: { token_type: 'Bearer', expires_in: 3599, access_token: o.accessToken } };
}

export function azureResponder(o: FakeAzureOptions): Responder {
  return (req) => {
    const url = new URL(req.url, 'http://fake');
    if (req.method === 'POST' && url.pathname === `/${o.tenantId}/oauth2/v2.0/token`) return tokenReply(req, o);
    const m = /^\/openai\/deployments\/([^/]+)\/chat\/completions$/.exec(url.pathname);
    if (req.method !== 'POST' || !m || !url.searchParams.get('api-version')) return error(404, '404', 'Resource not found');
    const keyOk = req.headers['api-key'] === o.apiKey;
    const tokenOk = req.headers.authorization === `Bearer ${o.accessToken}`;
    if (!keyOk && !tokenOk) {
      return error(401, '401', 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.');
    }
    const body = req.body as Body | undefined;
    if (!body || !Array.isArray(body.messages) || body.messages.length === 0) return error(400, 'BadRequest', "'messages' is a required property");
    const last = [...body.messages].reverse().find((msg) => msg.role === 'user');
    const words = text(last?.content).split(/\s+/).filter(Boolean);
    const tool = body.tools?.[0]?.function?.name;
    const id = `chatcmpl-azure-${words.length}`;
    const created = 1744643221;
    if (body.stream !== true) {
      const message = tool
        ? { content: null, refusal: null, role: 'assistant', tool_calls: [{ function: { arguments: '{"location":"San Francisco"}', name: tool }, id: 'call_pOsKdUlqvdyttYB67MOj434b', type: 'function' }] }
        : { content: words.join(' '), refusal: null, role: 'assistant' };
      return {
        kind: 'json',
        body: {
          choices: [{ content_filter_results: tool ? {} : CHOICE_FILTER_RESULTS, finish_reason: tool ? 'tool_calls' : 'stop', index: 0, logprobs: null, message }],
          created,
          id,
          model: MODEL,
          object: 'chat.completion',
          prompt_filter_results: PROMPT_FILTER_RESULTS,
          system_fingerprint: 'fp_ee1d74bde0',
          usage: usage(body, tool ? 18 : words.length),
        },
      };
    }
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
      `data: ${JSON.stringify({ choices, created, id, model: MODEL, object: 'chat.completion.chunk', system_fingerprint: 'fp_ee1d74bde0', ...extra })}\n\n`;
    const frames = [`data: ${JSON.stringify({ choices: [], created: 0, id: '', model: '', object: '', prompt_filter_results: PROMPT_FILTER_RESULTS })}\n\n`];
    if (tool) {
      frames.push(chunk([{ content_filter_results: {}, delta: { content: null, refusal: null, role: 'assistant', tool_calls: [{ function: { arguments: '', name: tool }, id: 'call_pOsKdUlqvdyttYB67MOj434b', index: 0, type: 'function' }] }, finish_reason: null, index: 0, logprobs: null }]));
      frames.push(chunk([{ content_filter_results: {}, delta: { tool_calls: [{ function: { arguments: '{"location":' }, index: 0 }] }, finish_reason: null, index: 0, logprobs: null }]));
      frames.push(chunk([{ content_filter_results: {}, delta: { tool_calls: [{ function: { arguments: '"San Francisco"}' }, index: 0 }] }, finish_reason: null, index: 0, logprobs: null }]));
      frames.push(chunk([{ content_filter_results: {}, delta: {}, finish_reason: 'tool_calls', index: 0, logprobs: null }]));
    } else {
      frames.push(chunk([{ content_filter_results: {}, delta: { content: '', refusal: null, role: 'assistant' }, finish_reason: null, index: 0, logprobs: null }]));
      words.forEach((w, i) => frames.push(chunk([{ content_filter_results: CHOICE_FILTER_RESULTS, delta: { content: i === 0 ? w : ` ${w}` }, finish_reason: null, index: 0, logprobs: null }])));
      frames.push(chunk([{ content_filter_results: {}, delta: {}, finish_reason: 'stop', index: 0, logprobs: null }]));
    }
    if (body.stream_options?.include_usage) frames.push(chunk([], { usage: usage(body, tool ? 18 : words.length) }));
    frames.push('data: [DONE]\n\n');
    return { kind: 'sse', frames };
  };
}
