import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ApiError } from './errors.js';
import type { RequestTrace } from './tracing.js';

/** The routes every chat request comes in by, one per API (sidecar/apis). */
export const CHAT_ROUTE_PATHS = ['/v1/chat/completions', '/v1/responses', '/v1/messages'] as const;
export type ChatRoutePath = (typeof CHAT_ROUTE_PATHS)[number];
const CHAT_PATHS: ReadonlySet<string> = new Set(CHAT_ROUTE_PATHS);

/** One request to a chat route, whether fastify or the fast front received it. */
export interface ChatExchange {
  id: string;
  /** The parsed JSON body. */
  body: unknown;
  bodyBytes: number;
  headers: IncomingHttpHeaders;
  trace: RequestTrace | undefined;
  req: IncomingMessage;
  res: ServerResponse;
  /** Called before a stream is written to `res` directly. */
  hijack(): void;
}

/** A non-streamed answer: a JSON body (an object, or a Buffer already serialized). */
export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

export interface FastFrontOptions {
  /** Largest body taken (--max-body-bytes); a larger or unsized one is left to fastify. */
  bodyLimit: number;
  /** True while the sidecar drains: fastify then answers, with Connection: close. */
  closing(): boolean;
  requestId(req: IncomingMessage): string;
  startTrace?(req: IncomingMessage): RequestTrace | undefined;
  /** The route's handler, from the parsed body to an answer (undefined: it streamed). */
  serve(path: ChatRoutePath, ex: ChatExchange): Promise<Answer | undefined>;
  /** The body was not JSON (the message names the position only). */
  invalidJson(err: Error): Error;
  /** What a trace records when the client left while sending its body. */
  clientAborted(): ApiError;
  /** An error thrown by parsing or serving: recorded on the trace, answered in the API's shape. */
  failed(path: ChatRoutePath, ex: Pick<ChatExchange, 'id' | 'trace'>, err: unknown): Answer;
}

/** The content type of every JSON answer, fastify's and the fast front's. */
export const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * The chat routes' way in without fastify's per-request machinery (its request and reply
 * objects, hooks, content-type parser and handler wrapper): the plain case — a POST to one of
 * them with a JSON body of a known size within the limit — is read here and handed to the
 * route's handler. That machinery was ≈ 120 µs of a stream's first byte after a model's pause
 * (test/bench/README.md). Anything else (another URL, another type, a chunked or empty body,
 * a query string, the drain) goes to fastify, which answers as it always did. Returns whether
 * it took the request.
 */
export function createFastFront(o: FastFrontOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    if (req.method !== 'POST' || !CHAT_PATHS.has(req.url!)) return false;
    const path = req.url as ChatRoutePath;
    const type = req.headers['content-type'];
    if (type !== 'application/json' && !(type !== undefined && type.startsWith('application/json;'))) return false;
    const length = Number(req.headers['content-length']);
    if (!(length > 0 && length <= o.bodyLimit) || req.headers['transfer-encoding'] !== undefined || o.closing()) return false;

    const ex: ChatExchange = { id: o.requestId(req), body: undefined, bodyBytes: 0, headers: req.headers, trace: o.startTrace?.(req), req, res, hijack: noop };
    const send = (answer: Answer) => {
      // A stream already under way (or a client gone) only ends.
      if (res.headersSent || res.destroyed) return void res.end();
      const payload = Buffer.isBuffer(answer.body) ? answer.body : Buffer.from(JSON.stringify(answer.body));
      res.writeHead(answer.status, { ...answer.headers, 'content-type': JSON_TYPE, 'content-length': String(payload.byteLength) });
      res.end(payload);
    };
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      ex.bodyBytes += chunk.byteLength;
    });
    // The client left before its body was whole: nothing is answered or metered; its trace ends.
    req.on('error', () => ex.trace?.fail(o.clientAborted()));
    req.on('end', () => {
      let body: unknown;
      try {
        body = JSON.parse((chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString('utf8'));
      } catch (err) {
        send(o.failed(path, ex, o.invalidJson(err as Error)));
        return;
      }
      ex.body = body;
      o.serve(path, ex).then(
        (answer) => {
          // undefined: the handler streamed its answer itself.
          if (answer !== undefined) send(answer);
        },
        (err: unknown) => send(o.failed(path, ex, err)),
      );
    });
    return true;
  };
}

/**
 * The HTTP server fastify would make (its keep-alive, request and connection timeouts), with the
 * fast front before fastify's own handler. `front` is read per request (it is built after fastify).
 */
export function serverWithFastFront(
  fastifyHandler: (req: IncomingMessage, res: ServerResponse) => void,
  options: { keepAliveTimeout?: number; requestTimeout?: number; connectionTimeout?: number; maxRequestsPerSocket?: number },
  front: () => ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined,
): Server {
  const server = createServer((req, res) => {
    if (!front()?.(req, res)) fastifyHandler(req, res);
  });
  if (options.keepAliveTimeout !== undefined) server.keepAliveTimeout = options.keepAliveTimeout;
  if (options.requestTimeout !== undefined) server.requestTimeout = options.requestTimeout;
  if (options.connectionTimeout !== undefined) server.setTimeout(options.connectionTimeout);
  if (options.maxRequestsPerSocket) server.maxRequestsPerSocket = options.maxRequestsPerSocket;
  return server;
}

function noop(): void {}
