import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { certificateNames, generateCA, issueServingCert, remainingValidity } from '../../operator/certs.js';
import { TlsManager } from '../../operator/tls.js';

/** An in-memory stand-in for the Secret endpoints TlsManager uses (with resourceVersion conflicts). */
function fakeCore(initial?: V1Secret) {
  let secret = initial;
  const writes: string[] = [];
  const api = {
    readNamespacedSecret: async () => {
      if (!secret) throw Object.assign(new Error('not found'), { code: 404 });
      return structuredClone(secret);
    },
    createNamespacedSecret: async ({ body }: { body: V1Secret }) => {
      if (secret) throw Object.assign(new Error('exists'), { code: 409 });
      writes.push('create');
      secret = body;
      return body;
    },
    replaceNamespacedSecret: async ({ body }: { body: V1Secret }) => {
      writes.push('replace');
      secret = body;
      return body;
    },
  };
  return { api: api as unknown as CoreV1Api, writes, get: () => secret };
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const logger = pino({ level: 'silent' });

describe('TlsManager', () => {
  it('creates a CA and serving certificate once, then reuses them', async () => {
    const core = fakeCore();
    const mk = () => new TlsManager({ core: core.api, namespace: 'paygo-system', secretName: 'tls', dnsNames: ['paygo-operator.paygo-system.svc'], ips: ['127.0.0.1'], now: () => new Date(), logger });
    const first = await mk().load();
    const second = await mk().load();
    expect(core.writes).toEqual(['create']);
    expect(second).toEqual(first);
    expect(certificateNames(first.certPem)).toEqual(['paygo-operator.paygo-system.svc', '127.0.0.1']);
  });

  it('re-issues the serving certificate with a third of its validity left, keeping the CA', async () => {
    const issued = new Date('2026-01-01T00:00:00Z');
    const ca = generateCA('paygo-operator-ca', issued);
    const old = issueServingCert(ca, ['svc'], [], issued, 30);
    const core = fakeCore({ metadata: { name: 'tls' }, data: { 'ca.crt': b64(ca.certPem), 'ca.key': b64(ca.keyPem), 'tls.crt': b64(old.certPem), 'tls.key': b64(old.keyPem) } });
    const now = new Date('2026-01-25T00:00:00Z'); // 6 of 30 days left
    const tls = await new TlsManager({ core: core.api, namespace: 'ns', secretName: 'tls', dnsNames: ['svc'], ips: [], now: () => now, logger }).load();
    expect(core.writes).toEqual(['replace']);
    expect(tls.caPem).toBe(ca.certPem);
    expect(tls.certPem).not.toBe(old.certPem);
    expect(remainingValidity(tls.certPem, now)).toBeGreaterThan(0.99);
  });

  it('re-issues when the certificate does not cover a new name', async () => {
    const now = new Date();
    const ca = generateCA('ca', now);
    const cert = issueServingCert(ca, ['old-name'], [], now);
    const core = fakeCore({ metadata: { name: 'tls' }, data: { 'ca.crt': b64(ca.certPem), 'ca.key': b64(ca.keyPem), 'tls.crt': b64(cert.certPem), 'tls.key': b64(cert.keyPem) } });
    const tls = await new TlsManager({ core: core.api, namespace: 'ns', secretName: 'tls', dnsNames: ['new-name'], ips: [], now: () => now, logger }).load();
    expect(certificateNames(tls.certPem)).toEqual(['new-name']);
  });
});
