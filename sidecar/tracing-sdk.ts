import type { IncomingHttpHeaders } from 'node:http';
import { defaultTextMapGetter, defaultTextMapSetter, diag, DiagLogLevel, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { Logger } from 'pino';
import type { ApiError } from './errors.js';
import type { MeterResult, RequestRecord } from './metering/record.js';
import type { ChatRequest, EmbeddingsRequest } from './openai-schema.js';
import { UpstreamHttpError } from './providers/errors.js';
import type { AttemptOutcome } from './router/dispatch.js';
import type { RuntimeRoute, RuntimeTarget } from './router/runtime.js';
import {
  attemptAttributes,
  committedOutcome,
  errorStatusMessage,
  requestedAttributes,
  requestEndAttributes,
  requestSpanName,
  resultAttributes,
  routedAttributes,
  type RequestTrace,
  type TracedOutput,
  type Tracing,
  type TracingConfig,
} from './tracing.js';

/**
 * The OpenTelemetry SDK behind `Tracing` (tracing.ts): a BasicTracerProvider (sampler from
 * OTEL_TRACES_SAMPLER/_ARG, default parent-based always-on), a BatchSpanProcessor (OTEL_BSP_*)
 * and the OTLP/HTTP exporter (OTEL_EXPORTER_OTLP_* for headers, timeout, TLS; the endpoint from
 * --otlp-endpoint or those variables). The resource is `service.name=paygo-sidecar` unless
 * OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise. main.ts imports this module only
 * when tracing is on, so a sidecar without tracing loads none of the SDK. Contexts are passed
 * explicitly (no global context manager, no global tracer provider).
 */
export function createTracing(cfg: TracingConfig, logger: Logger, exporter?: SpanExporter): Tracing {
  // The SDK's own problems (an unreachable collector, a refused export) as warnings in the log.
  diag.setLogger(
    {
      error: (msg) => logger.warn({ component: 'otel' }, msg),
      warn: (msg) => logger.warn({ component: 'otel' }, msg),
      info: () => {},
      debug: () => {},
      verbose: () => {},
    },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
  const resource = defaultResource()
    .merge(resourceFromAttributes({ 'service.name': 'paygo-sidecar' }))
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new BasicTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(exporter ?? new OTLPTraceExporter(cfg.url ? { url: cfg.url } : {}))],
  });
  const tracer = provider.getTracer('paygo-sidecar');
  const propagator = new W3CTraceContextPropagator();
  return {
    startRequest: (operation, headers) => new OtelRequestTrace(tracer, propagator, operation, headers),
    shutdown: async (timeoutMs) => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([provider.shutdown().catch((err: Error) => logger.warn({ error: err.message }, 'exporting the last spans failed')), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
      clearTimeout(timer);
    },
  };
}

class OtelRequestTrace implements RequestTrace {
  private readonly span: Span;
  private readonly context: Context;
  private route: RuntimeRoute | undefined;
  /** The attempt in flight, then the one the router committed to. */
  private attempt: Span | undefined;
  private committed: Span | undefined;
  private attempts = 0;
  private ended = false;

  constructor(
    private readonly tracer: Tracer,
    private readonly propagator: W3CTraceContextPropagator,
    private readonly operation: RequestRecord['operation'],
    headers: IncomingHttpHeaders,
  ) {
    const parent = propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
    this.span = tracer.startSpan(operation, { kind: SpanKind.SERVER, attributes: { 'gen_ai.operation.name': operation } }, parent);
    this.context = trace.setSpan(ROOT_CONTEXT, this.span);
  }

  requested(req: ChatRequest | EmbeddingsRequest): void {
    this.span.updateName(requestSpanName(this.operation, req.model));
    this.span.setAttributes(requestedAttributes(this.operation, req));
  }

  routed(route: RuntimeRoute, req: ChatRequest | EmbeddingsRequest): void {
    this.route = route;
    this.span.setAttributes(routedAttributes(route, req));
  }

  attemptStarted(target: RuntimeTarget): void {
    this.attemptEnded('aborted'); // never left open by a caller that lost track
    this.attempts++;
    this.attempt = this.tracer.startSpan(
      requestSpanName(this.operation, target.model),
      { kind: SpanKind.CLIENT, attributes: attemptAttributes(this.operation, this.route, target, this.attempts) },
      this.context,
    );
  }

  attemptEnded(outcome: AttemptOutcome, error?: Error): void {
    const span = this.attempt;
    if (!span) return;
    this.attempt = undefined;
    span.setAttribute('paygo.attempt.outcome', outcome);
    if (outcome === 'success') {
      this.committed = span; // ended by finish(), with the usage it served
      return;
    }
    span.setAttribute('error.type', outcome);
    if (error instanceof UpstreamHttpError) span.setAttribute('http.response.status_code', error.status);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error?.message ?? outcome });
    span.end();
  }

  inject(headers: Record<string, string>): void {
    if (this.attempt) this.propagator.inject(trace.setSpan(ROOT_CONTEXT, this.attempt), headers, defaultTextMapSetter);
  }

  finish(rec: RequestRecord, cost: MeterResult, end?: { output?: TracedOutput; error?: { code: string; message: string } }): void {
    if (this.ended) return;
    this.ended = true;
    this.attemptEnded('aborted');
    const result = resultAttributes(rec, cost, end?.output);
    const failed = rec.outcome !== 'success';
    const message = end?.error ? errorStatusMessage(end.error) : (rec.errorType ?? rec.outcome);
    if (this.committed) {
      const outcome = committedOutcome(rec);
      this.committed.setAttributes(result);
      this.committed.setAttribute('paygo.attempt.outcome', outcome);
      if (failed) {
        this.committed.setAttribute('error.type', rec.errorType ?? outcome);
        this.committed.setStatus({ code: SpanStatusCode.ERROR, message });
      }
      this.committed.end();
    }
    this.span.setAttributes(result);
    this.span.setAttributes(requestEndAttributes(rec));
    if (this.route?.recordContent && end?.output?.messages) this.span.setAttribute('gen_ai.output.messages', JSON.stringify(end.output.messages()));
    if (failed) this.span.setStatus({ code: SpanStatusCode.ERROR, message });
    this.span.end();
  }

  fail(err: ApiError): void {
    if (this.ended) return;
    this.ended = true;
    this.attemptEnded('aborted');
    this.committed?.end();
    this.span.setAttributes({ 'error.type': err.code, 'http.response.status_code': err.status });
    this.span.setStatus({ code: SpanStatusCode.ERROR, message: errorStatusMessage(err) });
    this.span.end();
  }
}
