import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CancelSignal } from './cancel.js';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from './openai-schema.js';
import { ApiError, invalidRequest } from './errors.js';
import { formatUsd } from '../crds/src/money.js';
import type { Meter, MeterResult, Outcome, RequestRecord } from './metering/record.js';
import { countPromptTokens, countTextTokens } from './metering/tokens.js';
import type { StreamDecoder, StreamTranslator, TargetContext, UpstreamRequest } from './providers/types.js';
import { UpstreamHttpError, UpstreamProtocolError, UpstreamStreamError } from './providers/errors.js';
import { safeCode } from './providers/redact.js';
import { dispatch, type DispatchOptions, type QuotaGate } from './router/dispatch.js';
import type { ProviderBackoffs } from './ratelimit/provider-backoffs.js';
import type { RuntimeRoute, RuntimeTarget } from './router/runtime.js';
import { upstreamRetryAfter } from './router/strategy.js';
import { SseParser, type SseEvent } from './sse.js';
import type { CachedResponse } from './response-cache.js';
import { readAll, readBody, TransportError, type UpstreamResponse } from './transport.js';
import { usageToOpenAI, type Usage } from './usage.js';
import { ChatStreamEncoder } from './apis/chat-completions.js';
import { costField, type ApiName, type CallerCost, type Passthrough, type PassthroughReader, type StreamEncoder } from './apis/types.js';
import { completionFinishReasons, completionMessages, type RequestTrace, type TracedOutput } from './tracing.js';

export interface ChatContext {
  requestId: string;
  route: RuntimeRoute;
  req: ChatRequest;
  /** Aborted when the client goes away. */
  signal: CancelSignal;
  raw: { req: IncomingMessage; res: ServerResponse };
  startedAt: number;
  /** Response headers decided before dispatch (e.g. x-paygo-downgraded). */
  extraHeaders?: Record<string, string>;
  /** Called once with the metered cost and the record when the request is over (budget and rate-limit settlement). */
  onMetered?: (result: MeterResult, rec: RequestRecord) => void;
  /** The request's provider quotas, when a target of its route has one. */
  quota?: QuotaGate;
  /** Set on a route with a response cache when the request was not found in it. */
  cache?: 'miss';
  /** The request's trace when tracing is on. */
  trace?: RequestTrace;
  /** The API the request came in on (default chat). */
  api?: ApiName;
  /** How a stream reaches the client (default: Chat Completions chunks). */
  encoder?: () => StreamEncoder;
  /** The client's own request, for targets that speak its API (sent as it came, answered as the provider answers). */
  passthrough?: Passthrough;
  /** Only targets that take the passthrough can answer; the others are skipped with this error. */
  passthroughOnly?: ApiError;
}

/** Meters a finished request, tells the caller its cost and ends its trace. */
function meter(ctx: ChatContext, deps: ChatDeps, rec: RequestRecord, end?: Parameters<RequestTrace['finish']>[2]): MeterResult {
  const result = deps.meter.record(rec);
  ctx.onMetered?.(result, rec);
  ctx.trace?.finish(rec, result, end);
  return result;
}

export interface ChatDeps extends Omit<DispatchOptions, 'signal'> {
  meter: Meter;
  /** Where providers' rate-limit signals go (every upstream answer's headers); absent: not read. */
  backoffs?: ProviderBackoffs;
}

/**
 * One request's dispatch options: the shared dependencies and the request's own signal, trace
 * and quotas. Field by field, not `{ ...deps, signal }`: V8 gives a spread of an object holding
 * functions, with fields added after it, a new hidden class every time — ≈ 2 µs per request when
 * warm and ≈ 30 µs after an idle gap, against ≈ 0.1 µs for this literal.
 */
export function dispatchOptions(deps: ChatDeps, signal: CancelSignal, attempts: DispatchOptions['attempts'], quota: QuotaGate | undefined): DispatchOptions {
  return { signal, now: deps.now, random: deps.random, sleep: deps.sleep, unitPrice: deps.unitPrice, hooks: deps.hooks, attempts, quota };
}

/**
 * Sends one attempt to its target. What the provider says of its rate limits (headers of any
 * answer, streams included: they come before the body) is noted before anything else.
 */
export function sendUpstream(target: RuntimeTarget, upstream: UpstreamRequest, signal: CancelSignal, deps: Pick<ChatDeps, 'backoffs'>): Promise<UpstreamResponse> {
  const sent = target.transport.send(upstream, { signal, headersTimeoutMs: target.timeoutMs, bodyTimeoutMs: target.timeoutMs });
  const backoffs = deps.backoffs;
  if (!backoffs) return sent;
  return sent.then((res) => {
    backoffs.observe(target.backoffKey, res.status, res.headers);
    return res;
  });
}

/**
 * Clamps the request's output cap (max_completion_tokens or max_tokens, whichever it used) to
 * `cap`, injecting max_tokens = `fallback` when it sent none. Returns the effective cap.
 */
export function capOutputTokens(req: ChatRequest, cap: number | undefined, fallback = cap): number | undefined {
  const asked = req.max_completion_tokens ?? req.max_tokens ?? undefined;
  const base = asked ?? fallback;
  if (base === undefined) return undefined;
  const effective = cap === undefined ? base : Math.min(base, cap);
  if (req.max_completion_tokens != null) req.max_completion_tokens = effective;
  else req.max_tokens = effective;
  return effective;
}

/** Applies the route's per-request limits: clamps or injects max_tokens, refuses oversized prompts. */
export async function applyLimits(route: RuntimeRoute, req: ChatRequest): Promise<void> {
  const cap = route.limits?.maxOutputTokens;
  if (cap !== undefined) capOutputTokens(req, cap);
  const maxInput = route.limits?.maxInputTokens;
  if (maxInput !== undefined) {
    // Counted as the route's first target counts them (its tokenizer; before any target is chosen).
    const tokens = await countPromptTokens(req, route.targets[0]?.model ?? req.model);
    if (tokens > maxInput) {
      throw invalidRequest(
        `This request has ${tokens} input tokens; route "${route.name}" allows at most ${maxInput}.`,
        'messages',
        'context_length_exceeded',
      );
    }
  }
}

/** The attempt's cancellation: the client's, plus the route's total deadline until commit(). */
function deadlineController(parent: CancelSignal, deadline: number, now: number): { signal: CancelSignal; commit(): void; dispose(): void } {
  const { cancel, dispose } = parent.child();
  const timer = setTimeout(() => cancel.abort(new TransportError('timeout', 'total deadline exceeded')), Math.max(0, deadline - now));
  return {
    signal: cancel,
    commit: () => clearTimeout(timer),
    dispose: () => {
      clearTimeout(timer);
      dispose();
    },
  };
}

/**
 * A provider's error answer as the router's error: the adapter's redacted message and safe code
 * (the message names the code, so logs and the failover classes' messages keep it).
 */
export function upstreamHttpError(res: Pick<UpstreamResponse, 'status' | 'headers'>, text: string, target: RuntimeTarget, tctx: TargetContext, now: number): UpstreamHttpError {
  const info = target.adapter.errorInfo(text, tctx, res.headers);
  const said = info.code && info.message !== info.code ? `${info.code}: ${info.message ?? `HTTP ${res.status}`}` : (info.message ?? `HTTP ${res.status}`);
  return new UpstreamHttpError(res.status, `${target.name} (${target.provider}) answered ${res.status}: ${said}`, upstreamRetryAfter(res.headers, now), { code: info.code, type: info.type });
}

/** Reads a provider's error answer (up to 1 MiB) and throws it as the router's error. */
async function failWith(res: UpstreamResponse, target: RuntimeTarget, tctx: TargetContext, now: number): Promise<never> {
  let text = '';
  try {
    text = await readAll(res.body, 1024 * 1024);
  } catch {
    /* the status alone says enough */
  }
  throw upstreamHttpError(res, text, target, tctx, now);
}

/**
 * What a request reached so far: its attempts (as dispatch counts them) and the last target it
 * was sent to. A request that fails is metered under that target (paygo_requests_total's
 * target/provider labels, the usage log), not under "none".
 */
export class Tried {
  attempts = 0;
  target: RuntimeTarget | undefined = undefined;

  /** Puts the attempts, and the last target sent to (if any), on a failed request's record. */
  label(rec: RequestRecord): void {
    if (this.target) withTarget(rec, { target: this.target, attempts: this.attempts });
    else rec.attempts = this.attempts;
  }
}

/** Sends the request to one target within the attempt's deadline; rejects on a non-2xx answer. */
async function sendChat(ctx: ChatContext, deps: ChatDeps, target: RuntimeTarget, signal: CancelSignal, deadline: number, stream: boolean, tried: Tried) {
  tried.attempts++;
  const now = deps.now();
  const dc = deadlineController(signal, deadline, now);
  try {
    const tctx = targetContext(target, `chatcmpl-${ctx.requestId}`, now, ctx.req);
    const p = ctx.passthrough;
    const native = p && target.adapter.passthroughRequest?.({ api: p.api, body: p.body, headers: p.headers, maxTokens: ctx.req.max_completion_tokens ?? ctx.req.max_tokens ?? undefined }, tctx, stream);
    // A translate error: dispatch moves on to the next target, and answers with it if none can.
    if (!native && ctx.passthroughOnly) throw ctx.passthroughOnly;
    let upstream = native ?? target.adapter.chatRequest(ctx.req, tctx, stream);
    if (target.adapter.authorize) upstream = await target.adapter.authorize(upstream, tctx, dc.signal);
    tried.target = target;
    if (ctx.trace) upstream = traced(upstream, ctx.trace);
    const res = await sendUpstream(target, upstream, dc.signal, deps);
    if (res.status < 200 || res.status >= 300) await failWith(res, target, tctx, deps.now());
    return { res, tctx, dc, native: native !== undefined };
  } catch (err) {
    dc.dispose();
    throw err;
  }
}

/** The upstream request with the attempt span's context in its headers (traceparent, tracestate). */
export function traced(upstream: UpstreamRequest, trace: RequestTrace): UpstreamRequest {
  const headers = { ...upstream.headers };
  trace.inject(headers);
  return { ...upstream, headers };
}

export function targetContext(target: RuntimeTarget, responseId: string, now: number, request: TargetContext['request']): TargetContext {
  return { model: target.model, baseURL: target.baseURL, apiKey: target.apiKey, created: Math.floor(now / 1000), responseId, settings: target.settings, request };
}

interface Committed {
  target: RuntimeTarget;
  attempts: number;
}

function baseRecord(ctx: Pick<ChatContext, 'requestId' | 'route' | 'req' | 'api'> & { cache?: RequestRecord['cache'] }, stream: boolean): RequestRecord {
  return {
    requestId: ctx.requestId,
    operation: 'chat',
    api: ctx.api ?? 'chat',
    namespace: ctx.route.namespace,
    route: ctx.route.name,
    requestModel: ctx.req.model,
    target: undefined,
    provider: undefined,
    providerModel: undefined,
    responseModel: undefined,
    stream,
    outcome: 'success',
    status: 200,
    errorType: undefined,
    usage: undefined,
    estimated: false,
    attempts: 0,
    durationMs: 0,
    ttftMs: undefined,
    pricingOverride: undefined,
    cache: ctx.cache,
  };
}

function withTarget(rec: RequestRecord, c: Committed): void {
  rec.target = c.target.name;
  rec.provider = c.target.provider;
  rec.providerModel = c.target.model;
  rec.attempts = c.attempts;
  rec.pricingOverride = c.target.pricing;
}

export function routingHeaders(route: RuntimeRoute, c: Committed): Record<string, string> {
  return {
    'x-paygo-route': route.name,
    'x-paygo-target': c.target.name,
    'x-paygo-provider': c.target.provider,
    'x-paygo-attempts': String(c.attempts),
  };
}

/** Estimated usage from paygo's tokenizer for the target's model, for when the provider reported none. */
async function estimateUsage(req: ChatRequest, outputText: string, model: string): Promise<Usage> {
  return {
    inputTokens: await countPromptTokens(req, model),
    outputTokens: await countTextTokens(outputText, model),
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    reasoningTokens: 0,
  };
}

export function recordError(rec: RequestRecord, err: unknown): ApiError {
  if (err instanceof ApiError) {
    rec.status = err.status;
    rec.errorType = err.code;
    rec.outcome = err.status < 500 && err.status !== 429 ? 'client_error' : 'upstream_error';
    return err;
  }
  if (err instanceof TransportError && err.failure === 'aborted') {
    rec.outcome = 'client_aborted';
    rec.status = 499;
    rec.errorType = 'client_aborted';
    return new ApiError(499, 'invalid_request_error', 'client_aborted', 'client went away');
  }
  if (err instanceof UpstreamHttpError) {
    // A 4xx the provider says is the request's fault: pass its status through.
    rec.status = err.status;
    rec.errorType = `upstream_${err.status}`;
    rec.outcome = 'client_error';
    // The provider's own code and type (safe codes only) where it gave them: clients act on
    // content_filter, context_length_exceeded, INVALID_ARGUMENT, ValidationException…
    return new ApiError(err.status, err.upstream.type ?? 'invalid_request_error', err.upstream.code ?? 'upstream_rejected_request', err.message);
  }
  rec.status = 500;
  rec.outcome = 'upstream_error';
  rec.errorType = 'internal';
  return new ApiError(500, 'server_error', 'internal_error', 'internal error in the paygo sidecar');
}

/** A non-streamed answer: the completion (its usage with the cost, in OpenAI's shape), and what the other APIs' answers are made from. */
export interface CompletedChat {
  status: number;
  headers: Record<string, string>;
  body: ChatCompletion;
  /** The provider's own answer (usage.cost added) when the request passed through. */
  nativeBody?: unknown;
  usage: Usage;
  cost: CallerCost;
  record: RequestRecord;
}

/** Non-stream chat completion: returns the body and headers to send. */
export async function completeChat(ctx: ChatContext, deps: ChatDeps): Promise<CompletedChat> {
  const rec = baseRecord(ctx, false);
  const tried = new Tried();
  try {
    const result = await dispatch(
      ctx.route,
      async (target, signal, deadline) => {
        const { res, tctx, dc, native } = await sendChat(ctx, deps, target, signal, deadline, false, tried);
        try {
          const text = await readAll(res.body);
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            throw new UpstreamProtocolError(`${target.name} (${target.provider}) sent a response that is not JSON`);
          }
          // A passed-through answer is read like any other (same wire) and also kept as it came.
          if (!native) return { ...target.adapter.chatResponse(json, tctx), native: undefined };
          const reader = ctx.passthrough!.reader;
          return { ...(reader ? reader.response(json, tctx) : target.adapter.chatResponse(json, tctx)), native: json };
        } finally {
          dc.dispose();
        }
      },
      dispatchOptions(deps, ctx.signal, ctx.trace, ctx.quota),
    );
    withTarget(rec, result);
    const { completion, usage, native } = result.value;
    rec.responseModel = completion.model;
    if (usage) rec.usage = usage;
    else {
      rec.usage = await estimateUsage(ctx.req, completionText(completion), rec.providerModel ?? ctx.req.model);
      rec.estimated = true;
      completion.usage = usageToOpenAI(rec.usage);
    }
    rec.durationMs = deps.now() - ctx.startedAt;
    rec.ttftMs = rec.durationMs;
    const cost = meter(ctx, deps, rec, ctx.trace && { output: { finishReasons: completionFinishReasons(completion), messages: () => completionMessages(completion) } });
    const headers = routingHeaders(ctx.route, result);
    if (cost.priced) headers['x-paygo-cost-usd'] = formatUsd(cost.costNano);
    if (rec.estimated) headers['x-paygo-usage-estimated'] = 'true';
    const toCaller = callerCost(cost, rec.estimated);
    completion.usage = { ...(completion.usage ?? usageToOpenAI(rec.usage)), ...costField(toCaller) };
    const nativeBody = native === undefined ? undefined : ctx.passthrough!.respond(native, toCaller);
    return { status: 200, headers, body: completion, nativeBody, usage: rec.usage, cost: toCaller, record: rec };
  } catch (err) {
    tried.label(rec);
    const apiError = recordError(rec, err);
    rec.durationMs = deps.now() - ctx.startedAt;
    meter(ctx, deps, rec, { error: apiError });
    throw apiError;
  }
}

/** Answers from the response cache: no upstream call, no cost, metered as a hit. */
export function serveCached(ctx: Pick<ChatContext, 'requestId' | 'route' | 'req' | 'startedAt' | 'trace' | 'api'>, deps: ChatDeps, hit: CachedResponse): Record<string, string> {
  const rec = baseRecord({ ...ctx, cache: 'hit' }, false);
  rec.responseModel = hit.responseModel;
  rec.durationMs = deps.now() - ctx.startedAt;
  const cost = deps.meter.record(rec);
  ctx.trace?.finish(rec, cost);
  return {
    'x-paygo-route': ctx.route.name,
    'x-paygo-target': hit.target,
    'x-paygo-provider': hit.provider,
    'x-paygo-attempts': '0',
    'x-paygo-cache': 'hit',
    'x-paygo-cost-usd': formatUsd(0n),
  };
}

function completionText(c: ChatCompletion): string {
  let text = '';
  for (const choice of c.choices ?? []) {
    text += choice.message?.content ?? '';
    for (const call of choice.message?.tool_calls ?? []) text += call.function.name + call.function.arguments;
  }
  return text;
}

interface OpenStream {
  iterator: AsyncIterator<Uint8Array>;
  parser: StreamDecoder;
  translator: StreamTranslator;
  pending: ChatCompletionChunk[];
  /** Passed through: the provider's events not yet written (the client gets them, not the chunks). */
  events: SseEvent[] | undefined;
  dc: { commit(): void; dispose(): void };
  upstreamDone: boolean;
}

function openStream(target: RuntimeTarget, tctx: TargetContext, res: UpstreamResponse, dc: OpenStream['dc'], native: boolean, reader: PassthroughReader | undefined): OpenStream {
  return {
    iterator: readBody(res.body)[Symbol.asyncIterator](),
    parser: target.adapter.streamDecoder?.() ?? new SseParser(),
    translator: native && reader ? reader.stream(tctx) : target.adapter.chatStream(tctx),
    pending: [],
    events: native ? [] : undefined,
    dc,
    upstreamDone: false,
  };
}

function translateEvents(s: OpenStream, bytes: Uint8Array): ChatCompletionChunk[] {
  const out: ChatCompletionChunk[] = [];
  for (const ev of s.parser.push(bytes)) {
    out.push(...s.translator.push(ev));
    // After the translator: an error event throws there and never reaches the client as it came.
    s.events?.push(ev);
  }
  return out;
}

/**
 * Whether the stream has something for the client: a translated chunk, or, passed through, an
 * event the API says opens the answer (a thinking block is output the client wants as it comes,
 * though it translates to no chat chunk).
 */
function committable(s: OpenStream, p: Passthrough | undefined): boolean {
  if (s.pending.length > 0) return true;
  const opens = p?.opensAnswer;
  return s.events !== undefined && opens !== undefined && s.events.some(opens);
}

/** How the committed stream reaches the client: the door's encoding of the chunks, or the provider's own events. */
function streamWriter(ctx: ChatContext, open: OpenStream): { push(chunks: ChatCompletionChunk[]): string; finish: StreamEncoder['finish']; fail: StreamEncoder['fail'] } {
  if (open.events) {
    const native = ctx.passthrough!.encoder();
    const events = open.events;
    return {
      push: () => native.push(events.splice(0)),
      finish: (usage, cost) => native.finish(usage, cost),
      fail: (f) => native.fail(f),
    };
  }
  return ctx.encoder?.() ?? new ChatStreamEncoder(ctx.req.stream_options?.include_usage === true);
}

/** Streams a chat completion to the client as SSE, committing to a target only once it produced a first chunk. */
export async function streamChat(ctx: ChatContext, deps: ChatDeps): Promise<RequestRecord> {
  const rec = baseRecord(ctx, true);
  let open: OpenStream;
  let committed: Committed;
  const tried = new Tried();
  try {
    const result = await dispatch(
      ctx.route,
      async (target, signal, deadline) => {
        const { res, tctx, dc, native } = await sendChat(ctx, deps, target, signal, deadline, true, tried);
        try {
          const s = openStream(target, tctx, res, dc, native, ctx.passthrough?.reader);
          // Nothing has reached the client yet: any failure until the first chunk can still fail over.
          while (!committable(s, ctx.passthrough) && !s.translator.finished) {
            const next = await s.iterator.next();
            if (next.done) {
              s.upstreamDone = true;
              break;
            }
            s.pending.push(...translateEvents(s, next.value));
          }
          if (!committable(s, ctx.passthrough) && !s.translator.finished) {
            throw new UpstreamProtocolError(`${target.name} (${target.provider}) closed the stream before sending anything`);
          }
          return s;
        } catch (err) {
          dc.dispose();
          throw err;
        }
      },
      dispatchOptions(deps, ctx.signal, ctx.trace, ctx.quota),
    );
    open = result.value;
    committed = result;
    withTarget(rec, committed);
  } catch (err) {
    tried.label(rec);
    const apiError = recordError(rec, err);
    rec.durationMs = deps.now() - ctx.startedAt;
    meter(ctx, deps, rec, { error: apiError });
    throw apiError;
  }

  // Committed: from here on bytes reach the client, so there is no failover, only an error event.
  open.dc.commit();
  const res = ctx.raw.res;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-request-id': ctx.requestId,
    ...ctx.extraHeaders,
    ...routingHeaders(ctx.route, committed),
  });
  rec.ttftMs = deps.now() - ctx.startedAt;
  const encoder = streamWriter(ctx, open);
  let outputText = '';
  // Only collected for the trace (the chunks' finish reasons, one per choice).
  const finishReasons: string[] | undefined = ctx.trace ? [] : undefined;
  let responseModel: string | undefined;
  // The chunks of one upstream read leave in one write, not one syscall each.
  const write = async (chunks: ChatCompletionChunk[]) => {
    for (const chunk of chunks) {
      responseModel ??= chunk.model;
      for (const choice of chunk.choices) {
        if (choice.delta.content) outputText += choice.delta.content;
        for (const call of choice.delta.tool_calls ?? []) outputText += (call.function?.name ?? '') + (call.function?.arguments ?? '');
        if (finishReasons && choice.finish_reason) finishReasons.push(choice.finish_reason);
      }
    }
    const text = encoder.push(chunks);
    if (text.length > 0 && !res.write(text)) await drained(res, ctx.signal);
  };
  let outcome: Outcome = 'success';
  let failure: { message: string; type: string } | undefined;
  try {
    await write(open.pending);
    while (!open.upstreamDone && !open.translator.finished) {
      const next = await open.iterator.next();
      if (next.done) {
        open.upstreamDone = true;
        break;
      }
      await write(translateEvents(open, next.value));
    }
    if (!open.translator.finished) {
      throw new UpstreamProtocolError(`${committed.target.name} (${committed.target.provider}) ended the stream early`);
    }
  } catch (err) {
    if (ctx.signal.aborted || (err instanceof TransportError && err.failure === 'aborted')) {
      outcome = 'client_aborted';
    } else {
      outcome = 'stream_error';
      const type = (err instanceof UpstreamStreamError ? safeCode(err.errorType) : undefined) ?? 'upstream_error';
      failure = { message: err instanceof Error ? err.message : 'stream failed', type };
    }
  } finally {
    open.dc.dispose();
    // A finished stream is read to its end, so its connection goes back to the pool; otherwise
    // stop reading upstream, which also cancels generation when the client left.
    if (outcome === 'success' && !open.upstreamDone) void readToEnd(open.iterator);
    else if (outcome !== 'success') void open.iterator.return?.(undefined).catch(() => {});
  }

  const reported = open.translator.usage;
  // A provider's usage is trusted only from a complete stream; a cut stream is estimated.
  if (reported && outcome === 'success') rec.usage = reported;
  else {
    const estimate = await estimateUsage(ctx.req, outputText, rec.providerModel ?? ctx.req.model);
    rec.usage = reported ? { ...reported, outputTokens: Math.max(reported.outputTokens, estimate.outputTokens), inputTokens: reported.inputTokens || estimate.inputTokens } : estimate;
    rec.estimated = true;
  }
  rec.responseModel = open.translator.responseModel ?? responseModel;
  rec.outcome = outcome;
  rec.status = outcome === 'client_aborted' ? 499 : 200;
  rec.errorType = outcome === 'success' ? undefined : outcome === 'client_aborted' ? 'client_aborted' : failure?.type;
  rec.durationMs = deps.now() - ctx.startedAt;
  // Metered before the last events: they carry the cost.
  const cost = meter(ctx, deps, rec, finishReasons && { output: streamedOutput(finishReasons, outputText), error: failure && { code: 'upstream_stream_error', message: failure.message } });
  if (!res.destroyed) {
    // The last events and the end of the body in one write.
    if (failure) res.end(encoder.fail({ ...failure, code: 'upstream_stream_error' }));
    else if (outcome === 'success') res.end(encoder.finish(rec.usage, callerCost(cost, rec.estimated)));
    else res.end();
  }
  return rec;
}

/** The metered cost as the caller is told it (usage.cost, x-paygo-cost-usd). */
export function callerCost(cost: MeterResult, estimated: boolean): CallerCost {
  return { usd: cost.priced ? Number(formatUsd(cost.costNano)) : undefined, estimated };
}

/** A stream's output for its trace: the text as it was streamed (tool-call names and arguments included). */
function streamedOutput(finishReasons: string[], text: string): TracedOutput {
  return { finishReasons, messages: () => [{ role: 'assistant', parts: [{ type: 'text', content: text }], finish_reason: finishReasons[0] ?? '' }] };
}

/** Reads what is left after the last event (the end of the chunked body, mostly); gives up after 64 KiB. */
async function readToEnd(iterator: AsyncIterator<Uint8Array>): Promise<void> {
  let left = 64 * 1024;
  try {
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      left -= next.value.byteLength;
      if (left < 0) break;
    }
  } catch {
    return;
  }
  await iterator.return?.(undefined).catch(() => {});
}

function drained(res: ServerResponse, signal: CancelSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(new TransportError('aborted', 'client went away'));
  return new Promise((resolve, reject) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      offAbort();
      resolve();
    };
    const fail = () => {
      res.off('drain', done);
      res.off('close', done);
      reject(new TransportError('aborted', 'client went away'));
    };
    res.once('drain', done);
    res.once('close', done);
    const offAbort = signal.onAbort(fail);
  });
}
