import { CustomObjectsApi, CoreV1Api, KubeConfig, ListWatch, Watch, type KubernetesListObject, type KubernetesObject, type V1Secret } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { GROUP, VERSION } from '../crds/src/index.js';

/**
 * The operator's view of the cluster: informers (list + watch with reconnect and backoff, from
 * @kubernetes/client-node) on ModelRoutes, Budgets, ProviderQuotas and RateLimits in every
 * namespace, and on exactly the Secrets that routes reference (one watch per referenced Secret,
 * by field selector).
 * Consumers get "namespace changed" notifications and read from the caches: reconcilers are
 * level-triggered and never depend on the order of events.
 */
export interface RawObject extends KubernetesObject {
  spec?: unknown;
  status?: unknown;
}

/**
 * ListWatch reports an error and then stops for good; keep it running: restart with
 * exponential backoff (1 s … 30 s), reset once a list succeeds.
 */
function keepRunning<T extends KubernetesObject>(lw: ListWatch<T>, onError: (err: unknown) => void, isStopped: () => boolean): void {
  let delay = 1000;
  let timer: NodeJS.Timeout | undefined;
  lw.on('error', (err) => {
    if (isStopped()) return;
    onError(err);
    if (timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      if (isStopped()) return;
      void lw.start().then(() => {
        if (lw.latestResourceVersion()) delay = 1000;
      });
    }, delay);
    timer.unref();
    delay = Math.min(delay * 2, 30_000);
  });
}

/** Has the informer completed its first list? */
export function listed<T extends KubernetesObject>(lw: ListWatch<T>): boolean {
  return lw.latestResourceVersion() !== '';
}

export class ClusterCache {
  readonly routes: ListWatch<RawObject>;
  readonly budgets: ListWatch<RawObject>;
  readonly providerQuotas: ListWatch<RawObject>;
  readonly rateLimits: ListWatch<RawObject>;
  private readonly secretWatches = new Map<string, ListWatch<V1Secret>>();
  private readonly listeners = new Set<(namespace: string) => void>();
  private readonly watch: Watch;
  private readonly core: CoreV1Api;
  private started = false;
  private stopped = false;

  constructor(
    private readonly kc: KubeConfig,
    private readonly logger: Logger,
  ) {
    this.watch = new Watch(kc);
    this.core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    const list = (plural: string) => () =>
      custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural }) as Promise<KubernetesListObject<RawObject>>;
    this.routes = new ListWatch(`/apis/${GROUP}/${VERSION}/modelroutes`, this.watch, list('modelroutes'), false);
    this.budgets = new ListWatch(`/apis/${GROUP}/${VERSION}/budgets`, this.watch, list('budgets'), false);
    this.providerQuotas = new ListWatch(`/apis/${GROUP}/${VERSION}/providerquotas`, this.watch, list('providerquotas'), false);
    this.rateLimits = new ListWatch(`/apis/${GROUP}/${VERSION}/ratelimits`, this.watch, list('ratelimits'), false);
    for (const [kind, informer] of [
      ['ModelRoute', this.routes],
      ['Budget', this.budgets],
      ['ProviderQuota', this.providerQuotas],
      ['RateLimit', this.rateLimits],
    ] as const) {
      for (const verb of ['add', 'update', 'delete'] as const) {
        informer.on(verb, (obj) => {
          if (kind === 'ModelRoute') this.syncSecretWatches();
          this.emit(obj.metadata?.namespace ?? 'default');
        });
      }
      keepRunning(informer, (err) => this.logger.warn({ kind, error: String((err as Error)?.message ?? err) }, 'watch failed; restarting with backoff'), () => this.stopped);
    }
  }

  /** Starts the informers and waits for their first list. */
  async start(): Promise<void> {
    this.started = true;
    await Promise.all([this.routes.start(), this.budgets.start(), this.providerQuotas.start(), this.rateLimits.start()]);
    this.syncSecretWatches();
  }

  onNamespaceChanged(cb: (namespace: string) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  private emit(namespace: string): void {
    for (const cb of this.listeners) cb(namespace);
  }

  /** The Secret namespace/name, if cached (undefined: absent or not yet listed). */
  secret(namespace: string, name: string): V1Secret | undefined {
    return this.secretWatches.get(`${namespace}/${name}`)?.get(name, namespace);
  }

  /** Has the watch of this Secret listed once (so "not found" is the truth)? */
  secretKnown(namespace: string, name: string): boolean {
    const lw = this.secretWatches.get(`${namespace}/${name}`);
    return lw !== undefined && listed(lw);
  }

  /** Have the route, budget, provider quota and rate limit informers listed once? */
  synced(): boolean {
    return listed(this.routes) && listed(this.budgets) && listed(this.providerQuotas) && listed(this.rateLimits);
  }

  /** Keeps one Secret watch per Secret referenced by some ModelRoute target. */
  private syncSecretWatches(): void {
    if (!this.started) return;
    const wanted = new Set<string>();
    for (const route of this.routes.list()) {
      const ns = route.metadata?.namespace ?? 'default';
      // Not yet validated: read every *Ref of credentials defensively.
      const targets = (route.spec as { targets?: Array<{ credentials?: Record<string, { name?: unknown } | undefined> }> } | undefined)?.targets;
      for (const t of Array.isArray(targets) ? targets : []) {
        for (const ref of Object.values(t?.credentials ?? {})) {
          const name = ref?.name;
          if (typeof name === 'string' && name) wanted.add(`${ns}/${name}`);
        }
      }
    }
    for (const [key, lw] of this.secretWatches) {
      if (!wanted.has(key)) {
        void lw.stop();
        this.secretWatches.delete(key);
      }
    }
    for (const key of wanted) {
      if (this.secretWatches.has(key)) continue;
      const [namespace, name] = key.split('/') as [string, string];
      const fieldSelector = `metadata.name=${name}`;
      const lw = new ListWatch<V1Secret>(
        `/api/v1/namespaces/${namespace}/secrets`,
        this.watch,
        () => this.core.listNamespacedSecret({ namespace, fieldSelector }),
        false,
        undefined,
        fieldSelector,
      );
      for (const verb of ['add', 'update', 'delete'] as const) lw.on(verb, () => this.emit(namespace));
      keepRunning(lw, (err) => this.logger.warn({ secret: key, error: String((err as Error)?.message ?? err) }, 'secret watch failed; restarting with backoff'), () => this.stopped || this.secretWatches.get(key) !== lw);
      this.secretWatches.set(key, lw);
      // The first list also settles "not found" (no add event comes for a missing Secret).
      void lw.start().then(() => this.emit(namespace));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.allSettled([this.routes.stop(), this.budgets.stop(), this.providerQuotas.stop(), this.rateLimits.stop(), ...[...this.secretWatches.values()].map((w) => w.stop())]);
    this.secretWatches.clear();
  }
}
