import { AuthenticationV1Api, CoreV1Api, type V1TokenReview, type V1TokenReviewStatus } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuthError, TokenAuthenticator } from '../../operator/auth.js';
import { FakeKube, PODS } from '../support/fake-kube.js';
import { TestClock, pod } from '../support/operator-fixtures.js';

let kube: FakeKube;
let clock: TestClock;

beforeEach(async () => {
  kube = await new FakeKube().start();
  clock = new TestClock();
  kube.put(PODS, pod('team-a', 'app-1', 'uid-1', { app: 'chat' }));
  kube.registerToken('tok-1', { namespace: 'team-a', serviceAccount: 'chat', podName: 'app-1', podUid: 'uid-1' });
  kube.registerToken('tok-2', { namespace: 'team-a', serviceAccount: 'chat', podName: 'app-1', podUid: 'uid-1' });
  kube.registerToken('tok-3', { namespace: 'team-a', serviceAccount: 'chat', podName: 'app-1', podUid: 'uid-1' });
});

afterEach(async () => {
  await kube.stop();
});

const reviews = () => kube.calls({ verb: 'create', resource: 'authentication.k8s.io/v1/tokenreviews' });

function authenticator(o: { cacheTtlMs?: number; maxCacheEntries?: number } = {}): TokenAuthenticator {
  const kc = kube.kubeConfig();
  return new TokenAuthenticator(kc.makeApiClient(AuthenticationV1Api), kc.makeApiClient(CoreV1Api), { now: clock.nowMs, ...o });
}

/** An authenticator whose TokenReviews answer `status` (what the fake API server cannot say); pods come from the fake. */
function reviewing(status: V1TokenReviewStatus | undefined, core: CoreV1Api = kube.kubeConfig().makeApiClient(CoreV1Api)): { auth: TokenAuthenticator; tokens: string[]; bodies: V1TokenReview[] } {
  const tokens: string[] = [];
  const bodies: V1TokenReview[] = [];
  const api = {
    createTokenReview: async ({ body }: { body: V1TokenReview }): Promise<V1TokenReview> => {
      tokens.push(body.spec.token!);
      bodies.push(body);
      return { ...body, status };
    },
  } as unknown as AuthenticationV1Api;
  return { auth: new TokenAuthenticator(api, core, { now: clock.nowMs }), tokens, bodies };
}

const sa = (extra: Record<string, string[]> = { 'authentication.kubernetes.io/pod-name': ['app-1'], 'authentication.kubernetes.io/pod-uid': ['uid-1'] }, username = 'system:serviceaccount:team-a:chat') => ({
  authenticated: true,
  audiences: ['paygo'],
  user: { username, extra },
});

async function refusal(auth: TokenAuthenticator, header: string | undefined): Promise<{ status: number; message: string; name: string }> {
  const err = await auth.authenticate(header).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AuthError);
  return { status: (err as AuthError).status, message: (err as AuthError).message, name: (err as AuthError).name };
}

const NO_TOKEN = 'a bearer token (the pod\'s projected ServiceAccount token, audience "paygo") is required';

describe('TokenAuthenticator: what a TokenReview may answer', () => {
  it('takes exactly "Bearer <token>": anything else is a 401 without a review', async () => {
    const auth = authenticator();
    for (const header of [undefined, '', 'Bearer', 'Bearer ', 'bearer tok-1', 'Basic tok-1', 'xBearer tok-1', 'Bearer tok-1 extra', 'Bearer  tok-1', ' Bearer tok-1']) {
      expect(await refusal(auth, header)).toEqual({ status: 401, message: NO_TOKEN, name: 'AuthError' });
    }
    expect(kube.requests).toEqual([]);
    expect((await auth.authenticate('Bearer tok-1')).podName).toBe('app-1');
  });

  it('sends the token itself for review, asking for audience paygo', async () => {
    const { auth, tokens, bodies } = reviewing(sa());
    expect(await auth.authenticate('Bearer a.b-c_d')).toEqual({ namespace: 'team-a', serviceAccount: 'chat', podName: 'app-1', podUid: 'uid-1', labels: { app: 'chat' } });
    expect(tokens).toEqual(['a.b-c_d']);
    expect(bodies).toEqual([{ apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: 'a.b-c_d', audiences: ['paygo'] } }]);
  });

  it('a pod read without metadata is a pod that no longer exists (403)', async () => {
    const core = { readNamespacedPod: async () => ({}) } as unknown as CoreV1Api;
    expect(await refusal(reviewing(sa(), core).auth, 'Bearer t')).toEqual({ status: 403, message: 'pod team-a/app-1 no longer exists', name: 'AuthError' });
  });

  it('without options it reads the real clock', async () => {
    const kc = kube.kubeConfig();
    const auth = new TokenAuthenticator(kc.makeApiClient(AuthenticationV1Api), kc.makeApiClient(CoreV1Api));
    expect((await auth.authenticate('Bearer tok-1')).podUid).toBe('uid-1');
    await auth.authenticate('Bearer tok-1');
    expect(reviews()).toHaveLength(1);
  });

  it('a review without a status, or not authenticated and without an error, is "token rejected"', async () => {
    expect(await refusal(reviewing(undefined).auth, 'Bearer t')).toEqual({ status: 401, message: 'token rejected', name: 'AuthError' });
    expect(await refusal(reviewing({ authenticated: false }).auth, 'Bearer t')).toEqual({ status: 401, message: 'token rejected', name: 'AuthError' });
    expect(await refusal(reviewing({ authenticated: false, error: 'expired' }).auth, 'Bearer t')).toEqual({ status: 401, message: 'token rejected: expired', name: 'AuthError' });
  });

  it('an authenticated token for another audience, or for none named, is a 401', async () => {
    const other = { ...sa(), audiences: ['other', 'paygo-x'] };
    expect(await refusal(reviewing(other).auth, 'Bearer t')).toEqual({ status: 401, message: 'token is not for audience "paygo"', name: 'AuthError' });
    const none = { ...sa(), audiences: undefined };
    expect(await refusal(reviewing(none).auth, 'Bearer t')).toEqual({ status: 401, message: 'token is not for audience "paygo"', name: 'AuthError' });
    expect((await reviewing({ ...sa(), audiences: ['other', 'paygo'] }).auth.authenticate('Bearer t')).podUid).toBe('uid-1');
  });

  it('only ServiceAccount users are accepted (403)', async () => {
    const only = { status: 403, message: 'only ServiceAccount tokens are accepted', name: 'AuthError' };
    expect(await refusal(reviewing(sa(undefined, 'alice')).auth, 'Bearer t')).toEqual(only);
    expect(await refusal(reviewing(sa(undefined, 'x:system:serviceaccount:team-a:chat')).auth, 'Bearer t')).toEqual(only);
    expect(await refusal(reviewing({ authenticated: true, audiences: ['paygo'] }).auth, 'Bearer t')).toEqual(only);
  });

  it('a ServiceAccount token not bound to a pod (no pod name or uid) is a 403', async () => {
    const unbound = { status: 403, message: 'the token is not bound to a pod (use a projected ServiceAccount token)', name: 'AuthError' };
    expect(await refusal(reviewing(sa({})).auth, 'Bearer t')).toEqual(unbound);
    expect(await refusal(reviewing(sa({ 'authentication.kubernetes.io/pod-name': ['app-1'] })).auth, 'Bearer t')).toEqual(unbound);
    expect(await refusal(reviewing(sa({ 'authentication.kubernetes.io/pod-uid': ['uid-1'] })).auth, 'Bearer t')).toEqual(unbound);
    expect(await refusal(reviewing(sa({ 'authentication.kubernetes.io/pod-name': [], 'authentication.kubernetes.io/pod-uid': ['uid-1'] })).auth, 'Bearer t')).toEqual(unbound);
    expect(await refusal(reviewing({ authenticated: true, audiences: ['paygo'], user: { username: 'system:serviceaccount:team-a:chat' } }).auth, 'Bearer t')).toEqual(unbound);
    expect(kube.calls({ verb: 'get', resource: PODS })).toEqual([]);
  });

  it('reads the pod in the token\'s namespace; a pod without labels has none', async () => {
    kube.put(PODS, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'bare', namespace: 'team-b', uid: 'uid-b' } });
    const { auth } = reviewing(sa({ 'authentication.kubernetes.io/pod-name': ['bare'], 'authentication.kubernetes.io/pod-uid': ['uid-b'] }, 'system:serviceaccount:team-b:default'));
    expect(await auth.authenticate('Bearer t')).toEqual({ namespace: 'team-b', serviceAccount: 'default', podName: 'bare', podUid: 'uid-b', labels: {} });
    expect(kube.calls({ verb: 'get', resource: PODS }).map((r) => `${r.namespace}/${r.name}`)).toEqual(['team-b/bare']);
  });
});

describe('TokenAuthenticator cache', () => {
  it('an entry expires exactly cacheTtlMs after the review', async () => {
    const auth = authenticator({ cacheTtlMs: 1_000 });
    await auth.authenticate('Bearer tok-1');
    clock.advance(999);
    await auth.authenticate('Bearer tok-1');
    expect(reviews()).toHaveLength(1);
    clock.advance(1); // now == expiry: reviewed again
    await auth.authenticate('Bearer tok-1');
    expect(reviews()).toHaveLength(2);
    clock.advance(999);
    await auth.authenticate('Bearer tok-1');
    expect(reviews()).toHaveLength(2);
  });

  it('the default TTL is 60 s to the millisecond', async () => {
    const auth = authenticator();
    await auth.authenticate('Bearer tok-1');
    clock.advance(60_000);
    await auth.authenticate('Bearer tok-1');
    expect(reviews()).toHaveLength(2);
  });

  it('is keyed by token: another token is reviewed on its own', async () => {
    const auth = authenticator();
    await auth.authenticate('Bearer tok-1');
    await auth.authenticate('Bearer tok-2');
    await auth.authenticate('Bearer tok-1');
    await auth.authenticate('Bearer tok-2');
    expect(reviews().map((r) => (r.body as { spec: { token: string } }).spec.token)).toEqual(['tok-1', 'tok-2']);
  });

  it('is emptied when full (maxCacheEntries), then fills again', async () => {
    const auth = authenticator({ maxCacheEntries: 2 });
    await auth.authenticate('Bearer tok-1');
    await auth.authenticate('Bearer tok-2');
    await auth.authenticate('Bearer tok-1');
    await auth.authenticate('Bearer tok-2');
    expect(reviews()).toHaveLength(2); // both cached: size 2 is the bound, not over it
    await auth.authenticate('Bearer tok-3'); // full: cleared, then tok-3 cached
    await auth.authenticate('Bearer tok-3');
    expect(reviews()).toHaveLength(3);
    await auth.authenticate('Bearer tok-1');
    expect(reviews()).toHaveLength(4);
  });

  it('holds 10 000 entries by default', async () => {
    const core = { readNamespacedPod: async () => ({ metadata: { uid: 'uid-1' } }) } as unknown as CoreV1Api;
    const { auth, tokens } = reviewing(sa(), core);
    for (let i = 0; i < 10_000; i++) await auth.authenticate(`Bearer t${i}`);
    await auth.authenticate('Bearer t0');
    expect(tokens).toHaveLength(10_000);
    await auth.authenticate('Bearer t10000'); // the 10 001st: the cache is cleared first
    await auth.authenticate('Bearer t1');
    expect(tokens).toHaveLength(10_002);
  });
});
