import { readFileSync } from 'node:fs';
import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { certificateNames, generateCA, issueServingCert, remainingValidity, type KeyPairPem } from './certs.js';

export interface ServingTls {
  caPem: string;
  certPem: string;
  keyPem: string;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : '');

/**
 * The operator's serving certificate: read from files when given, else managed in a Secret
 * (ca.crt, ca.key, tls.crt, tls.key) that the first replica creates and every replica reads; the
 * serving certificate is re-issued when a third of its validity is left or its names changed.
 */
export class TlsManager {
  constructor(
    private readonly o: {
      core: CoreV1Api;
      namespace: string;
      secretName: string;
      dnsNames: string[];
      ips: string[];
      now: () => Date;
      logger: Logger;
      certFile?: string;
      keyFile?: string;
      caFile?: string;
    },
  ) {}

  async load(): Promise<ServingTls> {
    if (this.o.certFile && this.o.keyFile) {
      const certPem = readFileSync(this.o.certFile, 'utf8');
      return { certPem, keyPem: readFileSync(this.o.keyFile, 'utf8'), caPem: this.o.caFile ? readFileSync(this.o.caFile, 'utf8') : certPem };
    }
    for (let attempt = 0; attempt < 5; attempt++) {
      const secret = await this.read();
      const current = secret ? this.fromSecret(secret) : undefined;
      if (current && this.fresh(current)) return { caPem: current.caPem, certPem: current.certPem, keyPem: current.keyPem };
      const ca: KeyPairPem = current?.ca ?? generateCA('paygo-operator-ca', this.o.now());
      const serving = issueServingCert(ca, this.o.dnsNames, this.o.ips, this.o.now());
      const data = { 'ca.crt': b64(ca.certPem), 'ca.key': b64(ca.keyPem), 'tls.crt': b64(serving.certPem), 'tls.key': b64(serving.keyPem) };
      try {
        if (secret) {
          await this.o.core.replaceNamespacedSecret({ name: this.o.secretName, namespace: this.o.namespace, body: { ...secret, type: 'kubernetes.io/tls', data } });
          this.o.logger.info({ secret: `${this.o.namespace}/${this.o.secretName}` }, 'serving certificate rotated');
        } else {
          await this.o.core.createNamespacedSecret({
            namespace: this.o.namespace,
            body: { metadata: { name: this.o.secretName, namespace: this.o.namespace, labels: { 'app.kubernetes.io/managed-by': 'paygo-operator' } }, type: 'kubernetes.io/tls', data },
          });
          this.o.logger.info({ secret: `${this.o.namespace}/${this.o.secretName}` }, 'certificate authority and serving certificate created');
        }
        return { caPem: ca.certPem, certPem: serving.certPem, keyPem: serving.keyPem };
      } catch (err) {
        if ((err as { code?: number }).code !== 409) throw err;
        // Another replica wrote first: read theirs.
      }
    }
    throw new Error(`could not settle the TLS Secret ${this.o.namespace}/${this.o.secretName}`);
  }

  private async read(): Promise<V1Secret | undefined> {
    try {
      return await this.o.core.readNamespacedSecret({ name: this.o.secretName, namespace: this.o.namespace });
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  }

  private fromSecret(s: V1Secret): (ServingTls & { ca: KeyPairPem }) | undefined {
    const d = s.data ?? {};
    const ca = { certPem: unb64(d['ca.crt']), keyPem: unb64(d['ca.key']) };
    const certPem = unb64(d['tls.crt']);
    const keyPem = unb64(d['tls.key']);
    if (!ca.certPem || !ca.keyPem || !certPem || !keyPem) return undefined;
    return { ca, caPem: ca.certPem, certPem, keyPem };
  }

  private fresh(t: ServingTls): boolean {
    const names = new Set(certificateNames(t.certPem));
    return remainingValidity(t.certPem, this.o.now()) > 1 / 3 && [...this.o.dnsNames, ...this.o.ips].every((n) => names.has(n));
  }
}
