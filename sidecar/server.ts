import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { formatIssues } from '../crds/src/meta.js';
import { Cancel, sleep, type CancelSignal } from './cancel.js';
import { completeChat, dispatchOptions, recordError, routingHeaders, sendUpstream, serveCached, streamChat, applyLimits, targetContext, traced, Tried, upstreamHttpError, type ChatDeps } from './chat.js';
import { ApiError, bodyTooLarge, invalidRequest, modelNotFound } from './errors.js';
import { formatUsd } from '../crds/src/money.js';
import type { Meter, MeterResult, RequestRecord } from './metering/record.js';
import { admitChat, type BudgetGate } from './budget/admission.js';
import { RESPONSES_MAX_BYTES_DEFAULT } from './options.js';
import { ChatRequestSchema, EmbeddingsRequestSchema, isPlainChatRequest, type ChatCompletion, type ChatRequest } from './openai-schema.js';
import { chatDoor } from './apis/chat-completions.js';
import { anthropicError, messagesDoor, messagesPassthroughDoor, parseCountTokensRequest, parseMessagesRequest } from './apis/messages.js';
import { countableMessagesRequest, onlyNativeCanAnswer } from './apis/messages-passthrough.js';
import { countPromptTokens } from './metering/tokens.js';
import { ResponseStore } from './apis/response-store.js';
import { deleteStoredResponse, getStoredResponse, parseResponsesRequest, responsesDoor, responsesPassthroughDoor } from './apis/responses.js';
import { countableResponsesRequest } from './apis/responses-passthrough.js';
import type { FrontDoor } from './apis/types.js';
import { CHAT_ROUTE_PATHS, createFastFront, JSON_TYPE, serverWithFastFront, type Answer, type ChatExchange, type ChatRoutePath } from './fast-front.js';
import { UpstreamHttpError, UpstreamProtocolError } from './providers/errors.js';
import { ResponseCache } from './response-cache.js';
import { ProviderQuotaGate, requestDemand, reserveConsumer, usedBy, type ConsumerHold } from './ratelimit/holds.js';
import type { Demand, RateLimiter } from './ratelimit/limits.js';
import { dispatch } from './router/dispatch.js';
import type { RuntimeConfig, RuntimeRoute, RuntimeTarget } from './router/runtime.js';
import { upstreamRetryAfter } from './router/strategy.js';
import { readAll, TransportError } from './transport.js';
import type { RequestTrace, Tracing } from './tracing.js';
import { emptyUsage, usageFromOpenAI } from './usage.js';

export interface AppOptions {
  /** The live config; undefined until the first one is loaded (then /readyz is 503). */
  getConfig(): RuntimeConfig | undefined;
  meter: Meter;
  logger: Logger;
  /** Default body limit in bytes (a route's limits.maxRequestBytes may lower it). */
  bodyLimit: number;
  now?: () => number;
  random?: () => number;
  unitPrice?: ChatDeps['unitPrice'];
  hooks?: ChatDeps['hooks'];
  /** Budget admission; absent: no budgets are enforced. */
  budgets?: BudgetGate;
  /** Provider quotas and consumer rate limits; absent or inactive: none. */
  rateLimits?: RateLimiter;
  /** OpenTelemetry tracing (tracing-sdk.ts); absent: off, and nothing on the request path traces. */
  tracing?: Tracing;
  /** What /v1/responses answered (previous_response_id, item references, GET); absent: a memory-only store with the defaults. */
  responseStore?: ResponseStore;
}

/** The defaults of --responses-ttl-seconds and --responses-max-bytes (options.ts). */
export const RESPONSE_STORE_DEFAULTS = { ttlMs: 86_400_000, maxBytes: RESPONSES_MAX_BYTES_DEFAULT, maxEntries: 100_000 };

declare module 'fastify' {
  interface FastifyRequest {
    bodyBytes: number;
    /** The request's trace (chat completions and embeddings, tracing on). */
    trace: RequestTrace | undefined;
  }
}

/** The traced routes and their GenAI operation names. */
const TRACED: Record<string, 'chat' | 'embeddings'> = { '/v1/chat/completions': 'chat', '/v1/responses': 'chat', '/v1/messages': 'chat', '/v1/embeddings': 'embeddings' };

/** The client's x-request-id when it is a sane identifier (it lands in logs), else a new one. */
export function requestId(req: { headers: Record<string, string | string[] | undefined> }): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID();
}

function sendError(reply: FastifyReply, err: ApiError): FastifyReply {
  return reply.code(err.status).headers(err.headers).send(err.toJSON());
}

function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalidRequest('The request body must be a JSON object.');
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const param = first ? first.path.map(String).join('.') || null : null;
    throw invalidRequest(`Invalid request: ${formatIssues(parsed.error)}`, param);
  }
  return parsed.data;
}

/** Builds the OpenAI-compatible data-plane app (not listening: call listen() or use inject()). */
export function buildApp(o: AppOptions): FastifyInstance {
  const now = o.now ?? Date.now;
  const responseCache = new ResponseCache(now);
  const responseStore = o.responseStore ?? new ResponseStore({ ...RESPONSE_STORE_DEFAULTS, now });
  const deps: ChatDeps = {
    meter: o.meter,
    now,
    random: o.random ?? Math.random,
    sleep,
    unitPrice: o.unitPrice ?? (() => undefined),
    hooks: o.hooks,
    backoffs: o.rateLimits?.backoffs,
  };
  /** A request no provider quota covers still skips a target whose provider asked to back off. */
  const backoffGate = (): ProviderQuotaGate | undefined => (o.rateLimits?.backoffs ? new ProviderQuotaGate(o.rateLimits, undefined) : undefined);
  // The chat routes' plain requests skip fastify (fast-front.ts); set once the routes exist.
  let front: ReturnType<typeof createFastFront> | undefined;
  let closing = false;
  const app: FastifyInstance = Fastify({
    serverFactory: (handler, options) => serverWithFastFront(handler, options as Parameters<typeof serverWithFastFront>[1], () => front),
    loggerInstance: o.logger as FastifyBaseLogger,
    // No child logger per request (pino child() on every request is measurable at this rate);
    // the one place that logs for a request names its id itself.
    childLoggerFactory: (logger) => logger,
    bodyLimit: o.bodyLimit,
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: requestId,
    // While the sidecar drains, requests already on a connection are still served (answered
    // with Connection: close); a budget-covered one that does not fit what the sidecar holds is
    // refused in OpenAI's shape (503 shutting_down), not with fastify's own 503 body.
    return503OnClosing: false,
  });
  app.decorateRequest('bodyBytes', 0);
  app.decorateRequest('trace', undefined);
  // From the start of the drain on, fastify answers every request (with Connection: close).
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  const tracing = o.tracing;
  if (tracing) {
    // Started before the body is read, so a body refused unread (413, 415, invalid JSON) is traced too.
    app.addHook('onRequest', (request, _reply, done) => {
      const operation = request.method === 'POST' ? TRACED[request.url.split('?')[0]!] : undefined;
      if (operation) request.trace = tracing.startRequest(operation, request.headers);
      done();
    });
  }

  // JSON only: fastify's own text/plain parser would hand a string to the routes (then a 400);
  // any body that is not application/json, or that names no type, is 415 unsupported_media_type.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    req.bodyBytes = Buffer.byteLength(body as string);
    try {
      done(null, JSON.parse(body as string));
    } catch (e) {
      done(invalidRequest(jsonParseMessage(e as Error), null, 'invalid_json') as unknown as FastifyError, undefined);
    }
  });

  const answerError = (err: FastifyError | ApiError, requestId: string): ApiError => {
    if (err instanceof ApiError) return err;
    const fe = err as FastifyError;
    if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return bodyTooLarge(o.bodyLimit);
    if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return new ApiError(415, 'invalid_request_error', 'unsupported_media_type', 'The request body must be application/json.');
    }
    if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
      return new ApiError(fe.statusCode, 'invalid_request_error', 'invalid_request', fe.message);
    }
    o.logger.error({ err, requestId }, 'unhandled error');
    return new ApiError(500, 'server_error', 'internal_error', 'internal error in the paygo sidecar');
  };
  // Errors before or outside a route's handler (invalid JSON, 413, 415, unknown URLs) in the
  // shape of the API the URL belongs to.
  const sendShaped = (request: FastifyRequest, reply: FastifyReply, err: ApiError): FastifyReply => {
    const { status, headers, body } = errorAnswer(request.url, err, String(request.id));
    return reply.code(status).headers(headers).send(body);
  };
  app.setErrorHandler((err: FastifyError | ApiError, request, reply) => {
    const apiError = answerError(err, String(request.id));
    request.trace?.fail(apiError);
    return sendShaped(request, reply, apiError);
  });

  app.setNotFoundHandler((request, reply) =>
    sendShaped(request, reply, new ApiError(404, 'invalid_request_error', 'unknown_url', `Unknown request URL: ${request.method} ${request.url.split('?')[0]}.`)),
  );

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const cfg = o.getConfig();
    if (!cfg) return reply.code(503).send({ status: 'no configuration loaded' });
    return { status: 'ok', configVersion: cfg.version };
  });

  app.get('/v1/models', async () => {
    const cfg = o.getConfig();
    // OpenAI's model object, plus what the name routes to (paygo's own field; SDKs ignore it).
    const data = [...(cfg?.byModel.entries() ?? [])].map(([id, route]) => ({
      id,
      object: 'model',
      created: 0,
      owned_by: `paygo:${route.namespace}/${route.name}`,
      paygo: { route: `${route.namespace}/${route.name}`, strategy: route.strategy, targets: route.targets.map((t) => ({ name: t.name, provider: t.provider, model: t.model })) },
    }));
    return { object: 'list', data };
  });

  const resolve = (model: string, request: { bodyBytes: number }): RuntimeRoute => {
    const cfg = o.getConfig();
    if (!cfg) throw new ApiError(503, 'server_error', 'not_ready', 'The sidecar has no configuration yet.');
    const route = cfg.byModel.get(model);
    if (!route) throw modelNotFound(model);
    const max = route.limits?.maxRequestBytes;
    if (max !== undefined && request.bodyBytes > max) throw bodyTooLarge(max);
    return route;
  };

  const clientSignal = (res: ServerResponse): CancelSignal => {
    const cancel = new Cancel();
    // 'close' on the response before it finished means the client went away.
    res.once('close', () => {
      if (!res.writableFinished) cancel.abort(new TransportError('aborted', 'client went away'));
    });
    return cancel;
  };

  /**
   * One chat request, whichever API it came in on: the route's limits, the response cache, budget
   * admission, then the chat pipeline; the door turns the pipeline's answer into its API's shape.
   * A stream is written to the exchange's response (answered undefined); anything else is the
   * answer to send. Errors are thrown as ApiError, with the consumer limit's headers on them.
   */
  const serveChat = async (ex: ChatExchange, door: FrontDoor, asked: ChatRequest): Promise<Answer | undefined> => {
    const trace = ex.trace;
    trace?.requested(asked);
    const requested = resolve(asked.model, ex);
    if (requested.limits) await applyLimits(requested, asked);
    // A cached answer costs nothing: it is served before any budget is asked.
    const cacheKey = door.passthroughOnly ? undefined : responseCache.keyOf(requested, asked);
    const hit = cacheKey === undefined ? undefined : responseCache.get(requested, cacheKey);
    if (hit) {
      trace?.routed(requested, asked);
      const headers = { 'x-request-id': ex.id, ...door.headers?.(ex.id), ...serveCached({ requestId: ex.id, route: requested, req: asked, api: door.api, startedAt: now(), trace }, deps, hit) };
      if (door.api === 'chat') return { status: 200, headers, body: hit.body };
      const completion = JSON.parse(hit.body.toString('utf8')) as ChatCompletion;
      return { status: 200, headers, body: door.respond(completion, usageFromOpenAI(completion.usage) ?? emptyUsage(), { usd: 0, estimated: false }) };
    }
    // Rate limits: consumer limits before any budget is asked (a refused request reserves and
    // meters nothing); provider quotas are taken per attempt by dispatch.
    const limiter = o.rateLimits?.active ? o.rateLimits : undefined;
    let consumer: ConsumerHold | undefined;
    let demand: Demand | undefined;
    if (limiter) {
      const limits = limiter.consumer(requested, asked.model);
      if (limits.length > 0) consumer = reserveConsumer(limiter, limits, (demand = await requestDemand(requested, asked)));
    }
    let admitted;
    try {
      // Awaited only when a budget covers the request (an await costs the stream's first byte).
      admitted =
        o.budgets && o.budgets.enforcer.covering(requested.namespace, requested.name, asked.model).length > 0
          ? await admitChat(o.budgets, o.getConfig()!, requested, asked)
          : { route: requested, req: asked, hold: undefined, downgradedFrom: undefined };
    } catch (err) {
      consumer?.settle(undefined);
      if (consumer && err instanceof ApiError) Object.assign(err.headers, consumer.headers);
      throw err;
    }
    const { route, req, hold, downgradedFrom } = admitted;
    const extraHeaders: Record<string, string> = door.headers ? door.headers(ex.id) : {};
    if (downgradedFrom) extraHeaders['x-paygo-downgraded'] = downgradedFrom;
    if (consumer) Object.assign(extraHeaders, consumer.headers);
    // Provider quotas of the route's targets, and providers' own backoffs of their credentials.
    const quota = limiter?.routeHasQuota(route)
      ? new ProviderQuotaGate(limiter, demand ?? (await requestDemand(route, req)))
      : backoffGate();
    const settleBudget = hold ? (m: MeterResult) => o.budgets!.enforcer.settle(hold, m.costNano) : undefined;
    trace?.routed(route, req);
    const ctx = {
      trace,
      extraHeaders,
      api: door.api,
      passthrough: door.passthrough,
      passthroughOnly: door.passthroughOnly,
      requestId: ex.id,
      route,
      req,
      signal: clientSignal(ex.res),
      raw: { req: ex.req, res: ex.res },
      startedAt: now(),
      quota,
      onMetered:
        consumer || quota
          ? (m: MeterResult, rec: RequestRecord) => {
              settleBudget?.(m);
              const used = usedBy(rec);
              consumer?.settle(used);
              quota?.settle(used, now());
            }
          : settleBudget,
      cache: cacheKey !== undefined ? ('miss' as const) : undefined,
      encoder: door.encoder,
    };
    if (req.stream) {
      try {
        ex.hijack();
        await streamChat(ctx, deps);
      } catch (err) {
        // Nothing was written yet (streamChat writes headers only once committed).
        const apiError = err instanceof ApiError ? err : new ApiError(500, 'server_error', 'internal_error', 'internal error in the paygo sidecar');
        if (!ex.res.headersSent && !ex.res.destroyed) {
          const { status, body } = door.error(apiError);
          ex.res.writeHead(status, { 'content-type': JSON_TYPE, 'x-request-id': ctx.requestId, ...extraHeaders, ...apiError.headers });
          ex.res.end(JSON.stringify(body));
        }
      }
      return undefined;
    }
    let out;
    try {
      out = await completeChat(ctx, deps);
    } catch (err) {
      // The consumer limit's headers go on an error answer too.
      if (consumer && err instanceof ApiError) Object.assign(err.headers, consumer.headers);
      throw err;
    }
    const headers = { 'x-request-id': ctx.requestId, ...extraHeaders, ...out.headers };
    const body = out.nativeBody ?? (door.api === 'chat' ? out.body : door.respond(out.body, out.usage, out.cost));
    if (cacheKey === undefined) return { status: out.status, headers, body };
    // A downgraded answer is not the route's own. The cached copy is the chat completion, its
    // cost 0: that is what a hit costs, whichever API asks.
    if (downgradedFrom === undefined) {
      const cached = Buffer.from(JSON.stringify({ ...out.body, usage: { ...out.body.usage, cost: 0 } }));
      responseCache.set(requested, cacheKey, { body: cached, target: out.record.target!, provider: out.record.provider!, responseModel: out.record.responseModel });
    }
    return { status: out.status, headers: { ...headers, 'x-paygo-cache': 'miss' }, body };
  };

  /** The chat routes, each from its parsed body to an answer (or a stream written). */
  const chatRoutes: Record<ChatRoutePath, (ex: ChatExchange) => Promise<Answer | undefined>> = {
    '/v1/chat/completions': async (ex) => {
      // The plain request as it came; zod for the rest (same verdict, test/sidecar/openai-schema.test.ts).
      const req = isPlainChatRequest(ex.body) ? ex.body : parseBody(ChatRequestSchema, ex.body);
      return serveChat(ex, chatDoor(req), req);
    },
    // OpenAI's Responses API: state (store, previous_response_id, item references) is kept here,
    // whichever provider answers.
    '/v1/responses': async (ex) => {
      let turn;
      try {
        turn = parseResponsesRequest(ex.body, responseStore, { now });
      } catch (err) {
        // What only OpenAI can answer (hosted tools, its own ids) passes through to the route's
        // OpenAI and Azure targets, if it has any; otherwise the refusal stands.
        const body = ex.body as Record<string, unknown>;
        if (!(err instanceof ApiError) || !PASSTHROUGH_ONLY.has(err.code) || typeof body.model !== 'string') throw err;
        if (!resolve(body.model, ex).targets.some((t) => t.adapter.nativeApis?.includes('responses'))) throw err;
        return serveChat(ex, responsesPassthroughDoor(body, err), countableResponsesRequest(body, err));
      }
      return serveChat(ex, responsesDoor(turn), turn.chat);
    },
    // Anthropic's Messages API. The client's key (x-api-key or Authorization) and anthropic-version
    // are accepted and never forwarded, as the OpenAI key is; anthropic-beta reaches anthropic
    // targets when the request passes through.
    '/v1/messages': async (ex) => {
      let turn;
      try {
        turn = parseMessagesRequest(ex.body);
      } catch (err) {
        // What only a Messages-speaking provider can take (documents, server tools, …) passes
        // through to the route's anthropic and vertex-anthropic targets, if it has any.
        const body = ex.body as Record<string, unknown>;
        if (!(err instanceof ApiError) || !onlyNativeCanAnswer(err) || typeof body.model !== 'string' || typeof body.max_tokens !== 'number') throw err;
        if (!resolve(body.model, ex).targets.some((t) => t.adapter.nativeApis?.includes('messages'))) throw err;
        return serveChat(ex, messagesPassthroughDoor(body, ex.headers, err), countableMessagesRequest(body, err));
      }
      return serveChat(ex, messagesDoor(turn, ex.body as Record<string, unknown>, ex.headers), turn.chat);
    },
  };
  for (const path of CHAT_ROUTE_PATHS) {
    app.post(path, async (request, reply) => {
      const answer = await chatRoutes[path]({
        id: String(request.id),
        body: request.body,
        bodyBytes: request.bodyBytes,
        headers: request.headers,
        trace: request.trace,
        req: request.raw,
        res: reply.raw,
        hijack: () => reply.hijack(),
      });
      if (answer === undefined) return reply;
      reply.code(answer.status).headers(answer.headers);
      return Buffer.isBuffer(answer.body) ? reply.type(JSON_TYPE).send(answer.body) : reply.send(answer.body);
    });
  }
  front = createFastFront({
    bodyLimit: o.bodyLimit,
    closing: () => closing,
    requestId,
    startTrace: tracing && ((req) => tracing.startRequest(TRACED[req.url!]!, req.headers)),
    serve: (path, ex) => chatRoutes[path](ex),
    invalidJson: (err) => invalidRequest(jsonParseMessage(err), null, 'invalid_json'),
    clientAborted: () => new ApiError(499, 'invalid_request_error', 'client_aborted', 'client went away'),
    failed: (path, ex, err) => {
      const apiError = answerError(err as ApiError, ex.id);
      ex.trace?.fail(apiError);
      return errorAnswer(path, apiError, ex.id);
    },
  });
  app.get<{ Params: { id: string } }>('/v1/responses/:id', async (request) => getStoredResponse(responseStore, request.params.id));
  app.delete<{ Params: { id: string } }>('/v1/responses/:id', async (request) => deleteStoredResponse(responseStore, request.params.id));

  app.post('/v1/messages/count_tokens', async (request, reply) => {
    const req = parseCountTokensRequest(request.body);
    const route = resolve(req.model, request);
    // Counted as applyLimits counts them: with the tokenizer of the route's first target.
    const inputTokens = await countPromptTokens(req, route.targets[0]?.model ?? req.model);
    return reply.headers({ 'request-id': String(request.id) }).send({ input_tokens: inputTokens });
  });

  app.post('/v1/embeddings', async (request, reply) => {
    const req = parseBody(EmbeddingsRequestSchema, request.body);
    const trace = request.trace;
    trace?.requested(req);
    const route = resolve(req.model, request);
    trace?.routed(route, req);
    const startedAt = now();
    const signal = clientSignal(reply.raw);
    const rec: RequestRecord = {
      requestId: String(request.id), operation: 'embeddings', api: 'embeddings', namespace: route.namespace, route: route.name, requestModel: req.model,
      target: undefined, provider: undefined, providerModel: undefined, responseModel: undefined, stream: false, outcome: 'success',
      status: 200, errorType: undefined, usage: undefined, estimated: false, attempts: 0, durationMs: 0, ttftMs: undefined, pricingOverride: undefined,
    };
    const tried = new Tried();
    try {
      const result = await dispatch(
        route,
        async (target: RuntimeTarget, sig: CancelSignal) => {
          tried.attempts++;
          if (!target.adapter.embeddingsRequest) {
            throw invalidRequest(`Provider ${target.provider} (target ${target.name}) has no embeddings API.`, 'model', 'unsupported_operation');
          }
          const tctx = targetContext(target, String(request.id), now(), req);
          let upstream = target.adapter.embeddingsRequest(req, tctx);
          if (target.adapter.authorize) upstream = await target.adapter.authorize(upstream, tctx, sig);
          tried.target = target;
          if (trace) upstream = traced(upstream, trace);
          const res = await sendUpstream(target, upstream, sig, deps);
          const text = await readAll(res.body);
          if (res.status < 200 || res.status >= 300) {
            throw upstreamHttpError(res, text, target, tctx, now());
          }
          try {
            return JSON.parse(text) as { model?: string; usage?: unknown };
          } catch {
            throw new UpstreamProtocolError(`${target.name} (${target.provider}) sent a response that is not JSON`);
          }
        },
        // Embeddings count against no rate limit, but skip a target whose provider asked to back off.
        dispatchOptions(deps, signal, trace, backoffGate()),
      );
      rec.target = result.target.name;
      rec.provider = result.target.provider;
      rec.providerModel = result.target.model;
      rec.pricingOverride = result.target.pricing;
      rec.attempts = result.attempts;
      rec.responseModel = result.value.model;
      const usage = usageFromOpenAI(result.value.usage);
      rec.usage = usage ?? { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 };
      rec.estimated = usage === undefined;
      rec.durationMs = now() - startedAt;
      const cost = o.meter.record(rec);
      trace?.finish(rec, cost);
      const headers = routingHeaders(route, result);
      if (cost.priced) headers['x-paygo-cost-usd'] = formatUsd(cost.costNano);
      return reply.headers({ 'x-request-id': String(request.id), ...headers }).send(result.value);
    } catch (err) {
      tried.label(rec);
      const apiError = recordError(rec, err);
      rec.durationMs = now() - startedAt;
      const cost = o.meter.record(rec);
      trace?.finish(rec, cost, { error: apiError });
      return sendError(reply, apiError);
    }
  });

  return app;
}

/**
 * What was wrong with a body that is not JSON, without V8's quote of it ("Unexpected token 'm',
 * ..."content": my secret "... is not valid JSON"): that quote is prompt text.
 */
export function jsonParseMessage(err: Error): string {
  const position = /at position (\d+)/.exec(err.message)?.[1];
  return `We could not parse the JSON body of your request: it is not valid JSON${position === undefined ? '' : ` (at position ${position})`}.`;
}

/** The Responses refusals a provider that speaks the Responses API can still answer (the request passes through). */
const PASSTHROUGH_ONLY = new Set(['unsupported_parameter', 'previous_response_not_found', 'item_not_found']);

/** An error answer in the shape of the API the URL belongs to: Anthropic's for the Messages API, OpenAI's otherwise. */
function errorAnswer(url: string, err: ApiError, requestId: string): Answer {
  if (!isMessagesUrl(url)) return { status: err.status, headers: err.headers, body: err.toJSON() };
  const { status, body } = anthropicError(err);
  return { status, headers: { ...err.headers, 'request-id': requestId }, body };
}

/** The Anthropic Messages API's URLs (their errors take Anthropic's shape). */
function isMessagesUrl(url: string): boolean {
  return url === '/v1/messages' || url.startsWith('/v1/messages/') || url.startsWith('/v1/messages?');
}
