import { pino } from 'pino';
import { Agent, fetch, type Dispatcher, type Headers } from 'undici';
import { STREAM_PATH, type Snapshot } from '../../crds/src/index.js';
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

/** A sidecar's config stream (GET /v1/stream), collecting the snapshots it is sent. */
export interface TestStream {
  status: number;
  snapshots: Snapshot[];
  /** Resolves when the server ended the stream. */
  ended: Promise<void>;
  close(): void;
}

export async function openStream(base: string, token: string, connect?: Agent.Options['connect']): Promise<TestStream> {
  const controller = new AbortController();
  // Its own connection, destroyed on close(), so the server sees the stream end at once.
  const agent = new Agent({ connect });
  const res = await fetch(`${base}${STREAM_PATH}`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal, dispatcher: agent });
  const snapshots: Snapshot[] = [];
  let buffer = '';
  const ended = (async () => {
    if (res.status !== 200 || !res.body) return;
    try {
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        buffer += Buffer.from(chunk).toString('utf8');
        let i: number;
        while ((i = buffer.indexOf('\n\n')) >= 0) {
          const event = buffer.slice(0, i);
          buffer = buffer.slice(i + 2);
          const data = /^event: snapshot\ndata: (.*)$/s.exec(event)?.[1];
          if (data) snapshots.push((JSON.parse(data) as { snapshot: Snapshot }).snapshot);
        }
      }
    } catch {
      /* aborted by close() */
    }
  })();
  return {
    status: res.status,
    snapshots,
    ended,
    close: () => {
      controller.abort();
      void agent.destroy();
    },
  };
}

/** POSTs JSON as a sidecar; the answer's status, headers and JSON body (if any). */
export async function post(base: string, path: string, token: string | undefined, body: unknown, dispatcher?: Dispatcher): Promise<{ status: number; headers: Headers; json: unknown }> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
    dispatcher,
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? (JSON.parse(text) as unknown) : undefined };
}
