import { AuthenticationV1Api, CoreV1Api } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuthError, TokenAuthenticator } from '../../operator/auth.js';
import { FakeKube, PODS } from '../support/fake-kube.js';
import { TestClock, pod } from '../support/operator-fixtures.js';

let kube: FakeKube;
let clock: TestClock;
let auth: TokenAuthenticator;

beforeEach(async () => {
  kube = await new FakeKube().start();
  clock = new TestClock();
  const kc = kube.kubeConfig();
  auth = new TokenAuthenticator(kc.makeApiClient(AuthenticationV1Api), kc.makeApiClient(CoreV1Api), { now: clock.nowMs });
  kube.put(PODS, pod('team-a', 'app-1', 'uid-1', { app: 'chat' }));
  kube.registerToken('tok-1', { namespace: 'team-a', serviceAccount: 'chat', podName: 'app-1', podUid: 'uid-1' });
});

afterEach(async () => {
  await kube.stop();
});

async function refusal(header: string | undefined): Promise<{ status: number; message: string }> {
  const err = await auth.authenticate(header).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AuthError);
  return { status: (err as AuthError).status, message: (err as AuthError).message };
}

const reviews = () => kube.calls({ verb: 'create', resource: 'authentication.k8s.io/v1/tokenreviews' });

describe('TokenAuthenticator against the API server', () => {
  it('accepts a pod-bound token: TokenReview with audience paygo, then the pod read for its labels', async () => {
    const id = await auth.authenticate('Bearer tok-1');
    expect(id).toEqual({ namespace: 'team-a', serviceAccount: 'chat', podName: 'app-1', podUid: 'uid-1', labels: { app: 'chat' } });
    expect(reviews()).toHaveLength(1);
    expect(reviews()[0]!.body).toMatchObject({ spec: { token: 'tok-1', audiences: ['paygo'] } });
    expect(kube.calls({ verb: 'get', resource: PODS }).map((r) => `${r.namespace}/${r.name}`)).toEqual(['team-a/app-1']);
  });

  it('refuses a missing or malformed header without asking the API server', async () => {
    expect((await refusal(undefined)).status).toBe(401);
    expect((await refusal('Basic abc')).status).toBe(401);
    expect(kube.requests).toHaveLength(0);
  });

  it('refuses a token the TokenReview does not authenticate (401, with its error)', async () => {
    expect(await refusal('Bearer nope')).toEqual({ status: 401, message: 'token rejected: invalid bearer token' });
  });

  it('refuses a token for another audience', async () => {
    kube.registerToken('tok-aud', { namespace: 'team-a', podName: 'app-1', podUid: 'uid-1', audiences: ['other'] });
    expect((await refusal('Bearer tok-aud')).status).toBe(401);
  });

  it('refuses a token whose pod was re-created under another UID, or deleted (403)', async () => {
    kube.registerToken('tok-old', { namespace: 'team-a', podName: 'app-1', podUid: 'uid-0' });
    expect(await refusal('Bearer tok-old')).toEqual({ status: 403, message: 'pod team-a/app-1 no longer exists' });
    kube.remove(PODS, 'team-a', 'app-1');
    expect(await refusal('Bearer tok-1')).toEqual({ status: 403, message: 'pod team-a/app-1 no longer exists' });
  });

  it('passes other API errors on (not a refusal: the caller answers 500 and the sidecar retries)', async () => {
    kube.fail({ match: (r) => r.resource === PODS, status: 500 });
    const err = await auth.authenticate('Bearer tok-1').catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(AuthError);
    expect((err as { code?: number }).code).toBe(500);
  });

  it('caches an accepted token for 60 s by its hash, then reviews it again', async () => {
    await auth.authenticate('Bearer tok-1');
    clock.advance(59_999);
    await auth.authenticate('Bearer tok-1');
    expect(reviews()).toHaveLength(1);
    // A label change is seen only once the cached identity expires.
    kube.put(PODS, pod('team-a', 'app-1', 'uid-1', { app: 'chat', tier: 'gold' }));
    expect((await auth.authenticate('Bearer tok-1')).labels).toEqual({ app: 'chat' });
    clock.advance(2);
    expect((await auth.authenticate('Bearer tok-1')).labels).toEqual({ app: 'chat', tier: 'gold' });
    expect(reviews()).toHaveLength(2);
  });

  it('never caches a refusal', async () => {
    kube.remove(PODS, 'team-a', 'app-1');
    await refusal('Bearer tok-1');
    kube.put(PODS, pod('team-a', 'app-1', 'uid-1'));
    expect((await auth.authenticate('Bearer tok-1')).podUid).toBe('uid-1');
    expect(reviews()).toHaveLength(2);
  });
});
