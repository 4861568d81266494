import { createHash } from 'node:crypto';
import type { AuthenticationV1Api, CoreV1Api } from '@kubernetes/client-node';
import { TOKEN_AUDIENCE } from '../crds/src/index.js';

/** Who is calling: the pod a projected ServiceAccount token is bound to. */
export interface PodIdentity {
  namespace: string;
  serviceAccount: string;
  podName: string;
  podUid: string;
  labels: Record<string, string>;
}

export class AuthError extends Error {
  override readonly name = 'AuthError';
  constructor(
    readonly status: 401 | 403,
    message: string,
  ) {
    super(message);
  }
}

const SA_PREFIX = 'system:serviceaccount:';
const POD_NAME = 'authentication.kubernetes.io/pod-name';
const POD_UID = 'authentication.kubernetes.io/pod-uid';

/**
 * Verifies pod-bound ServiceAccount tokens with the TokenReview API (audience "paygo") and
 * resolves the pod they are bound to. Reviews are cached briefly by token hash (never by the
 * token itself) so ACKs do not cost a review each.
 */
export class TokenAuthenticator {
  private readonly cache = new Map<string, { identity: PodIdentity; expires: number }>();

  constructor(
    private readonly auth: AuthenticationV1Api,
    private readonly core: CoreV1Api,
    private readonly o: { now: () => number; cacheTtlMs?: number; maxCacheEntries?: number } = { now: Date.now },
  ) {}

  async authenticate(authorization: string | undefined): Promise<PodIdentity> {
    const token = /^Bearer (\S+)$/.exec(authorization ?? '')?.[1];
    if (!token) throw new AuthError(401, 'a bearer token (the pod\'s projected ServiceAccount token, audience "paygo") is required');
    const key = createHash('sha256').update(token).digest('hex');
    const now = this.o.now();
    const hit = this.cache.get(key);
    if (hit && hit.expires > now) return hit.identity;

    const review = await this.auth.createTokenReview({
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [TOKEN_AUDIENCE] } },
    });
    const status = review.status;
    if (!status?.authenticated) throw new AuthError(401, `token rejected${status?.error ? `: ${status.error}` : ''}`);
    if (!(status.audiences ?? []).includes(TOKEN_AUDIENCE)) throw new AuthError(401, `token is not for audience "${TOKEN_AUDIENCE}"`);
    const username = status.user?.username ?? '';
    if (!username.startsWith(SA_PREFIX)) throw new AuthError(403, 'only ServiceAccount tokens are accepted');
    const [namespace, serviceAccount] = username.slice(SA_PREFIX.length).split(':') as [string, string];
    const podName = status.user?.extra?.[POD_NAME]?.[0];
    const podUid = status.user?.extra?.[POD_UID]?.[0];
    if (!podName || !podUid) throw new AuthError(403, 'the token is not bound to a pod (use a projected ServiceAccount token)');
    let labels: Record<string, string>;
    try {
      const pod = await this.core.readNamespacedPod({ name: podName, namespace });
      if (pod.metadata?.uid !== podUid) throw new AuthError(403, `pod ${namespace}/${podName} no longer exists`);
      labels = pod.metadata?.labels ?? {};
    } catch (err) {
      if (err instanceof AuthError) throw err;
      if ((err as { code?: number }).code === 404) throw new AuthError(403, `pod ${namespace}/${podName} no longer exists`);
      throw err;
    }
    const identity: PodIdentity = { namespace, serviceAccount, podName, podUid, labels };
    if (this.cache.size >= (this.o.maxCacheEntries ?? 10_000)) this.cache.clear();
    this.cache.set(key, { identity, expires: now + (this.o.cacheTtlMs ?? 60_000) });
    return identity;
  }
}
