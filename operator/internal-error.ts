import type { FastifyReply } from 'fastify';
import type { Logger } from 'pino';

/**
 * Runs a sidecar endpoint's handler and answers an unexpected error (e.g. the Kubernetes API
 * failing a TokenReview or a Budget.status write) with 500 in the protocol's error shape.
 * Fastify's default error handler would not do: it copies an error's `headers` into the reply,
 * and a client-node ApiException carries the API server's response headers, so a chunked API
 * answer gave the reply both Content-Length and Transfer-Encoding (clients refuse it) and the
 * body carried the API server's answer verbatim.
 */
export async function answeringErrors(reply: FastifyReply, logger: Logger, handler: () => Promise<void>): Promise<void> {
  try {
    await handler();
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const message = typeof code === 'number' ? `internal error: the Kubernetes API answered ${code}` : 'internal error';
    logger.warn({ path: reply.request.url, error: typeof code === 'number' ? message : String((err as Error)?.message ?? err) }, 'sidecar call failed');
    if (reply.sent) return;
    await reply.code(500).send({ error: { message, code: 'internal_error' } });
  }
}
