import { pino } from 'pino';
import type { KubeObject } from './fake-kube.js';

/** Objects and helpers shared by the operator's unit tests against test/support/fake-kube.ts. */
export const silent = pino({ level: 'silent' });

/** A clock the test moves by hand. */
export class TestClock {
  constructor(public ms = Date.parse('2026-03-10T12:00:00Z')) {}
  now = (): Date => new Date(this.ms);
  nowMs = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

/** A valid ModelRoute with one OpenAI target per secret name. */
export function route(namespace: string, name: string, o: { secrets?: string[]; podSelector?: Record<string, string>; spec?: Record<string, unknown> } = {}): KubeObject {
  const secrets = o.secrets ?? ['openai'];
  return {
    apiVersion: 'paygo.dev/v1alpha1',
    kind: 'ModelRoute',
    metadata: { name, namespace },
    spec: {
      model: name,
      ...(o.podSelector ? { podSelector: { matchLabels: o.podSelector } } : {}),
      targets: secrets.map((s) => ({ name: s, provider: 'openai', model: 'gpt-4o-mini', credentials: { secretRef: { name: s, key: 'api-key' } } })),
      ...o.spec,
    },
  };
}

export function budget(namespace: string, name: string, spec: Record<string, unknown> = {}): KubeObject {
  return {
    apiVersion: 'paygo.dev/v1alpha1',
    kind: 'Budget',
    metadata: { name, namespace },
    spec: { period: 'daily', limit: '10.00', action: 'block', ...spec },
  };
}

export function secret(namespace: string, name: string, key = 'sk-test'): KubeObject {
  return { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, data: { 'api-key': Buffer.from(key).toString('base64') } };
}

export function pod(namespace: string, name: string, uid: string, labels: Record<string, string> = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace, uid, labels }, spec: { containers: [{ name: 'app', image: 'app' }] } };
}
