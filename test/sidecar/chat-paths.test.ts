import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Cancel } from '../../sidecar/cancel.js';
import {
  applyLimits,
  callerCost,
  capOutputTokens,
  completeChat,
  recordError,
  serveCached,
  streamChat,
  upstreamHttpError,
  type ChatContext,
  type ChatDeps,
} from '../../sidecar/chat.js';
import { ApiError } from '../../sidecar/errors.js';
import { countPromptTokens, countTextTokens } from '../../sidecar/metering/tokens.js';
import type { MeterResult, RequestRecord } from '../../sidecar/metering/record.js';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../../sidecar/openai-schema.js';
import { UpstreamHttpError, UpstreamProtocolError, UpstreamStreamError } from '../../sidecar/providers/errors.js';
import type { ProviderAdapter, StreamTranslator, TargetContext, UpstreamRequest } from '../../sidecar/providers/types.js';
import { CircuitBreaker } from '../../sidecar/router/breaker.js';
import type { RuntimeRoute, RuntimeTarget } from '../../sidecar/router/runtime.js';
import type { SseEvent } from '../../sidecar/sse.js';
import { TransportError, type SendOptions, type Transport } from '../../sidecar/transport.js';
import type { RequestTrace } from '../../sidecar/tracing.js';
import { usageToOpenAI, type Usage } from '../../sidecar/usage.js';
import type { Passthrough, StreamEncoder } from '../../sidecar/apis/types.js';
import { testRoute, testTarget } from '../support/runtime.js';

/**
 * chat.ts in process: a scripted adapter (its stream events are JSON commands), a scripted
 * transport whose bodies are async generators (read exactly as far as chat.ts pulls them), a
 * recording meter and a fake ServerResponse; the clock is a variable the script moves.
 */

const u = (inputTokens: number, outputTokens: number, cacheReadTokens = 0, cacheWriteTokens = 0, reasoningTokens = 0): Usage => ({
  inputTokens,
  outputTokens,
  cacheReadTokens,
  cacheWriteTokens,
  reasoningTokens,
});

/** Stream events of the fake adapter: a chunk, usage, the response model, the end, an error event. */
const ev = {
  chunk: (content: string | null, o: { model?: string; finish?: string; tools?: Array<{ name?: string; arguments?: string } | null> } = {}) =>
    `data: ${JSON.stringify({
      chunk: {
        id: 'c1',
        object: 'chat.completion.chunk',
        created: 7,
        model: o.model ?? 'up-model',
        choices: [
          {
            index: 0,
            delta: { ...(content === null ? {} : { content }), ...(o.tools ? { tool_calls: o.tools.map((f, index) => (f ? { index, function: f } : { index })) } : {}) },
            finish_reason: o.finish ?? null,
          },
        ],
      },
    })}\n\n`,
  usage: (x: Usage) => `data: ${JSON.stringify({ usage: x })}\n\n`,
  model: (m: string) => `data: ${JSON.stringify({ model: m })}\n\n`,
  done: () => `data: ${JSON.stringify({ done: true })}\n\n`,
  error: (message: string, type: string) => `data: ${JSON.stringify({ error: { message, type } })}\n\n`,
};

class FakeTranslator implements StreamTranslator {
  finished = false;
  usage: Usage | undefined;
  responseModel: string | undefined;
  push(e: SseEvent): ChatCompletionChunk[] {
    const d = JSON.parse(e.data) as { chunk?: ChatCompletionChunk; usage?: Usage; model?: string; done?: boolean; error?: { message: string; type: string } };
    if (d.error) throw new UpstreamStreamError(d.error.message, d.error.type);
    if (d.usage) this.usage = d.usage;
    if (d.model) this.responseModel = d.model;
    if (d.done) this.finished = true;
    return d.chunk ? [d.chunk] : [];
  }
}

interface Calls {
  chatRequest: Array<{ ctx: TargetContext; stream: boolean }>;
}

function fakeAdapter(over: Partial<ProviderAdapter> = {}): ProviderAdapter & { calls: Calls } {
  const calls: Calls = { chatRequest: [] };
  return {
    calls,
    provider: 'openai-compatible',
    defaultBaseURL: undefined,
    chatRequest: (req, ctx, stream) => {
      calls.chatRequest.push({ ctx, stream });
      return { url: `${ctx.baseURL}/chat/completions`, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: ctx.model, stream, messages: req.messages }) };
    },
    chatResponse: (body) => structuredClone(body) as { completion: ChatCompletion; usage: Usage | undefined },
    chatStream: () => new FakeTranslator(),
    errorInfo: (body) => {
      try {
        const e = (JSON.parse(body) as { error: { message?: string; code?: string; type?: string } }).error;
        return { message: e.message, code: e.code, type: e.type };
      } catch {
        return { message: undefined, code: undefined, type: undefined };
      }
    },
    ...over,
  };
}

type Step = string | Error | (() => void);
type Answer = { status?: number; headers?: Record<string, string>; body?: Step[]; readable?: Readable } | Error | 'hang';

interface Scripted extends Transport {
  sent: Array<{ req: UpstreamRequest; opts: SendOptions }>;
  /** Per answered body: how it ended (read to its end, or returned early). */
  bodies: Array<{ pulled: number; completed: boolean; returned: boolean }>;
}

function scripted(answers: Answer[]): Scripted {
  const t: Scripted = {
    sent: [],
    bodies: [],
    async send(req, opts) {
      t.sent.push({ req, opts });
      const a = answers.shift();
      if (a === undefined) throw new Error('nothing scripted');
      if (a instanceof Error) throw a;
      if (a === 'hang') return new Promise((_, reject) => opts.signal.onAbort(() => reject(opts.signal.reason)));
      if (a.readable) return { status: a.status ?? 200, headers: a.headers ?? {}, body: a.readable };
      const state = { pulled: 0, completed: false, returned: false };
      t.bodies.push(state);
      const steps = a.body ?? [];
      async function* body() {
        try {
          for (const s of steps) {
            if (typeof s === 'function') s();
            else if (s instanceof Error) throw s;
            else {
              state.pulled++;
              yield Buffer.from(s);
            }
          }
          state.completed = true;
        } finally {
          state.returned = !state.completed;
        }
      }
      return { status: a.status ?? 200, headers: a.headers ?? {}, body: body() as unknown as Readable };
    },
    async close() {},
  };
  return t;
}

const json = (v: unknown) => JSON.stringify(v);

function completion(content: string | null, o: { model?: string; finish?: string; tools?: Array<{ name: string; arguments: string }>; usage?: unknown } = {}): ChatCompletion {
  return {
    id: 'x1',
    object: 'chat.completion',
    created: 7,
    model: o.model ?? 'up-model-2025',
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content,
          ...(o.tools ? { tool_calls: o.tools.map((f, i) => ({ id: `call_${i}`, type: 'function' as const, function: f })) } : {}),
        },
        finish_reason: (o.finish ?? 'stop') as 'stop',
      },
    ],
    ...(o.usage ? { usage: o.usage } : {}),
  } as ChatCompletion;
}

function target(name: string, transport: Transport, over: Partial<RuntimeTarget> = {}): RuntimeTarget {
  return testTarget(name, {
    provider: 'openai-compatible',
    model: `${name}-model`,
    baseURL: 'http://upstream.test/v1',
    apiKey: 'sk-test-key-0123456789',
    adapter: fakeAdapter(),
    transport,
    timeoutMs: 7000,
    health: { breaker: new CircuitBreaker(1000, 10_000), latencyMs: undefined },
    ...over,
  });
}

class FakeRes extends EventEmitter {
  status: number | undefined;
  head: Record<string, string> | undefined;
  writes: string[] = [];
  ends: Array<string | undefined> = [];
  destroyed = false;
  /** What write() returns, call by call (true once they run out). */
  writeReturns: boolean[] = [];
  writeHead(status: number, head: Record<string, string>) {
    this.status = status;
    this.head = head;
    return this;
  }
  write(text: string) {
    this.writes.push(text);
    return this.writeReturns.shift() ?? true;
  }
  end(text?: string) {
    this.ends.push(text);
  }
  get body() {
    return this.writes.join('') + this.ends.map((e) => e ?? '').join('');
  }
}

const PRICED: MeterResult = { costNano: 1_234_500n, priced: true };

function harness(r: RuntimeRoute, o: { req?: Partial<ChatRequest>; result?: MeterResult; ctx?: Partial<ChatContext> } = {}) {
  const clock = { t: 1_000 };
  const records: RequestRecord[] = [];
  const metered: MeterResult[] = [];
  const result = o.result ?? PRICED;
  const deps: ChatDeps = {
    meter: {
      record: (rec) => {
        records.push(structuredClone(rec));
        return result;
      },
      flush: () => {},
    },
    now: () => clock.t,
    random: () => 0.5,
    sleep: async () => {},
    unitPrice: () => undefined,
  };
  const res = new FakeRes();
  const signal = new Cancel();
  const ctx: ChatContext = {
    requestId: 'req-1',
    route: r,
    req: { model: 'bot', messages: [{ role: 'user', content: 'hello there' }], ...o.req } as ChatRequest,
    signal,
    raw: { req: {} as ChatContext['raw']['req'], res: res as unknown as ChatContext['raw']['res'] },
    startedAt: 1_000,
    onMetered: (m) => metered.push(m),
    ...o.ctx,
  };
  return { clock, records, metered, deps, res, signal, ctx };
}

async function failure(p: Promise<unknown>): Promise<ApiError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!(e instanceof ApiError)) throw new Error(`expected an ApiError, got ${String(e)}`);
  return e;
}

function fakeTrace() {
  const finished: Array<{ rec: RequestRecord; cost: MeterResult; end: Parameters<RequestTrace['finish']>[2] }> = [];
  const trace = {
    finished,
    requested() {},
    routed() {},
    inject(h: Record<string, string>) {
      h.traceparent = '00-trace-span-01';
    },
    finish(rec: RequestRecord, cost: MeterResult, end?: Parameters<RequestTrace['finish']>[2]) {
      finished.push({ rec: structuredClone(rec), cost, end });
    },
    fail() {},
    attemptStarted() {},
    attemptEnded() {},
  };
  return trace;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('capOutputTokens', () => {
  it('clamps max_completion_tokens when the request used it', () => {
    const req = { model: 'm', messages: [], max_completion_tokens: 500 } as unknown as ChatRequest;
    expect(capOutputTokens(req, 100)).toBe(100);
    expect(req.max_completion_tokens).toBe(100);
    expect(req.max_tokens).toBeUndefined();
  });

  it('keeps a smaller max_tokens and injects the cap when none was sent', () => {
    const small = { model: 'm', messages: [], max_tokens: 50 } as unknown as ChatRequest;
    expect(capOutputTokens(small, 100)).toBe(50);
    expect(small.max_tokens).toBe(50);
    const none = { model: 'm', messages: [] } as unknown as ChatRequest;
    expect(capOutputTokens(none, 100)).toBe(100);
    expect(none.max_tokens).toBe(100);
    expect(none.max_completion_tokens).toBeUndefined();
  });

  it('injects the fallback, keeps an uncapped ask, and leaves a request with neither untouched', () => {
    const fb = { model: 'm', messages: [] } as unknown as ChatRequest;
    expect(capOutputTokens(fb, 100, 20)).toBe(20);
    expect(fb.max_tokens).toBe(20);
    const asked = { model: 'm', messages: [], max_tokens: 500 } as unknown as ChatRequest;
    expect(capOutputTokens(asked, undefined)).toBe(500);
    expect(asked.max_tokens).toBe(500);
    const none = { model: 'm', messages: [] } as unknown as ChatRequest;
    expect(capOutputTokens(none, undefined)).toBeUndefined();
    expect(Object.keys(none)).toEqual(['model', 'messages']);
  });

  it('a null max_completion_tokens counts as not sent: max_tokens is the one clamped', () => {
    const req = { model: 'm', messages: [], max_completion_tokens: null, max_tokens: 300 } as unknown as ChatRequest;
    expect(capOutputTokens(req, 100)).toBe(100);
    expect(req.max_tokens).toBe(100);
    expect(req.max_completion_tokens).toBeNull();
  });
});

describe('applyLimits', () => {
  // Tokenizes differently in cl100k_base (gpt-4) and o200k_base (the default).
  const TEXT = 'Привет, как дела? 日本語のテキストも少し。';
  const req = (): ChatRequest => ({ model: 'bot', messages: [{ role: 'user', content: TEXT }] }) as ChatRequest;

  it('clamps or injects the output cap', async () => {
    const r = { ...testRoute([]), limits: { maxOutputTokens: 64 } } as RuntimeRoute;
    const q = req();
    await applyLimits(r, q);
    expect(q.max_tokens).toBe(64);
    await applyLimits(testRoute([]), q);
    expect(q.max_tokens).toBe(64);
  });

  it('counts the prompt with the first target\'s tokenizer and refuses one above maxInputTokens', async () => {
    const n = await countPromptTokens(req(), 'gpt-4');
    expect(n).not.toBe(await countPromptTokens(req(), 'bot'));
    const t = target('a', scripted([]), { model: 'gpt-4' });
    await applyLimits({ ...testRoute([t]), limits: { maxInputTokens: n } } as RuntimeRoute, req());
    const err = await failure(applyLimits({ ...testRoute([t]), limits: { maxInputTokens: n - 1 } } as RuntimeRoute, req()));
    expect(err).toMatchObject({ status: 400, type: 'invalid_request_error', code: 'context_length_exceeded', param: 'messages' });
    expect(err.message).toBe(`This request has ${n} input tokens; route "r" allows at most ${n - 1}.`);
  });

  it('a route without targets counts with the requested model', async () => {
    const n = await countPromptTokens(req(), 'bot');
    await applyLimits({ ...testRoute([]), limits: { maxInputTokens: n } } as RuntimeRoute, req());
    await expect(applyLimits({ ...testRoute([]), limits: { maxInputTokens: n - 1 } } as RuntimeRoute, req())).rejects.toThrow(`has ${n} input tokens`);
  });
});

describe('upstreamHttpError', () => {
  const t = target('a', scripted([]));
  const tctx = {} as TargetContext;
  const err = (status: number, body: unknown, headers: Record<string, string> = {}, now = 1_000_000) =>
    upstreamHttpError({ status, headers }, typeof body === 'string' ? body : json(body), t, tctx, now);

  it('names the target, the status, the code and the message; keeps the safe code and type', () => {
    const e = err(429, { error: { message: 'slow down', code: 'rate_limit', type: 'requests' } }, { 'retry-after': '2' });
    expect(e).toBeInstanceOf(UpstreamHttpError);
    expect(e.status).toBe(429);
    expect(e.message).toBe('a (openai-compatible) answered 429: rate_limit: slow down');
    expect(e.retryAfterMs).toBe(2000);
    expect(e.upstream).toEqual({ code: 'rate_limit', type: 'requests' });
  });

  it('a message that is the code, a code without message, neither', () => {
    expect(err(503, { error: { message: 'overloaded', code: 'overloaded' } }).message).toBe('a (openai-compatible) answered 503: overloaded');
    expect(err(503, { error: { code: 'overloaded' } }).message).toBe('a (openai-compatible) answered 503: overloaded: HTTP 503');
    expect(err(500, { error: { message: 'boom' } }).message).toBe('a (openai-compatible) answered 500: boom');
    expect(err(500, 'not json').message).toBe('a (openai-compatible) answered 500: HTTP 500');
  });

  it('an HTTP-date Retry-After is read against the given time', () => {
    const now = 1_700_000_000_000;
    expect(err(429, {}, { 'retry-after': new Date(now + 3000).toUTCString() }, now).retryAfterMs).toBe(3000);
  });
});

describe('recordError', () => {
  const rec = (): RequestRecord => ({ outcome: 'success', status: 200, errorType: undefined }) as RequestRecord;

  it('an ApiError: its status and code; 4xx but 429 is the client\'s, the rest upstream', () => {
    for (const [status, outcome] of [
      [400, 'client_error'],
      [499, 'client_error'],
      [429, 'upstream_error'],
      [500, 'upstream_error'],
      [502, 'upstream_error'],
    ] as const) {
      const r = rec();
      const e = new ApiError(status, 'upstream_error', `code_${status}`, 'm');
      expect(recordError(r, e)).toBe(e);
      expect(r).toEqual({ outcome, status, errorType: `code_${status}` });
    }
  });

  it('the client went away: 499 client_aborted', () => {
    const r = rec();
    const e = recordError(r, new TransportError('aborted', 'gone'));
    expect(r).toEqual({ outcome: 'client_aborted', status: 499, errorType: 'client_aborted' });
    expect(e.toJSON()).toEqual({ error: { message: 'client went away', type: 'invalid_request_error', param: null, code: 'client_aborted' } });
    expect(e.status).toBe(499);
  });

  it('a provider 4xx passes through with its own code and type, or paygo\'s', () => {
    const r = rec();
    const e = recordError(r, new UpstreamHttpError(400, 'a answered 400: bad', undefined, { code: 'context_length_exceeded', type: 'invalid_request' }));
    expect(r).toEqual({ outcome: 'client_error', status: 400, errorType: 'upstream_400' });
    expect(e.toJSON()).toEqual({ error: { message: 'a answered 400: bad', type: 'invalid_request', param: null, code: 'context_length_exceeded' } });
    expect(e.status).toBe(400);
    const bare = recordError(rec(), new UpstreamHttpError(422, 'x', undefined));
    expect(bare).toMatchObject({ status: 422, type: 'invalid_request_error', code: 'upstream_rejected_request' });
  });

  it('anything else (a transport reset, a bug): 500 internal', () => {
    for (const err of [new TransportError('reset', 'x'), new Error('bug'), 'a string']) {
      const r = rec();
      const e = recordError(r, err);
      expect(r).toEqual({ outcome: 'upstream_error', status: 500, errorType: 'internal' });
      expect(e.toJSON()).toEqual({ error: { message: 'internal error in the paygo sidecar', type: 'server_error', param: null, code: 'internal_error' } });
      expect(e.status).toBe(500);
    }
  });
});

describe('callerCost', () => {
  it('USD of the exact nano-dollars when priced, undefined when not', () => {
    expect(callerCost({ costNano: 1_234_500n, priced: true }, false)).toEqual({ usd: 0.0012345, estimated: false });
    expect(callerCost({ costNano: 0n, priced: true }, true)).toEqual({ usd: 0, estimated: true });
    expect(callerCost({ costNano: 0n, priced: false }, false)).toEqual({ usd: undefined, estimated: false });
  });
});

const okBody = (c: ChatCompletion, usage?: Usage) => json({ completion: c, ...(usage ? { usage } : {}) });

describe('completeChat', () => {
  it('answers with routing headers, the exact cost in the header and in usage.cost, and meters every field', async () => {
    const tr = scripted([{ body: [okBody(completion('Hi!', { usage: usageToOpenAI(u(12, 3)) }), u(12, 3, 2, 1, 0))] }]);
    const pricing = { input: '1', output: '2' };
    const r = testRoute([target('a', tr, { pricing })], { attempts: 1 });
    const h = harness(r);
    h.clock.t = 1_000;
    tr.send = ((send) => async (req: UpstreamRequest, opts: SendOptions) => {
      h.clock.t = 1_250;
      return send(req, opts);
    })(tr.send.bind(tr));
    const out = await completeChat(h.ctx, h.deps);
    expect(out.status).toBe(200);
    expect(out.headers).toEqual({
      'x-paygo-route': 'r',
      'x-paygo-target': 'a',
      'x-paygo-provider': 'openai-compatible',
      'x-paygo-attempts': '1',
      'x-paygo-cost-usd': '0.001234500',
    });
    expect(out.body.usage).toEqual({ ...usageToOpenAI(u(12, 3)), cost: 0.0012345 });
    expect(out.usage).toEqual(u(12, 3, 2, 1, 0));
    expect(out.cost).toEqual({ usd: 0.0012345, estimated: false });
    expect(out.nativeBody).toBeUndefined();
    const expected: RequestRecord = {
      requestId: 'req-1',
      operation: 'chat',
      api: 'chat',
      namespace: 'default',
      route: 'r',
      requestModel: 'bot',
      target: 'a',
      provider: 'openai-compatible',
      providerModel: 'a-model',
      responseModel: 'up-model-2025',
      stream: false,
      outcome: 'success',
      status: 200,
      errorType: undefined,
      usage: u(12, 3, 2, 1, 0),
      estimated: false,
      attempts: 1,
      durationMs: 250,
      ttftMs: 250,
      pricingOverride: pricing,
      cache: undefined,
    };
    expect(h.records).toEqual([expected]);
    expect(out.record).toEqual(expected);
    expect(h.metered).toEqual([PRICED]);
  });

  it('sends the adapter\'s request with the target\'s context and timeouts, and leaves no timer or listener behind', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const adapter = fakeAdapter();
    const tr = scripted([{ body: [okBody(completion('ok'), u(1, 1))] }]);
    const r = testRoute([target('a', tr, { adapter })], { attempts: 1 });
    const h = harness(r, { ctx: { api: 'responses', cache: 'miss' } });
    h.clock.t = 1_234_567;
    const out = await completeChat(h.ctx, h.deps);
    expect(adapter.calls.chatRequest).toHaveLength(1);
    expect(adapter.calls.chatRequest[0]!.stream).toBe(false);
    expect(adapter.calls.chatRequest[0]!.ctx).toEqual({
      model: 'a-model',
      baseURL: 'http://upstream.test/v1',
      apiKey: 'sk-test-key-0123456789',
      created: 1234,
      responseId: 'chatcmpl-req-1',
      settings: {},
      request: h.ctx.req,
    });
    expect(tr.sent[0]!.req.url).toBe('http://upstream.test/v1/chat/completions');
    expect(tr.sent[0]!.req.headers).toEqual({ 'content-type': 'application/json' });
    expect(tr.sent[0]!.opts.headersTimeoutMs).toBe(7000);
    expect(tr.sent[0]!.opts.bodyTimeoutMs).toBe(7000);
    expect(tr.sent[0]!.opts.signal).not.toBe(h.signal);
    expect(out.record).toMatchObject({ api: 'responses', cache: 'miss' });
    expect(vi.getTimerCount()).toBe(0);
    expect(h.signal.listenerCount('abort')).toBe(0);
  });

  it('an unpriced model: no cost header, no usage.cost', async () => {
    const tr = scripted([{ body: [okBody(completion('Hi!', { usage: usageToOpenAI(u(12, 3)) }), u(12, 3))] }]);
    const h = harness(testRoute([target('a', tr)], { attempts: 1 }), { result: { costNano: 0n, priced: false } });
    const out = await completeChat(h.ctx, h.deps);
    expect(out.headers['x-paygo-cost-usd']).toBeUndefined();
    expect(out.body.usage).toEqual(usageToOpenAI(u(12, 3)));
    expect(out.cost).toEqual({ usd: undefined, estimated: false });
  });

  it('no usage from the provider: estimated with the target model\'s tokenizer from the text and tool calls', async () => {
    const TEXT = 'Привет, как дела? 日本語のテキストも少し。';
    const c = completion(TEXT, { tools: [{ name: 'lookup', arguments: '{"q":"日本語"}' }] });
    const tr = scripted([{ body: [okBody(c)] }]);
    const h = harness(testRoute([target('a', tr, { model: 'gpt-4' })], { attempts: 1 }));
    const out = await completeChat(h.ctx, h.deps);
    const est = u(await countPromptTokens(h.ctx.req, 'gpt-4'), await countTextTokens(`${TEXT}lookup{"q":"日本語"}`, 'gpt-4'));
    expect(est.outputTokens).not.toBe(await countTextTokens(`${TEXT}lookup{"q":"日本語"}`, 'bot'));
    expect(out.usage).toEqual(est);
    expect(out.record).toMatchObject({ usage: est, estimated: true });
    expect(out.headers['x-paygo-usage-estimated']).toBe('true');
    expect(out.body.usage).toEqual({ ...usageToOpenAI(est), cost: 0.0012345 });
    expect(out.cost).toEqual({ usd: 0.0012345, estimated: true });
  });

  it('a choice without message and a null content estimate as no output', async () => {
    const c = { ...completion(null), choices: [{ index: 0, message: { role: 'assistant', content: null }, finish_reason: 'stop' }, { index: 1, finish_reason: 'stop' }] } as ChatCompletion;
    const tr = scripted([{ body: [okBody(c)] }]);
    const h = harness(testRoute([target('a', tr)], { attempts: 1 }));
    const out = await completeChat(h.ctx, h.deps);
    expect(out.usage.outputTokens).toBe(0);
    const none = { ...completion(null) } as ChatCompletion;
    delete (none as { choices?: unknown }).choices;
    const h2 = harness(testRoute([target('a', scripted([{ body: [okBody(none)] }]))], { attempts: 1 }));
    expect((await completeChat(h2.ctx, h2.deps)).usage.outputTokens).toBe(0);
  });

  it('an answer that is not JSON is a protocol failure of that target: the next one answers', async () => {
    const a = scripted([{ body: ['<html>oops</html>'] }]);
    const b = scripted([{ body: [okBody(completion('ok'), u(1, 1))] }]);
    const h = harness(testRoute([target('a', a), target('b', b)], { attempts: 1 }));
    const out = await completeChat(h.ctx, h.deps);
    expect(out.headers['x-paygo-target']).toBe('b');
    expect(out.record.attempts).toBe(2);
    const only = harness(testRoute([target('a', scripted([{ body: ['<html>oops</html>'] }]))], { attempts: 1 }));
    const err = await failure(completeChat(only.ctx, only.deps));
    expect(err.message).toBe('Every target of route "r" failed after 1 attempt: a (openai-compatible) sent a response that is not JSON');
  });

  it('2xx is success, 199 and 300 are refusals; a provider 4xx passes through with its code', async () => {
    const ok = harness(testRoute([target('a', scripted([{ status: 299, body: [okBody(completion('ok'), u(1, 1))] }]))], { attempts: 1 }));
    expect((await completeChat(ok.ctx, ok.deps)).status).toBe(200);
    for (const status of [199, 300]) {
      const h = harness(testRoute([target('a', scripted([{ status, body: [okBody(completion('ok'), u(1, 1))] }]))], { attempts: 1 }));
      const err = await failure(completeChat(h.ctx, h.deps));
      expect(err.status).toBe(status);
    }
    const h = harness(testRoute([target('a', scripted([{ status: 400, body: [json({ error: { message: 'too long', code: 'context_length_exceeded', type: 'invalid_request_error' } })] }]))]));
    const err = await failure(completeChat(h.ctx, h.deps));
    expect(err.toJSON()).toEqual({
      error: { message: 'a (openai-compatible) answered 400: context_length_exceeded: too long', type: 'invalid_request_error', param: null, code: 'context_length_exceeded' },
    });
    expect(h.records[0]).toMatchObject({ outcome: 'client_error', status: 400, errorType: 'upstream_400', target: 'a', attempts: 1 });
  });

  it('an error body that cannot be read: the status alone says enough', async () => {
    const adapter = fakeAdapter({ errorInfo: (body) => ({ message: body || undefined, code: undefined, type: undefined }) });
    const h = harness(testRoute([target('a', scripted([{ status: 400, body: ['{"err', new Error('reset')] }]), { adapter })]));
    expect((await failure(completeChat(h.ctx, h.deps))).message).toBe('a (openai-compatible) answered 400: HTTP 400');
  });

  it('an error body over 1 MiB is not read: the status alone says enough', async () => {
    const big = json({ error: { message: 'x'.repeat(1024 * 1024), code: 'huge' } });
    const h = harness(testRoute([target('a', scripted([{ status: 400, readable: Readable.from([Buffer.from(big)]) }]))]));
    const err = await failure(completeChat(h.ctx, h.deps));
    expect(err.message).toBe('a (openai-compatible) answered 400: HTTP 400');
    const small = json({ error: { message: 'y'.repeat(1000), code: 'huge' } });
    const h2 = harness(testRoute([target('a', scripted([{ status: 400, readable: Readable.from([Buffer.from(small)]) }]))]));
    expect((await failure(completeChat(h2.ctx, h2.deps))).message).toBe(`a (openai-compatible) answered 400: huge: ${'y'.repeat(1000)}`);
  });

  it('a failure is metered under the last target with its duration, told to onMetered and to the trace', async () => {
    const tr = scripted([{ status: 500, body: [json({ error: { message: 'down' } })] }]);
    const trace = fakeTrace();
    const h = harness(testRoute([target('a', tr)], { attempts: 1 }), { result: { costNano: 0n, priced: false }, ctx: { trace: trace as unknown as RequestTrace } });
    tr.send = ((send) => async (req: UpstreamRequest, opts: SendOptions) => {
      h.clock.t = 1_400;
      return send(req, opts);
    })(tr.send.bind(tr));
    const err = await failure(completeChat(h.ctx, h.deps));
    expect(err).toMatchObject({ status: 502, code: 'upstream_failed' });
    expect(h.records).toHaveLength(1);
    expect(h.records[0]).toMatchObject({ target: 'a', provider: 'openai-compatible', providerModel: 'a-model', attempts: 1, outcome: 'upstream_error', status: 502, errorType: 'upstream_failed', durationMs: 400, usage: undefined, estimated: false });
    expect(h.metered).toEqual([{ costNano: 0n, priced: false }]);
    expect(trace.finished).toHaveLength(1);
    expect(trace.finished[0]!.end).toEqual({ error: err });
    expect(h.signal.listenerCount('abort')).toBe(0);
  });

  it('with a trace: the upstream request carries the attempt\'s context, the trace gets the output', async () => {
    const tr = scripted([{ body: [okBody(completion('Hi!', { tools: [{ name: 'f', arguments: '{}' }] }), u(3, 4))] }]);
    const trace = fakeTrace();
    const h = harness(testRoute([target('a', tr)], { attempts: 1 }), { ctx: { trace: trace as unknown as RequestTrace } });
    await completeChat(h.ctx, h.deps);
    expect(tr.sent[0]!.req.headers).toEqual({ 'content-type': 'application/json', traceparent: '00-trace-span-01' });
    expect(trace.finished).toHaveLength(1);
    expect(trace.finished[0]!.cost).toEqual(PRICED);
    const end = trace.finished[0]!.end!;
    expect(end.output!.finishReasons).toEqual(['stop']);
    expect(end.output!.messages!()).toEqual([
      { role: 'assistant', parts: [{ type: 'text', content: 'Hi!' }, { type: 'tool_call', id: 'call_0', name: 'f', arguments: '{}' }], finish_reason: 'stop' },
    ]);
  });

  it('an adapter that authorizes: its request is the one sent', async () => {
    const tr = scripted([{ body: [okBody(completion('ok'), u(1, 1))] }]);
    const seen: CancelLike[] = [];
    type CancelLike = { aborted: boolean };
    const adapter = fakeAdapter({
      authorize: async (req, _ctx, signal) => {
        seen.push(signal);
        return { ...req, headers: { ...req.headers, authorization: 'Bearer signed' } };
      },
    });
    const h = harness(testRoute([target('a', tr, { adapter })], { attempts: 1 }));
    await completeChat(h.ctx, h.deps);
    expect(tr.sent[0]!.req.headers).toEqual({ 'content-type': 'application/json', authorization: 'Bearer signed' });
    expect(seen[0]).toBe(tr.sent[0]!.opts.signal);
  });

  it('the route\'s total deadline aborts the attempt (a timeout), not a moment before', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const tr = scripted(['hang']);
    const h = harness(testRoute([target('a', tr)], { attempts: 1, totalTimeoutMs: 5000 }));
    h.clock.t = 1_000;
    const p = failure(completeChat(h.ctx, h.deps));
    await vi.advanceTimersByTimeAsync(4999);
    expect(tr.sent).toHaveLength(1);
    expect(tr.sent[0]!.opts.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const err = await p;
    expect(tr.sent[0]!.opts.signal.reason).toEqual(new TransportError('timeout', 'total deadline exceeded'));
    expect(err).toMatchObject({ status: 504, code: 'upstream_timeout' });
    expect(vi.getTimerCount()).toBe(0);
    expect(h.signal.listenerCount('abort')).toBe(0);
  });

  it('a deadline already past aborts at once; the client leaving aborts the attempt', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const tr = scripted(['hang']);
    const h = harness(testRoute([target('a', tr)], { attempts: 1, totalTimeoutMs: 5000 }));
    // dispatch reads the clock first, the attempt later: time moved on past the deadline between
    let reads = 0;
    h.deps.now = () => (reads++ < 2 ? 1_000 : 9_000);
    const p = failure(completeChat(h.ctx, h.deps));
    await vi.advanceTimersByTimeAsync(0);
    expect(tr.sent[0]!.opts.signal.aborted).toBe(true);
    expect((await p).status).toBe(504);

    const tr2 = scripted(['hang']);
    const h2 = harness(testRoute([target('a', tr2)], { attempts: 1 }));
    const p2 = failure(completeChat(h2.ctx, h2.deps));
    await vi.advanceTimersByTimeAsync(0);
    h2.signal.abort(new TransportError('aborted', 'client went away'));
    const err = await p2;
    expect(err.status).toBe(499);
    expect(tr2.sent[0]!.opts.signal.aborted).toBe(true);
    expect(h2.records[0]).toMatchObject({ outcome: 'client_aborted', status: 499, target: 'a' });
  });
});

function passthrough(o: { reader?: Passthrough['reader']; events?: string[] } = {}) {
  const respondCalls: Array<{ native: unknown; cost: unknown }> = [];
  const p: Passthrough & { respondCalls: typeof respondCalls } = {
    respondCalls,
    api: 'messages',
    body: { model: 'bot', max_tokens: 999, system: 'be brief', messages: [{ role: 'user', content: 'hello there' }] },
    headers: { 'anthropic-beta': 'feature-x' },
    respond: (native, cost) => {
      respondCalls.push({ native, cost });
      return { native, cost };
    },
    encoder: () => ({
      push: (events) => events.map((e) => `N:${e.data}\n`).join(''),
      finish: (usage, cost) => `N-END:${json({ usage, cost })}\n`,
      fail: (f) => `N-FAIL:${json(f)}\n`,
    }),
    ...(o.reader ? { reader: o.reader } : {}),
  };
  return p;
}

describe('passthrough', () => {
  it('a target that speaks the client\'s API gets its body with the output cap; the answer comes back as it came, cost added', async () => {
    const natives: unknown[] = [];
    const adapter = fakeAdapter({
      passthroughRequest: (native, ctx, stream) => {
        natives.push({ native, model: ctx.model, stream });
        return { url: `${ctx.baseURL}/messages`, headers: { ...native.headers }, body: json({ ...native.body, model: ctx.model, max_tokens: native.maxTokens }) };
      },
    });
    const nativeAnswer = { completion: completion('Hi!', { usage: usageToOpenAI(u(5, 2)) }), usage: u(5, 2), extra: 'as it came' };
    const tr = scripted([{ body: [json(nativeAnswer)] }]);
    const p = passthrough();
    const h = harness(testRoute([target('a', tr, { adapter })], { attempts: 1 }), { req: { max_completion_tokens: 300, max_tokens: 200 }, ctx: { passthrough: p, api: 'messages' } });
    const out = await completeChat(h.ctx, h.deps);
    expect(natives).toEqual([{ native: { api: 'messages', body: p.body, headers: { 'anthropic-beta': 'feature-x' }, maxTokens: 300 }, model: 'a-model', stream: false }]);
    expect(adapter.calls.chatRequest).toHaveLength(0);
    expect(tr.sent[0]!.req.url).toBe('http://upstream.test/v1/messages');
    expect(JSON.parse(tr.sent[0]!.req.body)).toMatchObject({ system: 'be brief', model: 'a-model', max_tokens: 300 });
    expect(out.nativeBody).toEqual({ native: nativeAnswer, cost: { usd: 0.0012345, estimated: false } });
    expect(p.respondCalls).toHaveLength(1);
    expect(out.usage).toEqual(u(5, 2));

    // max_tokens when the request has no max_completion_tokens; none at all: undefined
    natives.length = 0;
    const h2 = harness(testRoute([target('a', scripted([{ body: [json(nativeAnswer)] }]), { adapter })], { attempts: 1 }), { req: { max_tokens: 200 }, ctx: { passthrough: passthrough() } });
    await completeChat(h2.ctx, h2.deps);
    const h3 = harness(testRoute([target('a', scripted([{ body: [json(nativeAnswer)] }]), { adapter })], { attempts: 1 }), { ctx: { passthrough: passthrough() } });
    await completeChat(h3.ctx, h3.deps);
    expect(natives.map((n) => (n as { native: { maxTokens: unknown } }).native.maxTokens)).toEqual([200, undefined]);
  });

  it('the passthrough\'s reader reads the native answer when it has one', async () => {
    const adapter = fakeAdapter({
      passthroughRequest: (native, ctx) => ({ url: `${ctx.baseURL}/messages`, headers: {}, body: json(native.body) }),
      chatResponse: () => {
        throw new Error('not the chat reader');
      },
    });
    const nativeAnswer = { id: 'msg_1', content: [{ type: 'text', text: 'Hi!' }], usage: { input_tokens: 9, output_tokens: 4 } };
    const reads: unknown[] = [];
    const p = passthrough({
      reader: {
        response: (body, ctx) => {
          reads.push([body, ctx.responseId]);
          return { completion: completion('Hi!'), usage: u(9, 4) };
        },
        stream: () => new FakeTranslator(),
      },
    });
    const h = harness(testRoute([target('a', scripted([{ body: [json(nativeAnswer)] }]), { adapter })], { attempts: 1 }), { ctx: { passthrough: p } });
    const out = await completeChat(h.ctx, h.deps);
    expect(reads).toEqual([[nativeAnswer, 'chatcmpl-req-1']]);
    expect(out.usage).toEqual(u(9, 4));
    expect(out.nativeBody).toEqual({ native: nativeAnswer, cost: { usd: 0.0012345, estimated: false } });
  });

  it('a target that does not speak it translates; with passthroughOnly it is skipped with that error', async () => {
    const tr = scripted([{ body: [okBody(completion('ok'), u(1, 1))] }]);
    const h = harness(testRoute([target('a', tr)], { attempts: 1 }), { ctx: { passthrough: passthrough() } });
    const out = await completeChat(h.ctx, h.deps);
    expect(out.nativeBody).toBeUndefined();
    expect(JSON.parse(tr.sent[0]!.req.body)).toEqual({ model: 'a-model', stream: false, messages: h.ctx.req.messages });

    const only = new ApiError(400, 'invalid_request_error', 'unsupported_content', 'only Anthropic targets can take this');
    const tr2 = scripted([]);
    const h2 = harness(testRoute([target('a', tr2)], { attempts: 1 }), { ctx: { passthrough: passthrough(), passthroughOnly: only } });
    expect(await failure(completeChat(h2.ctx, h2.deps))).toBe(only);
    expect(tr2.sent).toHaveLength(0);
    expect(h2.records[0]).toMatchObject({ target: undefined, attempts: 1, status: 400, outcome: 'client_error' });
    // An adapter that answers undefined for this API is skipped the same way.
    const adapter = fakeAdapter({ passthroughRequest: () => undefined });
    const h3 = harness(testRoute([target('a', scripted([]), { adapter })], { attempts: 1 }), { ctx: { passthrough: passthrough(), passthroughOnly: only } });
    expect(await failure(completeChat(h3.ctx, h3.deps))).toBe(only);
  });
});

describe('serveCached', () => {
  it('without a trace', () => {
    const h = harness(testRoute([]));
    expect(serveCached(h.ctx, h.deps, { target: 'a', provider: 'openai', responseModel: 'gpt-x' } as never)['x-paygo-cache']).toBe('hit');
    expect(h.records).toHaveLength(1);
  });

  it('answers from the cache: no cost, metered as a hit with its response model', () => {
    const trace = fakeTrace();
    const h = harness(testRoute([]), { result: { costNano: 0n, priced: true }, ctx: { trace: trace as unknown as RequestTrace, api: 'messages' } });
    h.clock.t = 1_030;
    const headers = serveCached(h.ctx, h.deps, { target: 'a', provider: 'openai', responseModel: 'gpt-x' } as never);
    expect(headers).toEqual({
      'x-paygo-route': 'r',
      'x-paygo-target': 'a',
      'x-paygo-provider': 'openai',
      'x-paygo-attempts': '0',
      'x-paygo-cache': 'hit',
      'x-paygo-cost-usd': '0.000000000',
    });
    expect(h.records).toHaveLength(1);
    expect(h.records[0]).toMatchObject({ cache: 'hit', responseModel: 'gpt-x', durationMs: 30, api: 'messages', stream: false, target: undefined, outcome: 'success', status: 200 });
    expect(trace.finished).toEqual([{ rec: h.records[0], cost: { costNano: 0n, priced: true }, end: undefined }]);
  });
});

/** The ChatStreamEncoder's SSE text of a chunk as the fake adapter sent it. */
const sseChunk = (content: string | null, o: Parameters<typeof ev.chunk>[1] = {}) => ev.chunk(content, o).replace(/^data: /, '').trim();
const chunkOf = (content: string | null, o: Parameters<typeof ev.chunk>[1] = {}) => (JSON.parse(sseChunk(content, o)) as { chunk: ChatCompletionChunk }).chunk;
const data = (v: unknown) => `data: ${typeof v === 'string' ? v : json(v)}\n\n`;

describe('streamChat', () => {
  // Tokenizes differently in cl100k_base (gpt-4) and o200k_base (the default).
  const TEXT = 'Привет, как дела? 日本語のテキストも少し。';

  it('the committed stream outlives the route\'s deadline (that is for the first byte only)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    let signal: { aborted: boolean } | undefined;
    const t = scripted([{ body: [ev.chunk('one'), () => vi.advanceTimersByTime(10_000), () => { if (signal!.aborted) throw new TransportError('timeout', 'upstream timed out'); }, ev.chunk('two'), ev.done()] }]);
    const send = t.send.bind(t);
    t.send = async (req, opts) => {
      signal = opts.signal;
      return send(req, opts);
    };
    const h = harness(testRoute([target('a', t)], { attempts: 1, totalTimeoutMs: 5000 }), { req: { stream: true } });
    expect(await streamChat(h.ctx, h.deps)).toMatchObject({ outcome: 'success' });
    expect(signal!.aborted).toBe(false);
  });

  it('commits on the first chunk: head, chunks, usage with the cost, [DONE]; ttft and duration by the clock', async () => {
    let h!: ReturnType<typeof harness>;
    const tr = scripted([
      {
        body: [
          () => (h.clock.t = 1_100),
          ev.chunk('Hel', { model: 'm-first' }),
          () => (h.clock.t = 1_300),
          ev.chunk('lo', { model: 'm-second' }) + ev.chunk('', { finish: 'stop' }),
          ev.usage(u(11, 2, 4)),
          ev.done(),
        ],
      },
    ]);
    h = harness(testRoute([target('a', tr)], { attempts: 1 }), { req: { stream: true, stream_options: { include_usage: true } }, ctx: { extraHeaders: { 'x-paygo-downgraded': 'cheap', 'x-paygo-route': 'overridden' } } });
    const rec = await streamChat(h.ctx, h.deps);
    expect(h.res.status).toBe(200);
    expect(h.res.head).toEqual({
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-request-id': 'req-1',
      'x-paygo-downgraded': 'cheap',
      'x-paygo-route': 'r',
      'x-paygo-target': 'a',
      'x-paygo-provider': 'openai-compatible',
      'x-paygo-attempts': '1',
    });
    // one write per upstream read, the last events with the end
    expect(h.res.writes).toEqual([data(chunkOf('Hel', { model: 'm-first' })), data(chunkOf('lo', { model: 'm-second' })) + data(chunkOf('', { finish: 'stop' }))]);
    expect(h.res.ends).toEqual([
      data({ id: 'c1', object: 'chat.completion.chunk', created: 7, model: 'm-first', choices: [], usage: { ...usageToOpenAI(u(11, 2, 4)), cost: 0.0012345 } }) + data('[DONE]'),
    ]);
    expect(rec).toEqual({
      requestId: 'req-1',
      operation: 'chat',
      api: 'chat',
      namespace: 'default',
      route: 'r',
      requestModel: 'bot',
      target: 'a',
      provider: 'openai-compatible',
      providerModel: 'a-model',
      responseModel: 'm-first',
      stream: true,
      outcome: 'success',
      status: 200,
      errorType: undefined,
      usage: u(11, 2, 4),
      estimated: false,
      attempts: 1,
      durationMs: 300,
      ttftMs: 100,
      pricingOverride: undefined,
      cache: undefined,
    });
    expect(h.records).toEqual([rec]);
    expect(h.metered).toEqual([PRICED]);
    expect(tr.bodies[0]).toEqual({ pulled: 4, completed: true, returned: false });
  });

  it('the translator\'s response model wins over the chunks\'', async () => {
    const tr = scripted([{ body: [ev.chunk('a', { model: 'chunk-model' }), ev.model('provider-model'), ev.usage(u(1, 1)), ev.done()] }]);
    const h = harness(testRoute([target('a', tr)], { attempts: 1 }), { req: { stream: true } });
    expect((await streamChat(h.ctx, h.deps)).responseModel).toBe('provider-model');
    expect(h.res.ends).toEqual([data('[DONE]')]);
  });

  it('fails over while nothing was streamed: an empty stream, an error event before the first chunk', async () => {
    const a = scripted([{ body: [] }]);
    const b = scripted([{ body: [ev.error('overloaded now', 'overloaded_error')] }]);
    const c = scripted([{ body: [ev.chunk('from c'), ev.usage(u(3, 2)), ev.done()] }]);
    const h = harness(testRoute([target('a', a), target('b', b), target('c', c)], { attempts: 1 }), { req: { stream: true } });
    const rec = await streamChat(h.ctx, h.deps);
    expect(rec).toMatchObject({ target: 'c', attempts: 3, outcome: 'success', usage: u(3, 2), estimated: false });
    expect(h.res.body).toBe(data(chunkOf('from c')) + data('[DONE]'));
    expect(h.res.head!['x-paygo-attempts']).toBe('3');
    expect(c.sent).toHaveLength(1);
    // c's first answer ended without a chunk and without its end event: c is retried
    const c2 = scripted([{ body: [ev.usage(u(3, 0))] }, { body: [ev.chunk('from c'), ev.usage(u(3, 2)), ev.done()] }]);
    const h2 = harness(testRoute([target('c', c2)], { attempts: 2 }), { req: { stream: true } });
    expect(await streamChat(h2.ctx, h2.deps)).toMatchObject({ target: 'c', attempts: 2, usage: u(3, 2) });
    expect(h2.res.body).toBe(data(chunkOf('from c')) + data('[DONE]'));
  });

  it('before the commit a failure is metered and thrown like a non-stream one; nothing was written', async () => {
    let h!: ReturnType<typeof harness>;
    const a = scripted([{ body: [() => (h.clock.t = 1_450)] }]);
    const trace = fakeTrace();
    h = harness(testRoute([target('a', a)], { attempts: 1 }), { req: { stream: true }, ctx: { trace: trace as unknown as RequestTrace } });
    const err = await failure(streamChat(h.ctx, h.deps));
    expect(h.records[0]!.durationMs).toBe(450);
    expect(trace.finished.map((f) => f.end)).toEqual([{ error: err }]);
    expect(err.message).toBe('Every target of route "r" failed after 1 attempt: a (openai-compatible) closed the stream before sending anything');
    expect(h.records[0]).toMatchObject({ target: 'a', outcome: 'upstream_error', status: 502, stream: true });
    expect(h.res.status).toBeUndefined();
    expect(h.res.writes).toEqual([]);
    expect(h.signal.listenerCount('abort')).toBe(0);
  });

  it('a stream that only ends (no chunk) commits and finishes', async () => {
    const tr = scripted([{ body: [ev.usage(u(4, 0)), ev.done()] }]);
    const h = harness(testRoute([target('a', tr)], { attempts: 1 }), { req: { stream: true } });
    const rec = await streamChat(h.ctx, h.deps);
    expect(rec).toMatchObject({ outcome: 'success', usage: u(4, 0), estimated: false, responseModel: undefined });
    expect(h.res.writes).toEqual([]);
    expect(h.res.ends).toEqual([data('[DONE]')]);
  });

  it('after the commit an error event becomes the stream\'s error event: no failover, usage estimated', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const a = scripted([{ body: [ev.chunk(TEXT), ev.chunk(null, { tools: [null] }), ev.error('model crashed', 'server_error'), ev.chunk('never')] }]);
    const b = scripted([]);
    const h = harness(testRoute([target('a', a, { model: 'gpt-4' }), target('b', b)], { attempts: 1 }), { req: { stream: true }, result: { costNano: 5n, priced: true } });
    const rec = await streamChat(h.ctx, h.deps);
    expect(b.sent).toHaveLength(0);
    expect(h.res.body).toBe(data(chunkOf(TEXT)) + data(chunkOf(null, { tools: [null] })) + data({ error: { message: 'model crashed', type: 'server_error', param: null, code: 'upstream_stream_error' } }));
    const est = u(await countPromptTokens(h.ctx.req, 'gpt-4'), await countTextTokens(TEXT, 'gpt-4'));
    expect(est.outputTokens).not.toBe(await countTextTokens(TEXT, 'bot'));
    expect(rec).toMatchObject({ outcome: 'stream_error', status: 200, errorType: 'server_error', usage: est, estimated: true, target: 'a' });
    expect(a.bodies[0]).toEqual({ pulled: 3, completed: false, returned: true });
    expect(vi.getTimerCount()).toBe(0);
    expect(h.signal.listenerCount('abort')).toBe(0);
  });

  it('an error type that is not a safe code, and a failure that is no error event, are upstream_error', async () => {
    const a = scripted([{ body: [ev.chunk('x'), ev.error('bad', 'has spaces!')] }]);
    const h = harness(testRoute([target('a', a)], { attempts: 1 }), { req: { stream: true } });
    expect(await streamChat(h.ctx, h.deps)).toMatchObject({ outcome: 'stream_error', errorType: 'upstream_error' });
    expect(h.res.ends).toEqual([data({ error: { message: 'bad', type: 'upstream_error', param: null, code: 'upstream_stream_error' } })]);

    const b = scripted([{ body: [ev.chunk('x'), new TransportError('reset', 'upstream connection failed (ECONNRESET)')] }]);
    const h2 = harness(testRoute([target('b', b)], { attempts: 1 }), { req: { stream: true } });
    expect(await streamChat(h2.ctx, h2.deps)).toMatchObject({ outcome: 'stream_error', errorType: 'upstream_error', status: 200 });
    expect(h2.res.ends).toEqual([data({ error: { message: 'upstream connection failed (ECONNRESET)', type: 'upstream_error', param: null, code: 'upstream_stream_error' } })]);

    const c = scripted([{ body: [ev.chunk('x'), 'data: not json\n\n'] }]);
    const h3 = harness(testRoute([target('c', c)], { attempts: 1 }), { req: { stream: true } });
    await streamChat(h3.ctx, h3.deps);
    expect(JSON.parse(h3.res.ends[0]!.slice(6))).toMatchObject({ error: { type: 'upstream_error', code: 'upstream_stream_error' } });
  });

  it('a stream that ends without its end event was cut: an error event, estimated usage', async () => {
    const a = scripted([{ body: [ev.chunk('half', { tools: [{ name: 'get', arguments: '{"a":1}' }, {}] }), ev.usage(u(0, 1))] }]);
    const trace = fakeTrace();
    const h = harness(testRoute([target('a', a)], { attempts: 1 }), { req: { stream: true }, ctx: { trace: trace as unknown as RequestTrace } });
    const rec = await streamChat(h.ctx, h.deps);
    const outText = 'halfget{"a":1}';
    const est = u(await countPromptTokens(h.ctx.req, 'a-model'), await countTextTokens(outText, 'a-model'));
    expect(est.outputTokens).toBeGreaterThan(1);
    // the reported usage's fields stay, its output is at least the estimate, a zero input is estimated
    expect(rec).toMatchObject({ outcome: 'stream_error', errorType: 'upstream_error', usage: { ...u(0, 1), inputTokens: est.inputTokens, outputTokens: est.outputTokens }, estimated: true });
    expect(h.res.ends).toEqual([data({ error: { message: 'a (openai-compatible) ended the stream early', type: 'upstream_error', param: null, code: 'upstream_stream_error' } })]);
    const end = trace.finished[0]!.end!;
    expect(end.error).toEqual({ code: 'upstream_stream_error', message: 'a (openai-compatible) ended the stream early' });
    expect(end.output!.finishReasons).toEqual([]);
    expect(end.output!.messages!()).toEqual([{ role: 'assistant', parts: [{ type: 'text', content: outText }], finish_reason: '' }]);
  });

  it('a cut stream keeps the provider\'s larger output count and its input count', async () => {
    const a = scripted([{ body: [ev.chunk('hi'), ev.usage(u(40, 500, 8)), new TransportError('reset', 'gone')] }]);
    const h = harness(testRoute([target('a', a)], { attempts: 1 }), { req: { stream: true } });
    expect((await streamChat(h.ctx, h.deps)).usage).toEqual(u(40, 500, 8));
  });

  it('the client leaving mid-stream: client_aborted, 499, the body just ends and upstream is no longer read', async () => {
    let h!: ReturnType<typeof harness>;
    const a = scripted([{ body: [ev.chunk('one'), () => h.signal.abort(new TransportError('aborted', 'client went away')), new TransportError('aborted', 'request aborted'), ev.chunk('two'), ev.done()] }]);
    h = harness(testRoute([target('a', a)], { attempts: 1 }), { req: { stream: true } });
    const rec = await streamChat(h.ctx, h.deps);
    expect(rec).toMatchObject({ outcome: 'client_aborted', status: 499, errorType: 'client_aborted', estimated: true });
    expect(h.res.ends).toEqual([undefined]);
    expect(h.res.body).toBe(data(chunkOf('one')));

    // aborted by the transport while the client's signal is not (yet) aborted
    const b = scripted([{ body: [ev.chunk('one'), new TransportError('aborted', 'request aborted')] }]);
    const h2 = harness(testRoute([target('b', b)], { attempts: 1 }), { req: { stream: true } });
    expect(await streamChat(h2.ctx, h2.deps)).toMatchObject({ outcome: 'client_aborted', status: 499 });
    expect(h2.res.ends).toEqual([undefined]);

    // the signal is aborted while the stream is read, then the upstream fails with something else
    let h3!: ReturnType<typeof harness>;
    const c = scripted([{ body: [ev.chunk('one'), () => h3.signal.abort(new TransportError('aborted', 'x')), new UpstreamProtocolError('garbage')] }]);
    h3 = harness(testRoute([target('c', c)], { attempts: 1 }), { req: { stream: true } });
    expect(await streamChat(h3.ctx, h3.deps)).toMatchObject({ outcome: 'client_aborted' });
  });

  it('a stream the client already closed gets no last events', async () => {
    let h!: ReturnType<typeof harness>;
    const a = scripted([{ body: [ev.chunk('one'), () => (h.res.destroyed = true), ev.usage(u(1, 1)), ev.done()] }]);
    h = harness(testRoute([target('a', a)], { attempts: 1 }), { req: { stream: true } });
    expect(await streamChat(h.ctx, h.deps)).toMatchObject({ outcome: 'success' });
    expect(h.res.ends).toEqual([]);
    let h2!: ReturnType<typeof harness>;
    const b = scripted([{ body: [ev.chunk('one'), () => (h2.res.destroyed = true), ev.error('x', 'y')] }]);
    h2 = harness(testRoute([target('b', b)], { attempts: 1 }), { req: { stream: true } });
    expect(await streamChat(h2.ctx, h2.deps)).toMatchObject({ outcome: 'stream_error' });
    expect(h2.res.ends).toEqual([]);
  });

  it('waits for drain when the socket is full; a client gone meanwhile ends the stream', async () => {
    let h!: ReturnType<typeof harness>;
    let drainedEarly = false;
    const a = scripted([
      {
        body: [
          ev.chunk('one'),
          () => {
            // chat.ts waits on 'drain' before it reads on
            drainedEarly = h.res.listenerCount('drain') === 0;
          },
          ev.chunk('two'),
          ev.usage(u(1, 2)),
          ev.done(),
        ],
      },
    ]);
    h = harness(testRoute([target('a', a)], { attempts: 1 }), { req: { stream: true } });
    h.res.writeReturns = [false];
    const p = streamChat(h.ctx, h.deps);
    await new Promise((r) => setImmediate(r));
    expect(h.res.listenerCount('drain')).toBe(1);
    expect(h.res.listenerCount('close')).toBe(1);
    expect(h.signal.listenerCount('abort')).toBeGreaterThan(0);
    h.res.emit('drain');
    const rec = await p;
    expect(drainedEarly).toBe(true);
    expect(rec.outcome).toBe('success');
    expect(h.res.listenerCount('drain')).toBe(0);
    expect(h.res.listenerCount('close')).toBe(0);
    expect(h.signal.listenerCount('abort')).toBe(0);
    expect(h.res.body).toBe(data(chunkOf('one')) + data(chunkOf('two')) + data('[DONE]'));

    // a close instead of a drain goes on too
    let h2!: ReturnType<typeof harness>;
    const b = scripted([{ body: [ev.chunk('one'), ev.chunk('two'), ev.done()] }]);
    h2 = harness(testRoute([target('b', b)], { attempts: 1 }), { req: { stream: true } });
    h2.res.writeReturns = [false];
    const p2 = streamChat(h2.ctx, h2.deps);
    await new Promise((r) => setImmediate(r));
    h2.res.emit('close');
    expect((await p2).outcome).toBe('success');
    expect(h2.res.listenerCount('drain')).toBe(0);

    // the client leaves while the write waits
    const c = scripted([{ body: [ev.chunk('one'), ev.chunk('two'), ev.done()] }]);
    const h3 = harness(testRoute([target('c', c)], { attempts: 1 }), { req: { stream: true } });
    h3.res.writeReturns = [false];
    const p3 = streamChat(h3.ctx, h3.deps);
    await new Promise((r) => setImmediate(r));
    h3.signal.abort(new TransportError('aborted', 'client went away'));
    expect(await p3).toMatchObject({ outcome: 'client_aborted', status: 499 });
    expect(h3.res.listenerCount('drain')).toBe(0);
    expect(h3.res.listenerCount('close')).toBe(0);
    expect(h3.res.body).toBe(data(chunkOf('one')));

    // already gone when the socket is full: no wait at all
    let h4!: ReturnType<typeof harness>;
    const d = scripted([{ body: [() => h4.signal.abort(new TransportError('aborted', 'x')), ev.chunk('one'), ev.chunk('two'), ev.done()] }]);
    h4 = harness(testRoute([target('d', d)], { attempts: 1 }), { req: { stream: true } });
    h4.res.writeReturns = [false];
    expect(await streamChat(h4.ctx, h4.deps)).toMatchObject({ outcome: 'client_aborted', status: 499 });
    expect(h4.res.listenerCount('drain')).toBe(0);
    expect(h4.res.writes).toEqual([data(chunkOf('one'))]);
  });

  it('writes nothing for chunks the encoder holds back', async () => {
    const pushes: number[] = [];
    const encoder = (): StreamEncoder => ({
      push: (chunks) => {
        pushes.push(chunks.length);
        return chunks.length === 2 ? 'TWO\n' : '';
      },
      finish: (usage, cost) => `END ${json({ usage, cost })}\n`,
      fail: () => 'FAIL\n',
    });
    const a = scripted([{ body: [ev.chunk('one'), ev.chunk('two') + ev.chunk('three'), ev.usage(u(2, 3)), ev.done()] }]);
    const h = harness(testRoute([target('a', a)], { attempts: 1 }), { req: { stream: true }, ctx: { encoder }, result: { costNano: 0n, priced: false } });
    await streamChat(h.ctx, h.deps);
    expect(pushes).toEqual([1, 2, 0, 0]);
    expect(h.res.writes).toEqual(['TWO\n']);
    expect(h.res.ends).toEqual([`END ${json({ usage: u(2, 3), cost: { estimated: false } })}\n`]);
  });

  it('reads a finished stream to its end (the connection is reused), up to 64 KiB', async () => {
    const a = scripted([{ body: [ev.chunk('x'), ev.usage(u(1, 1)) + ev.done(), 'tail-1', 'tail-2'] }]);
    const h = harness(testRoute([target('a', a)], { attempts: 1 }), { req: { stream: true } });
    await streamChat(h.ctx, h.deps);
    await new Promise((r) => setImmediate(r));
    expect(a.bodies[0]).toEqual({ pulled: 4, completed: true, returned: false });

    const big = 'z'.repeat(16 * 1024);
    const b = scripted([{ body: [ev.chunk('x'), ev.done(), big, big, big, big, big, big] }]);
    const h2 = harness(testRoute([target('b', b)], { attempts: 1 }), { req: { stream: true } });
    await streamChat(h2.ctx, h2.deps);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    // 4 × 16 KiB reach the limit, the fifth goes over it: reading stops there
    expect(b.bodies[0]).toEqual({ pulled: 7, completed: false, returned: true });

    // a body that fails after the end event: nothing to do
    const c = scripted([{ body: [ev.chunk('x'), ev.done(), new Error('reset after the end')] }]);
    const h3 = harness(testRoute([target('c', c)], { attempts: 1 }), { req: { stream: true } });
    expect((await streamChat(h3.ctx, h3.deps)).outcome).toBe('success');
  });

  it('with a trace: the chunks\' finish reasons and the streamed text', async () => {
    const a = scripted([{ body: [ev.chunk('Hi', { tools: [{ name: 'f' }, { arguments: '{}' }] }), ev.chunk('!', { finish: 'tool_calls' }), ev.usage(u(1, 2)), ev.done()] }]);
    const trace = fakeTrace();
    const h = harness(testRoute([target('a', a)], { attempts: 1 }), { req: { stream: true }, ctx: { trace: trace as unknown as RequestTrace } });
    await streamChat(h.ctx, h.deps);
    expect(a.sent[0]!.req.headers.traceparent).toBe('00-trace-span-01');
    const end = trace.finished[0]!.end!;
    expect(end.error).toBeUndefined();
    expect(end.output!.finishReasons).toEqual(['tool_calls']);
    expect(end.output!.messages!()).toEqual([{ role: 'assistant', parts: [{ type: 'text', content: 'Hif{}!' }], finish_reason: 'tool_calls' }]);
  });

  it('passthrough: the provider\'s own events reach the client, then its closing events with usage and cost', async () => {
    const adapter = fakeAdapter({ passthroughRequest: (native, ctx, stream) => ({ url: `${ctx.baseURL}/messages`, headers: {}, body: json({ ...native.body, stream }) }) });
    const a = scripted([{ body: [ev.chunk('Hi'), ev.chunk('!') + ev.usage(u(6, 2)), ev.done()] }]);
    const h = harness(testRoute([target('a', a, { adapter })], { attempts: 1 }), { req: { stream: true }, ctx: { passthrough: passthrough() } });
    const rec = await streamChat(h.ctx, h.deps);
    expect(JSON.parse(a.sent[0]!.req.body)).toMatchObject({ stream: true, system: 'be brief' });
    const raw = (s: string) => `N:${s.replace(/^data: /, '').trim()}\n`;
    expect(h.res.writes).toEqual([raw(ev.chunk('Hi')), raw(ev.chunk('!')) + raw(ev.usage(u(6, 2))), raw(ev.done())]);
    expect(h.res.ends).toEqual([`N-END:${json({ usage: u(6, 2), cost: { usd: 0.0012345, estimated: false } })}\n`]);
    expect(rec).toMatchObject({ usage: u(6, 2), outcome: 'success' });

    // its error event is not passed on as it came: the encoder's fail() is
    const b = scripted([{ body: [ev.chunk('Hi'), ev.error('boom', 'api_error')] }]);
    const h2 = harness(testRoute([target('b', b, { adapter })], { attempts: 1 }), { req: { stream: true }, ctx: { passthrough: passthrough() } });
    await streamChat(h2.ctx, h2.deps);
    expect(h2.res.ends).toEqual([`N-FAIL:${json({ message: 'boom', type: 'api_error', code: 'upstream_stream_error' })}\n`]);
    expect(h2.res.body).not.toContain('"error"');
  });

  it('passthrough: an event that opens the answer commits before any chunk; other events do not', async () => {
    const adapter = fakeAdapter({ passthroughRequest: (native, ctx) => ({ url: `${ctx.baseURL}/messages`, headers: {}, body: json(native.body) }) });
    const thinking = `data: ${json({ thinking: 'hmm' })}\n\n`;
    const opensAnswer = (e: SseEvent) => e.data.includes('thinking');
    // opened, then an error: committed, so no failover; the error reaches the client as its event
    const a = scripted([{ body: [ev.model('x'), thinking, ev.error('late', 'api_error')] }]);
    const b = scripted([]);
    const h = harness(testRoute([target('a', a, { adapter }), target('b', b, { adapter })], { attempts: 1 }), { req: { stream: true }, ctx: { passthrough: { ...passthrough(), opensAnswer } } });
    expect(await streamChat(h.ctx, h.deps)).toMatchObject({ target: 'a', outcome: 'stream_error' });
    expect(b.sent).toHaveLength(0);
    expect(h.res.writes).toEqual([`N:${json({ model: 'x' })}\nN:${json({ thinking: 'hmm' })}\n`]);
    // not opened (no such event, or no opensAnswer): the error before the first chunk fails over
    for (const p of [{ ...passthrough(), opensAnswer: () => false }, passthrough()]) {
      const a2 = scripted([{ body: [thinking, ev.error('early', 'api_error')] }]);
      const b2 = scripted([{ body: [ev.chunk('from b'), ev.done()] }]);
      const h2 = harness(testRoute([target('a', a2, { adapter }), target('b', b2, { adapter })], { attempts: 1 }), { req: { stream: true }, ctx: { passthrough: p } });
      expect(await streamChat(h2.ctx, h2.deps)).toMatchObject({ target: 'b', attempts: 2, outcome: 'success' });
    }
    // a translated request never commits on an event, whatever the passthrough says
    const a3 = scripted([{ body: [thinking, ev.error('early', 'api_error')] }]);
    const b3 = scripted([{ body: [ev.chunk('from b'), ev.done()] }]);
    const h3 = harness(testRoute([target('a', a3), target('b', b3)], { attempts: 1 }), { req: { stream: true }, ctx: { passthrough: { ...passthrough(), opensAnswer } } });
    expect(await streamChat(h3.ctx, h3.deps)).toMatchObject({ target: 'b', outcome: 'success' });
    // opened, then the body ends without its end event: committed, cut
    const a4 = scripted([{ body: [thinking] }]);
    const h4 = harness(testRoute([target('a', a4, { adapter })], { attempts: 1 }), { req: { stream: true }, ctx: { passthrough: { ...passthrough(), opensAnswer } } });
    expect(await streamChat(h4.ctx, h4.deps)).toMatchObject({ target: 'a', outcome: 'stream_error', errorType: 'upstream_error' });
  });

  it('passthrough with a reader: its translator reads the stream', async () => {
    const adapter = fakeAdapter({
      passthroughRequest: (native, ctx) => ({ url: `${ctx.baseURL}/messages`, headers: {}, body: json(native.body) }),
      chatStream: () => {
        throw new Error('not the chat translator');
      },
    });
    const a = scripted([{ body: [ev.chunk('Hi'), ev.usage(u(6, 2)), ev.done()] }]);
    const p = passthrough({ reader: { response: () => ({ completion: completion('x'), usage: undefined }), stream: () => new FakeTranslator() } });
    const h = harness(testRoute([target('a', a, { adapter })], { attempts: 1 }), { req: { stream: true }, ctx: { passthrough: p } });
    expect(await streamChat(h.ctx, h.deps)).toMatchObject({ outcome: 'success', usage: u(6, 2) });
  });

  it('an adapter with its own framing decodes the body', async () => {
    const decoded: number[] = [];
    const adapter = fakeAdapter({
      streamDecoder: () => ({
        push: (bytes) => {
          decoded.push(bytes.byteLength);
          return Buffer.from(bytes)
            .toString()
            .split('|')
            .filter(Boolean)
            .map((d) => ({ data: d }));
        },
        end: () => [],
      }),
    });
    const a = scripted([{ body: [`${json({ chunk: chunkOf('Hi') })}|${json({ usage: u(1, 1) })}|${json({ done: true })}|`] }]);
    const h = harness(testRoute([target('a', a, { adapter })], { attempts: 1 }), { req: { stream: true } });
    expect(await streamChat(h.ctx, h.deps)).toMatchObject({ outcome: 'success', usage: u(1, 1) });
    expect(decoded).toHaveLength(1);
  });
});
