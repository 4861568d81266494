import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { certificateNames, generateCA, issueServingCert, remainingValidity } from '../../operator/certs.js';
import { setCondition } from '../../operator/conditions.js';

describe('operator PKI', () => {
  it('issues a serving certificate that a client trusting only the CA accepts', async () => {
    const now = new Date();
    const ca = generateCA('test-ca', now);
    const serving = issueServingCert(ca, ['paygo-operator.paygo-system.svc', 'localhost'], ['127.0.0.1'], now);
    expect(certificateNames(serving.certPem)).toEqual(['paygo-operator.paygo-system.svc', 'localhost', '127.0.0.1']);
    const server = createServer({ cert: serving.certPem, key: serving.keyPem }, (_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    try {
      const verified = await new Promise<boolean>((resolve, reject) => {
        const s = connect({ host: '127.0.0.1', port, ca: ca.certPem, servername: 'localhost' }, () => {
          resolve(s.authorized);
          s.end();
        });
        s.on('error', reject);
      });
      expect(verified).toBe(true);
      const other = generateCA('other-ca', now);
      await expect(
        new Promise((resolve, reject) => {
          const s = connect({ host: '127.0.0.1', port, ca: other.certPem, servername: 'localhost' }, () => resolve(s.authorized));
          s.on('error', reject);
        }),
      ).rejects.toThrow(/self.signed|unable to verify|certificate/i);
    } finally {
      server.close();
    }
  });

  it('reports how much validity is left', () => {
    const now = new Date('2026-01-01T00:00:00Z');
    const ca = generateCA('ca', now);
    const cert = issueServingCert(ca, ['x'], [], now, 30);
    expect(remainingValidity(cert.certPem, now)).toBeGreaterThan(0.99);
    expect(remainingValidity(cert.certPem, new Date('2026-01-21T00:00:00Z'))).toBeCloseTo(1 / 3, 1);
    expect(remainingValidity(cert.certPem, new Date('2027-01-01T00:00:00Z'))).toBe(0);
  });
});

describe('setCondition', () => {
  it('keeps lastTransitionTime while the status stays, changes it on a transition', () => {
    const t1 = new Date('2026-01-01T00:00:00Z');
    const t2 = new Date('2026-01-01T01:00:00Z');
    let c = setCondition(undefined, { type: 'Ready', status: 'False', reason: 'Syncing', message: '0 of 3' }, t1);
    c = setCondition(c, { type: 'Ready', status: 'False', reason: 'Syncing', message: '1 of 3' }, t2);
    expect(c).toEqual([{ type: 'Ready', status: 'False', reason: 'Syncing', message: '1 of 3', lastTransitionTime: '2026-01-01T00:00:00Z' }]);
    c = setCondition(c, { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok' }, t2);
    c = setCondition(c, { type: 'Ready', status: 'True', reason: 'Synced', message: '3 of 3' }, t2);
    expect(c.map((x) => [x.type, x.lastTransitionTime])).toEqual([
      ['Accepted', '2026-01-01T01:00:00Z'],
      ['Ready', '2026-01-01T01:00:00Z'],
    ]);
  });
});
