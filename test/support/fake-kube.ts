import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

/**
 * An in-memory Kubernetes API server on 127.0.0.1, speaking the subset of the REST API the
 * operator uses, so the operator's own clients (`kc.makeApiClient`, `Watch`, `ListWatch`) run
 * unchanged against it: list (with the list's resourceVersion), watch (a chunked stream of JSON
 * events from a resourceVersion, with field and label selectors), get, create (generateName),
 * replace with optimistic concurrency (a stale resourceVersion → 409 Conflict in the Kubernetes
 * Status shape), the `/status` subresource (status only; the main resource ignores status and
 * bumps `generation` on spec changes), delete and TokenReviews. Faults: fail or hold the next
 * requests matching a predicate, stall open watches, close them (a lost watch), compact the
 * history (a watch from before it gets 410 Gone). Every request is logged in order.
 */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name?: string;
    generateName?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    creationTimestamp?: string;
    [k: string]: unknown;
  };
  spec?: unknown;
  status?: unknown;
  [k: string]: unknown;
}

export type Verb = 'list' | 'watch' | 'get' | 'create' | 'update' | 'delete';

/** One request as the fake saw it. */
export interface KubeRequest {
  seq: number;
  verb: Verb;
  method: string;
  path: string;
  /** `group/version/plural`, or `v1/plural` for the core group. */
  resource: string;
  namespace: string | undefined;
  name: string | undefined;
  subresource: string | undefined;
  query: URLSearchParams;
  body: unknown;
  /** The caller's bearer token (see `kubeConfig(user)`). */
  user: string;
  /** The answer's status code (set once answered). */
  status?: number;
}

export interface Fault {
  match: (r: KubeRequest) => boolean;
  /** How many matching requests it applies to (default 1). */
  times?: number;
  /** Answer with this status (a Status body with `reason`) instead of serving. */
  status?: number;
  reason?: string;
  message?: string;
}

/** A request that waits until the test releases it. */
export interface Gate {
  /** Resolves when a matching request arrived and is held. */
  arrived: Promise<KubeRequest>;
  release(): void;
}

interface Watcher {
  resource: string;
  namespace: string | undefined;
  fieldSelector: string | null;
  labelSelector: string | null;
  res: ServerResponse;
  stalled: boolean;
}

interface WatchEvent {
  rv: number;
  resource: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: KubeObject;
}

/** Who a bearer token belongs to (TokenReview). */
export interface TokenOwner {
  namespace: string;
  serviceAccount?: string;
  podName: string;
  podUid: string;
  audiences?: string[];
}

const KINDS: Record<string, { kind: string; apiVersion: string; statusSubresource?: boolean; clusterScoped?: boolean }> = {
  'paygo.dev/v1alpha1/modelroutes': { kind: 'ModelRoute', apiVersion: 'paygo.dev/v1alpha1', statusSubresource: true },
  'paygo.dev/v1alpha1/budgets': { kind: 'Budget', apiVersion: 'paygo.dev/v1alpha1', statusSubresource: true },
  'paygo.dev/v1alpha1/providerquotas': { kind: 'ProviderQuota', apiVersion: 'paygo.dev/v1alpha1', statusSubresource: true },
  'paygo.dev/v1alpha1/ratelimits': { kind: 'RateLimit', apiVersion: 'paygo.dev/v1alpha1', statusSubresource: true },
  'v1/secrets': { kind: 'Secret', apiVersion: 'v1' },
  'v1/pods': { kind: 'Pod', apiVersion: 'v1', statusSubresource: true },
  'v1/events': { kind: 'Event', apiVersion: 'v1' },
  'coordination.k8s.io/v1/leases': { kind: 'Lease', apiVersion: 'coordination.k8s.io/v1' },
  'admissionregistration.k8s.io/v1/mutatingwebhookconfigurations': { kind: 'MutatingWebhookConfiguration', apiVersion: 'admissionregistration.k8s.io/v1', clusterScoped: true },
};

export const ROUTES = 'paygo.dev/v1alpha1/modelroutes';
export const BUDGETS = 'paygo.dev/v1alpha1/budgets';
export const PROVIDER_QUOTAS = 'paygo.dev/v1alpha1/providerquotas';
export const RATE_LIMITS = 'paygo.dev/v1alpha1/ratelimits';
export const SECRETS = 'v1/secrets';
export const PODS = 'v1/pods';
export const EVENTS = 'v1/events';
export const LEASES = 'coordination.k8s.io/v1/leases';

function parsePath(path: string): { resource: string; namespace?: string; name?: string; subresource?: string } | undefined {
  const core = /^\/api\/v1(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(path);
  if (core) return { resource: `v1/${core[2]}`, namespace: core[1], name: core[3], subresource: core[4] };
  const named = /^\/apis\/([^/]+)\/([^/]+)(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(path);
  if (named) return { resource: `${named[1]}/${named[2]}/${named[4]}`, namespace: named[3], name: named[5], subresource: named[6] };
  return undefined;
}

/** `a=b,c!=d,e` (equality-based selectors only). */
function labelsMatch(selector: string | null, labels: Record<string, string> | undefined): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const ne = /^([^!=]+)!=(.*)$/.exec(term);
    if (ne) return labels?.[ne[1]!] !== ne[2];
    const eq = /^([^=]+)==?(.*)$/.exec(term);
    if (eq) return labels?.[eq[1]!] === eq[2];
    return labels?.[term] !== undefined;
  });
}

/** `metadata.name=x,metadata.namespace=y`. */
function fieldsMatch(selector: string | null, obj: KubeObject): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [field, value] = term.split('=') as [string, string];
    if (field === 'metadata.name') return obj.metadata.name === value;
    if (field === 'metadata.namespace') return obj.metadata.namespace === value;
    throw new Error(`fake-kube: unsupported field selector ${field}`);
  });
}

function statusBody(code: number, reason: string, message: string, details?: Record<string, unknown>): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

const REASONS: Record<number, string> = { 400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 409: 'Conflict', 410: 'Expired', 422: 'Invalid', 429: 'TooManyRequests', 500: 'InternalError', 503: 'ServiceUnavailable', 504: 'Timeout' };

const clone = <T>(v: T): T => structuredClone(v);

export class FakeKube {
  /** Every request, in arrival order. */
  readonly requests: KubeRequest[] = [];
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private readonly history: WatchEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly faults: Fault[] = [];
  private readonly gates: Array<{ match: (r: KubeRequest) => boolean; hold: Promise<void>; arrived: (r: KubeRequest) => void; release: () => void; used: boolean }> = [];
  private readonly tokens = new Map<string, TokenOwner>();
  private rv = 1;
  private compactedRv = 0;
  private seq = 0;
  private server: Server | undefined;
  url = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const g of this.gates.splice(0)) g.release();
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  /**
   * A KubeConfig for this server (plain HTTP; the client insists on skipTLSVerify for it).
   * `user` becomes the bearer token, so requests and faults can tell two clients apart.
   */
  kubeConfig(user = 'operator'): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: this.url, skipTLSVerify: true }],
      users: [{ name: user, token: user }],
      contexts: [{ name: 'fake', cluster: 'fake', user }],
      currentContext: 'fake',
    });
    return kc;
  }

  // ---- state, as the test sees it (no faults, no request log) ----

  private bucket(resource: string): Map<string, KubeObject> {
    let b = this.objects.get(resource);
    if (!b) {
      b = new Map();
      this.objects.set(resource, b);
    }
    return b;
  }

  /** The current resourceVersion of the whole store (like etcd's revision). */
  resourceVersion(): string {
    return String(this.rv);
  }

  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const o = this.bucket(resource).get(`${namespace ?? ''}/${name}`);
    return o && clone(o);
  }

  list(resource: string, namespace?: string): KubeObject[] {
    return [...this.bucket(resource).values()].filter((o) => namespace === undefined || o.metadata.namespace === namespace).map(clone);
  }

  /** Creates (or replaces, whatever its resourceVersion) an object as it is, status included. */
  put(resource: string, obj: KubeObject): KubeObject {
    const key = `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
    const old = this.bucket(resource).get(key);
    const kind = KINDS[resource];
    const next: KubeObject = clone({ ...(kind ? { apiVersion: kind.apiVersion, kind: kind.kind } : {}), ...obj });
    next.metadata.uid ??= old?.metadata.uid ?? randomUUID();
    next.metadata.creationTimestamp ??= old?.metadata.creationTimestamp ?? new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    if (kind?.statusSubresource && resource !== PODS) next.metadata.generation ??= old ? (old.metadata.generation ?? 1) + (JSON.stringify(old.spec) === JSON.stringify(next.spec) ? 0 : 1) : 1;
    return this.commit(resource, key, next, old ? 'MODIFIED' : 'ADDED');
  }

  remove(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const key = `${namespace ?? ''}/${name}`;
    const old = this.bucket(resource).get(key);
    if (!old) return undefined;
    this.bucket(resource).delete(key);
    const gone = clone(old);
    gone.metadata.resourceVersion = String(++this.rv);
    this.broadcast({ rv: this.rv, resource, type: 'DELETED', object: gone });
    return gone;
  }

  private commit(resource: string, key: string, obj: KubeObject, type: 'ADDED' | 'MODIFIED'): KubeObject {
    obj.metadata.resourceVersion = String(++this.rv);
    this.bucket(resource).set(key, obj);
    this.broadcast({ rv: this.rv, resource, type, object: clone(obj) });
    return clone(obj);
  }

  /** A pod-bound ServiceAccount token TokenReviews accept. */
  registerToken(token: string, owner: TokenOwner): void {
    this.tokens.set(token, owner);
  }

  // ---- faults ----

  /** Answers the next `times` requests matching `match` with `status` instead of serving them. */
  fail(fault: Fault): void {
    this.faults.push({ times: 1, ...fault });
  }

  /** Holds the next request matching `match` until `release()`. */
  hold(match: (r: KubeRequest) => boolean): Gate {
    let release!: () => void;
    let arrived!: (r: KubeRequest) => void;
    const hold = new Promise<void>((r) => (release = r));
    const arrivedP = new Promise<KubeRequest>((r) => (arrived = r));
    this.gates.push({ match, hold, arrived, release, used: false });
    return { arrived: arrivedP, release };
  }

  /** Open watches stop receiving events (a stalled connection); new watches are not affected. */
  stallWatches(): void {
    for (const w of this.watchers) w.stalled = true;
  }

  /** Closes every open watch, as when the API server restarts or a proxy drops the stream. */
  dropWatches(): void {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
  }

  /** Forgets the event history: a watch from an older resourceVersion gets 410 Gone. */
  compact(): void {
    this.compactedRv = this.rv;
    this.history.splice(0);
  }

  openWatches(resource?: string): number {
    return [...this.watchers].filter((w) => resource === undefined || w.resource === resource).length;
  }

  /** Requests matching a filter, e.g. every status write of a route. */
  calls(match: Partial<Pick<KubeRequest, 'verb' | 'resource' | 'namespace' | 'name' | 'subresource'>>): KubeRequest[] {
    return this.requests.filter((r) => Object.entries(match).every(([k, v]) => r[k as keyof KubeRequest] === v));
  }

  // ---- HTTP ----

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      return this.send(res, undefined, 400, statusBody(400, 'BadRequest', 'invalid JSON'));
    }
    const parsed = parsePath(url.pathname);
    if (!parsed) return this.send(res, undefined, 404, statusBody(404, 'NotFound', `no route ${url.pathname}`));
    const watch = url.searchParams.get('watch') === 'true';
    const method = req.method ?? 'GET';
    const verb: Verb =
      method === 'GET' ? (watch ? 'watch' : parsed.name ? 'get' : 'list') : method === 'POST' ? 'create' : method === 'PUT' ? 'update' : method === 'DELETE' ? 'delete' : (undefined as never);
    const r: KubeRequest = { seq: ++this.seq, verb, method, path: url.pathname, ...parsed, namespace: parsed.namespace, name: parsed.name, subresource: parsed.subresource, query: url.searchParams, body, user: /^Bearer (.*)$/.exec(req.headers.authorization ?? '')?.[1] ?? '' };
    this.requests.push(r);
    if (!verb) return this.send(res, r, 405, statusBody(405, 'MethodNotAllowed', `${method} is not supported by the fake`));
    const gate = this.gates.find((g) => !g.used && g.match(r));
    if (gate) {
      gate.used = true;
      gate.arrived(r);
      await gate.hold;
    }
    const fault = this.faults.find((f) => f.match(r));
    if (fault) {
      if (--fault.times! <= 0) this.faults.splice(this.faults.indexOf(fault), 1);
      const status = fault.status ?? 500;
      const reason = fault.reason ?? REASONS[status] ?? 'Unknown';
      return this.send(res, r, status, statusBody(status, reason, fault.message ?? `injected ${status}`, parsed.name ? { name: parsed.name } : undefined));
    }
    try {
      this.serve(r, res);
    } catch (err) {
      this.send(res, r, 500, statusBody(500, 'InternalError', (err as Error).message));
    }
  }

  private send(res: ServerResponse, r: KubeRequest | undefined, status: number, body: unknown): void {
    if (r) r.status = status;
    const text = JSON.stringify(body);
    // As the API server (Go's net/http): Content-Length for a body under 2 KiB, chunked above.
    const length = Buffer.byteLength(text);
    res.writeHead(status, { 'content-type': 'application/json', ...(length < 2048 ? { 'content-length': length } : {}) });
    res.end(text);
  }

  private serve(r: KubeRequest, res: ServerResponse): void {
    if (r.resource === 'authentication.k8s.io/v1/tokenreviews' && r.verb === 'create') return this.tokenReview(r, res);
    const kind = KINDS[r.resource];
    if (!kind) return this.send(res, r, 404, statusBody(404, 'NotFound', `the fake does not serve ${r.resource}`));
    const notFound = () => this.send(res, r, 404, statusBody(404, 'NotFound', `${r.resource.split('/').pop()} "${r.name}" not found`, { name: r.name, kind: r.resource.split('/').pop() }));
    const key = `${r.namespace ?? ''}/${r.name}`;
    const bucket = this.bucket(r.resource);
    switch (r.verb) {
      case 'list': {
        const items = this.select(r).map(clone);
        return this.send(res, r, 200, { apiVersion: kind.apiVersion, kind: `${kind.kind}List`, metadata: { resourceVersion: String(this.rv) }, items });
      }
      case 'watch':
        return this.watch(r, res);
      case 'get': {
        const o = bucket.get(key);
        return o ? this.send(res, r, 200, o) : notFound();
      }
      case 'delete': {
        const gone = this.remove(r.resource, r.namespace, r.name!);
        return gone ? this.send(res, r, 200, gone) : notFound();
      }
      case 'create': {
        const obj = clone(r.body as KubeObject);
        obj.metadata ??= {};
        if (!obj.metadata.name && obj.metadata.generateName) obj.metadata.name = `${obj.metadata.generateName}${randomUUID().slice(0, 5)}`;
        if (!kind.clusterScoped) obj.metadata.namespace = r.namespace;
        const k = `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
        if (bucket.has(k)) return this.send(res, r, 409, statusBody(409, 'AlreadyExists', `"${obj.metadata.name}" already exists`, { name: obj.metadata.name }));
        delete obj.metadata.resourceVersion;
        delete obj.metadata.uid;
        delete obj.metadata.generation;
        if (kind.statusSubresource && r.resource !== PODS) delete obj.status;
        return this.send(res, r, 201, this.put(r.resource, obj));
      }
      case 'update': {
        const old = bucket.get(key);
        if (!old) return notFound();
        const obj = clone(r.body as KubeObject);
        const sent = obj.metadata?.resourceVersion;
        if (sent && sent !== old.metadata.resourceVersion) {
          return this.send(
            res,
            r,
            409,
            statusBody(409, 'Conflict', `Operation cannot be fulfilled on ${r.resource.split('/').pop()} "${r.name}": the object has been modified; please apply your changes to the latest version and try again`, { name: r.name, kind: r.resource.split('/').pop() }),
          );
        }
        let next: KubeObject;
        if (r.subresource === 'status') next = { ...clone(old), status: obj.status };
        else if (r.subresource) return this.send(res, r, 404, statusBody(404, 'NotFound', `no subresource ${r.subresource}`));
        else {
          next = { ...obj, metadata: { ...obj.metadata, uid: old.metadata.uid, creationTimestamp: old.metadata.creationTimestamp, namespace: old.metadata.namespace, name: old.metadata.name } };
          if (kind.statusSubresource) next.status = clone(old.status);
          if (kind.statusSubresource && r.resource !== PODS) next.metadata.generation = (old.metadata.generation ?? 1) + (JSON.stringify(old.spec) === JSON.stringify(next.spec) ? 0 : 1);
        }
        if (!next.status) delete next.status;
        return this.send(res, r, 200, this.commit(r.resource, key, next, 'MODIFIED'));
      }
    }
  }

  private select(r: KubeRequest): KubeObject[] {
    const fields = r.query.get('fieldSelector');
    const labels = r.query.get('labelSelector');
    return [...this.bucket(r.resource).values()].filter(
      (o) => (r.namespace === undefined || o.metadata.namespace === r.namespace) && fieldsMatch(fields, o) && labelsMatch(labels, o.metadata.labels),
    );
  }

  private watch(r: KubeRequest, res: ServerResponse): void {
    r.status = 200;
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const from = Number(r.query.get('resourceVersion') || this.rv);
    if (from < this.compactedRv) {
      // What the API server does: a 200 whose only event is an ERROR Status, then the end.
      res.end(`${JSON.stringify({ type: 'ERROR', object: statusBody(410, 'Expired', `too old resource version: ${from} (${this.compactedRv})`) })}\n`);
      return;
    }
    const w: Watcher = { resource: r.resource, namespace: r.namespace, fieldSelector: r.query.get('fieldSelector'), labelSelector: r.query.get('labelSelector'), res, stalled: false };
    this.watchers.add(w);
    res.on('close', () => this.watchers.delete(w));
    for (const e of this.history) if (e.rv > from) this.deliver(w, e);
  }

  private deliver(w: Watcher, e: WatchEvent): void {
    if (w.stalled || e.resource !== w.resource) return;
    if (w.namespace !== undefined && e.object.metadata.namespace !== w.namespace) return;
    if (!fieldsMatch(w.fieldSelector, e.object) || !labelsMatch(w.labelSelector, e.object.metadata.labels)) return;
    w.res.write(`${JSON.stringify({ type: e.type, object: e.object })}\n`);
  }

  private broadcast(e: WatchEvent): void {
    this.history.push(e);
    for (const w of this.watchers) this.deliver(w, e);
  }

  private tokenReview(r: KubeRequest, res: ServerResponse): void {
    const spec = (r.body as { spec?: { token?: string; audiences?: string[] } }).spec ?? {};
    const owner = this.tokens.get(spec.token ?? '');
    const wanted = spec.audiences ?? [];
    const audiences = owner?.audiences ?? ['paygo'];
    const ok = owner !== undefined && wanted.every((a) => audiences.includes(a));
    const status = ok
      ? {
          authenticated: true,
          audiences: wanted.length ? wanted : audiences,
          user: {
            username: `system:serviceaccount:${owner.namespace}:${owner.serviceAccount ?? 'default'}`,
            uid: randomUUID(),
            groups: ['system:serviceaccounts', `system:serviceaccounts:${owner.namespace}`, 'system:authenticated'],
            extra: { 'authentication.kubernetes.io/pod-name': [owner.podName], 'authentication.kubernetes.io/pod-uid': [owner.podUid] },
          },
        }
      : { authenticated: false, error: owner ? 'token audiences are invalid for the target audiences' : 'invalid bearer token' };
    this.send(res, r, 201, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', metadata: { creationTimestamp: null }, spec, status });
  }
}

/** Waits until `cond` holds (checked every 5 ms; fails after `ms`, generous: never a timing assertion). */
export async function until(cond: () => boolean | Promise<boolean>, what = 'condition', ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
