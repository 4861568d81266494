import { describe, expect, it } from 'vitest';
import { PROVIDERS } from '../../crds/src/index.js';
import type { RequestRecord } from '../../sidecar/metering/record.js';
import type { ChatRequest } from '../../sidecar/openai-schema.js';
import { parseOptions } from '../../sidecar/options.js';
import {
  attemptAttributes,
  committedOutcome,
  completionFinishReasons,
  completionMessages,
  errorStatusMessage,
  genAiProviderName,
  inputMessages,
  requestedAttributes,
  requestEndAttributes,
  requestSpanName,
  resultAttributes,
  routedAttributes,
  serverOf,
  tracingConfig,
} from '../../sidecar/tracing.js';
import { testRoute, testTarget } from '../support/runtime.js';

describe('tracingConfig: when tracing is on (README "Tracing")', () => {
  it('off without an endpoint', () => {
    expect(tracingConfig(undefined, {})).toBeUndefined();
  });

  it('--otlp-endpoint is a base URL: /v1/traces is added once', () => {
    expect(tracingConfig('http://collector:4318', {})).toEqual({ url: 'http://collector:4318/v1/traces' });
    expect(tracingConfig('http://collector:4318/', {})).toEqual({ url: 'http://collector:4318/v1/traces' });
    expect(tracingConfig('https://otel.example/v1/traces', {})).toEqual({ url: 'https://otel.example/v1/traces' });
    expect(tracingConfig('http://collector:4318/prefix', {})).toEqual({ url: 'http://collector:4318/prefix/v1/traces' });
  });

  it('the standard variables turn it on, and the exporter reads them itself', () => {
    expect(tracingConfig(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' })).toEqual({ url: undefined });
    expect(tracingConfig(undefined, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' })).toEqual({ url: undefined });
    expect(tracingConfig(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: '' })).toBeUndefined();
  });

  it('OTEL_SDK_DISABLED=true and OTEL_TRACES_EXPORTER=none turn it off, whatever the endpoint', () => {
    expect(tracingConfig('http://c:4318', { OTEL_SDK_DISABLED: 'true' })).toBeUndefined();
    expect(tracingConfig('http://c:4318', { OTEL_SDK_DISABLED: 'TRUE' })).toBeUndefined();
    expect(tracingConfig(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' })).toBeUndefined();
    expect(tracingConfig('http://c:4318', { OTEL_SDK_DISABLED: 'false' })).toEqual({ url: 'http://c:4318/v1/traces' });
  });

  it('options: --otlp-endpoint wins over PAYGO_OTLP_ENDPOINT; only http(s) URLs', () => {
    const opts = (argv: string[], env: Record<string, string> = {}) => parseOptions(argv, env) as Exclude<ReturnType<typeof parseOptions>, 'help'>;
    expect(opts([]).otlpEndpoint).toBeUndefined();
    expect(opts([], { PAYGO_OTLP_ENDPOINT: 'http://env:4318' }).otlpEndpoint).toBe('http://env:4318');
    expect(opts(['--otlp-endpoint', 'http://flag:4318'], { PAYGO_OTLP_ENDPOINT: 'http://env:4318' }).otlpEndpoint).toBe('http://flag:4318');
    expect(() => opts(['--otlp-endpoint', 'collector:4317'])).toThrow(/otlpEndpoint/);
    expect(() => opts(['--otlp-endpoint', 'grpc://collector:4317'])).toThrow(/otlpEndpoint/);
  });
});

describe('gen_ai.provider.name', () => {
  it('the semantic conventions’ well-known values where they exist, paygo’s name otherwise', () => {
    expect(Object.fromEntries(PROVIDERS.map((p) => [p, genAiProviderName(p)]))).toEqual({
      openai: 'openai',
      anthropic: 'anthropic',
      gemini: 'gcp.gemini',
      deepseek: 'deepseek',
      qwen: 'qwen',
      mistral: 'mistral_ai',
      openrouter: 'openrouter',
      xai: 'x_ai',
      groq: 'groq',
      together: 'together',
      fireworks: 'fireworks',
      cerebras: 'cerebras',
      perplexity: 'perplexity',
      cohere: 'cohere',
      bedrock: 'aws.bedrock',
      vertex: 'gcp.vertex_ai',
      'vertex-anthropic': 'gcp.vertex_ai',
      azure: 'azure.ai.openai',
      'openai-compatible': 'openai-compatible',
      simulate: 'simulate',
    });
  });
});

const chat = (over: Partial<ChatRequest> = {}): ChatRequest => ({ model: 'support-bot', messages: [{ role: 'user', content: 'secret prompt' }], ...over }) as ChatRequest;

describe('span attributes', () => {
  it('span names: {operation} {model}', () => {
    expect(requestSpanName('chat', 'support-bot')).toBe('chat support-bot');
    expect(requestSpanName('embeddings', undefined)).toBe('embeddings');
  });

  it('the request as the app sent it: operation, model, temperature, top_p, stream', () => {
    expect(requestedAttributes('chat', chat({ temperature: 0.2, top_p: 0.9, stream: true }))).toEqual({
      'gen_ai.operation.name': 'chat',
      'gen_ai.request.model': 'support-bot',
      'gen_ai.request.temperature': 0.2,
      'gen_ai.request.top_p': 0.9,
      'paygo.stream': true,
    });
    expect(requestedAttributes('chat', chat({ temperature: null }))).toEqual({ 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'support-bot' });
    expect(requestedAttributes('embeddings', { model: 'emb', input: 'secret prompt' })).toEqual({ 'gen_ai.operation.name': 'embeddings', 'gen_ai.request.model': 'emb' });
  });

  it('routed: route, namespace, the effective max_tokens; the messages only when the route records content', () => {
    const route = testRoute([]);
    expect(routedAttributes(route, chat({ max_tokens: 100 }))).toEqual({ 'paygo.route': 'r', 'paygo.namespace': 'default', 'gen_ai.request.max_tokens': 100 });
    expect(routedAttributes(route, chat({ max_completion_tokens: 7, max_tokens: 100 }))).toEqual({ 'paygo.route': 'r', 'paygo.namespace': 'default', 'gen_ai.request.max_tokens': 7 });
    expect(routedAttributes({ ...route, recordContent: true }, chat())).toEqual({
      'paygo.route': 'r',
      'paygo.namespace': 'default',
      'gen_ai.input.messages': '[{"role":"user","parts":[{"type":"text","content":"secret prompt"}]}]',
    });
    expect(routedAttributes({ ...route, recordContent: true }, { model: 'emb', input: 'secret prompt' })).toEqual({ 'paygo.route': 'r', 'paygo.namespace': 'default' });
  });

  it('an attempt: provider (mapped), the provider model, target, number, server address and port', () => {
    const target = testTarget('claude', { provider: 'vertex-anthropic', model: 'claude-sonnet-4-5', baseURL: 'https://us-east5-aiplatform.googleapis.com/v1' });
    expect(attemptAttributes('chat', testRoute([target]), target, 2)).toEqual({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'gcp.vertex_ai',
      'gen_ai.request.model': 'claude-sonnet-4-5',
      'paygo.route': 'r',
      'paygo.target': 'claude',
      'paygo.attempt.number': 2,
      'server.address': 'us-east5-aiplatform.googleapis.com',
      'server.port': 443,
    });
    // simulate has no server
    expect(attemptAttributes('chat', undefined, testTarget('sim'), 1)).toEqual({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'simulate',
      'gen_ai.request.model': 'sim',
      'paygo.target': 'sim',
      'paygo.attempt.number': 1,
    });
  });

  it('serverOf: host and port, default ports, IPv6 without brackets, nothing for non-HTTP URLs', () => {
    expect(serverOf('http://127.0.0.1:8080/v1')).toEqual({ address: '127.0.0.1', port: 8080 });
    expect(serverOf('http://api.example')).toEqual({ address: 'api.example', port: 80 });
    expect(serverOf('https://[::1]:4000')).toEqual({ address: '::1', port: 4000 });
    expect(serverOf('simulate://local')).toBeUndefined();
    expect(serverOf('not a url')).toBeUndefined();
  });

  const record = (over: Partial<RequestRecord> = {}): RequestRecord => ({
    requestId: 'x',
    operation: 'chat',
    api: 'chat',
    namespace: 'ns',
    route: 'r',
    requestModel: 'support-bot',
    target: 'openai',
    provider: 'azure',
    providerModel: 'gpt-4o',
    responseModel: 'gpt-4o-2024-08-06',
    stream: false,
    outcome: 'success',
    status: 200,
    errorType: undefined,
    usage: { inputTokens: 12, outputTokens: 5, cacheReadTokens: 4, cacheWriteTokens: 0, reasoningTokens: 0 },
    estimated: false,
    attempts: 1,
    durationMs: 3,
    ttftMs: 3,
    pricingOverride: undefined,
    ...over,
  });

  it('the result: response model, usage (cache reads when there are some), cost as a decimal string, finish reasons', () => {
    expect(resultAttributes(record(), { costNano: 1234n, priced: true }, { finishReasons: ['stop', 'length'] })).toEqual({
      'gen_ai.response.model': 'gpt-4o-2024-08-06',
      'gen_ai.usage.input_tokens': 12,
      'gen_ai.usage.output_tokens': 5,
      'gen_ai.usage.cache_read.input_tokens': 4,
      'paygo.usage.estimated': false,
      'paygo.cost_usd': '0.000001234',
      'gen_ai.response.finish_reasons': ['stop', 'length'],
    });
    // unpriced: no cost attribute (unknown is not zero); no usage: nothing about tokens
    expect(resultAttributes(record({ estimated: true }), { costNano: 0n, priced: false }, undefined)).toEqual({
      'gen_ai.response.model': 'gpt-4o-2024-08-06',
      'gen_ai.usage.input_tokens': 12,
      'gen_ai.usage.output_tokens': 5,
      'gen_ai.usage.cache_read.input_tokens': 4,
      'paygo.usage.estimated': true,
    });
    expect(resultAttributes(record({ usage: undefined, responseModel: undefined }), { costNano: 0n, priced: true }, { finishReasons: [] })).toEqual({});
  });

  it('the request end: route, target, attempts, outcome, status, error type, cache', () => {
    expect(requestEndAttributes(record({ outcome: 'upstream_error', status: 503, errorType: 'upstream_overloaded', attempts: 3, cache: 'miss' }))).toEqual({
      'paygo.route': 'r',
      'paygo.namespace': 'ns',
      'paygo.target': 'openai',
      'gen_ai.provider.name': 'azure.ai.openai',
      'paygo.attempts': 3,
      'paygo.outcome': 'upstream_error',
      'paygo.cache': 'miss',
      'http.response.status_code': 503,
      'error.type': 'upstream_overloaded',
    });
    expect(committedOutcome(record())).toBe('success');
    expect(committedOutcome(record({ outcome: 'client_aborted' }))).toBe('aborted');
    expect(committedOutcome(record({ outcome: 'stream_error' }))).toBe('stream_error');
  });

  it('status messages: the error message, but only the code for a body paygo could not read (JSON.parse quotes the body)', () => {
    expect(errorStatusMessage({ code: 'upstream_overloaded', message: 'Every target is overloaded' })).toBe('Every target is overloaded');
    expect(errorStatusMessage({ code: 'invalid_json', message: 'Unexpected token s, "secret prompt" is not valid JSON' })).toBe('invalid_json');
    expect(errorStatusMessage({ code: 'invalid_request', message: 'secret prompt' })).toBe('invalid_request');
  });
});

describe('content in the GenAI semantic conventions’ message shape (recorded only on opt-in)', () => {
  it('input: text, text parts, other parts by type, tool calls and tool results', () => {
    const req = chat({
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }] },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', content: 'sunny', tool_call_id: 'c1' },
      ],
    } as Partial<ChatRequest>);
    expect(inputMessages(req)).toEqual([
      { role: 'system', parts: [{ type: 'text', content: 'be brief' }] },
      { role: 'user', parts: [{ type: 'text', content: 'look' }, { type: 'image_url' }] },
      { role: 'assistant', parts: [{ type: 'tool_call', id: 'c1', name: 'weather', arguments: '{"city":"Paris"}' }] },
      { role: 'tool', parts: [{ type: 'tool_call_response', id: 'c1', response: 'sunny' }] },
    ]);
  });

  it('output: each choice with its text, tool calls and finish reason', () => {
    const completion = {
      id: 'x',
      object: 'chat.completion' as const,
      created: 1,
      model: 'm',
      choices: [
        { index: 0, message: { role: 'assistant' as const, content: 'hello' }, finish_reason: 'stop' as const },
        { index: 1, message: { role: 'assistant' as const, content: null, tool_calls: [{ id: 'c', type: 'function' as const, function: { name: 'f', arguments: '{}' } }] }, finish_reason: 'tool_calls' as const },
      ],
    };
    expect(completionMessages(completion)).toEqual([
      { role: 'assistant', parts: [{ type: 'text', content: 'hello' }], finish_reason: 'stop' },
      { role: 'assistant', parts: [{ type: 'tool_call', id: 'c', name: 'f', arguments: '{}' }], finish_reason: 'tool_calls' },
    ]);
    expect(completionFinishReasons(completion)).toEqual(['stop', 'tool_calls']);
  });
});
