import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { AuthError, type PodIdentity, type TokenAuthenticator } from './auth.js';
import { replyNotLeader } from './leader.js';

/**
 * The pod behind a sidecar's call to the leader-only endpoints (config stream, ACK, reports,
 * budget and rate-limit syncs), or undefined once the refusal is answered: 503 not_leader on
 * a standby, 401 unauthenticated / 403 forbidden for a token that does not name a pod allowed
 * here. `logger`, when given, records the refusal (without the token).
 */
export async function identifySidecar(
  req: FastifyRequest,
  reply: FastifyReply,
  o: { isLeader(): boolean; authenticator: TokenAuthenticator; logger?: Logger },
): Promise<PodIdentity | undefined> {
  if (!o.isLeader()) {
    await replyNotLeader(reply);
    return undefined;
  }
  try {
    return await o.authenticator.authenticate(req.headers.authorization);
  } catch (err) {
    if (!(err instanceof AuthError)) throw err;
    o.logger?.warn({ status: err.status, reason: err.message, remote: req.ip }, 'sidecar refused');
    await reply.code(err.status).send({ error: { message: err.message, code: err.status === 401 ? 'unauthenticated' : 'forbidden' } });
    return undefined;
  }
}
