// Proves the test control plane (test/support/controlplane) is a real Kubernetes API server:
// kubectl talks to it, objects persist, TokenRequest issues pod-bound tokens with audience
// "paygo" and TokenReview verifies them, and helm works. The first run may build the
// binaries from their Go modules (~15 min on 2 cores); later runs start in a few seconds.
import { AuthenticationV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBinaries, helm, kubectl, startControlPlane, type ControlPlane } from '../support/controlplane/controlplane.js';

const NS = 'cp-e2e';
const SA = 'app';
const POD = 'app-0';

describe('test control plane (etcd + kube-apiserver built from Go modules)', () => {
  let cp: ControlPlane;
  let auth: AuthenticationV1Api;

  beforeAll(async () => {
    await ensureBinaries();
    cp = await startControlPlane();
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    auth = kc.makeApiClient(AuthenticationV1Api);
  }, 60 * 60_000); // a first run builds the binaries

  afterAll(async () => {
    await cp?.stop();
  }, 120_000);

  const must = async (args: string[], stdin?: string): Promise<string> => {
    const r = await kubectl(cp, args, stdin);
    expect(r.code, `kubectl ${args.join(' ')}\n${r.stderr}`).toBe(0);
    return r.stdout;
  };

  const review = (token: string, audiences?: string[]) =>
    auth.createTokenReview({
      body: {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        spec: { token, ...(audiences ? { audiences } : {}) },
      },
    });

  it('listens on 127.0.0.1 and answers kubectl version', async () => {
    expect(cp.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const out = JSON.parse(await must(['version', '-o', 'json'])) as {
      clientVersion: { gitVersion: string };
      serverVersion: { gitVersion: string };
    };
    expect(out.serverVersion.gitVersion).toMatch(/^v1\.\d+\.\d+$/);
    expect(out.clientVersion.gitVersion).toBe(out.serverVersion.gitVersion);
    expect(await must(['get', '--raw', '/readyz'])).toBe('ok');
  });

  it('has the default ServiceAccount that no controller-manager would create', async () => {
    expect(await must(['-n', 'default', 'get', 'serviceaccount', 'default', '-o', 'name'])).toBe('serviceaccount/default\n');
  });

  /** The namespace, ServiceAccount and Pod the token tests need (idempotent: each test runs alone too). */
  const podSetup = async (): Promise<void> => {
    await must(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }));
    await must(['-n', NS, 'apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: SA } }));
    await must(['-n', NS, 'apply', '-f', '-'], JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: POD, labels: { 'paygo.dev/inject': 'true' } },
      spec: { serviceAccountName: SA, containers: [{ name: 'app', image: 'registry.invalid/app:1' }] },
    }));
  };

  it('stores a namespace, a ServiceAccount and a (Pending) Pod', async () => {
    await podSetup();
    const pod = JSON.parse(await must(['-n', NS, 'get', 'pod', POD, '-o', 'json'])) as {
      metadata: { uid: string };
      spec: { serviceAccountName: string };
      status: { phase: string };
    };
    expect(pod.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(pod.spec.serviceAccountName).toBe(SA);
    expect(pod.status.phase).toBe('Pending'); // no scheduler, no nodes
  });

  it('issues a pod-bound token with audience "paygo" that TokenReview verifies', async () => {
    await podSetup();
    const token = (await must([
      '-n', NS, 'create', 'token', SA,
      '--audience', 'paygo', '--bound-object-kind', 'Pod', '--bound-object-name', POD,
    ])).trim();
    expect(token.split('.')).toHaveLength(3);

    const ok = await review(token, ['paygo']);
    expect(ok.status?.error ?? '').toBe('');
    expect(ok.status?.authenticated).toBe(true);
    expect(ok.status?.audiences).toEqual(['paygo']);
    expect(ok.status?.user?.username).toBe(`system:serviceaccount:${NS}:${SA}`);
    expect(ok.status?.user?.groups).toContain(`system:serviceaccounts:${NS}`);
    expect(ok.status?.user?.extra?.['authentication.kubernetes.io/pod-name']).toEqual([POD]);

    // The token is scoped to "paygo": not valid for the API server's own audience.
    const wrongAudience = await review(token);
    expect(wrongAudience.status?.authenticated ?? false).toBe(false);

    // Bound to the pod: once the pod is gone the token no longer authenticates.
    // (kube-apiserver caches a successful token authentication for 10 s: allow for that.)
    await must(['-n', NS, 'delete', 'pod', POD, '--grace-period=0', '--force', '--wait=true', '--timeout=20s']);
    let stillValid = true;
    for (const deadline = Date.now() + 25_000; stillValid && Date.now() < deadline; ) {
      stillValid = (await review(token, ['paygo'])).status?.authenticated ?? false;
      if (stillValid) await new Promise((r) => setTimeout(r, 250));
    }
    expect(stillValid).toBe(false);
  });

  it('rejects a forged token', async () => {
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const forged = [
      b64({ alg: 'RS256', kid: 'forged' }),
      b64({ iss: 'https://kubernetes.default.svc.cluster.local', aud: ['paygo'], sub: `system:serviceaccount:${NS}:${SA}`, exp: Math.floor(Date.now() / 1000) + 3600 }),
      Buffer.from('not-a-signature').toString('base64url'),
    ].join('.');
    const r = await review(forged, ['paygo']);
    expect(r.status?.authenticated ?? false).toBe(false);
    expect(r.status?.user?.username ?? '').toBe('');
  });

  it('enforces RBAC for a ServiceAccount', async () => {
    const r = await kubectl(cp, ['auth', 'can-i', 'list', 'secrets', '-n', NS, '--as', `system:serviceaccount:${NS}:${SA}`]);
    expect(r.stdout.trim()).toBe('no');
  });

  it('has a working helm', async () => {
    const r = await helm(cp, ['version', '--short']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^v3\.\d+\.\d+/);
    const ls = await helm(cp, ['list', '--all-namespaces', '-o', 'json']);
    expect(ls.code, ls.stderr).toBe(0);
    expect(JSON.parse(ls.stdout)).toEqual([]);
  });
});
