import { isIP } from 'node:net';
import { AdmissionregistrationV1Api, AuthenticationV1Api, CoordinationV1Api, CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { TokenAuthenticator } from './auth.js';
import { ClusterCache } from './cache.js';
import { BudgetService } from './budgets.js';
import { RateLimitStatusWriter } from './ratelimit-status.js';
import { RateLimitService } from './ratelimits.js';
import { TargetTotals } from './target-totals.js';
import { Distributor } from './distribution.js';
import { LeaderElector } from './leader.js';
import type { OperatorOptions } from './options.js';
import { WorkQueue } from './queue.js';
import { RouteStatusWriter } from './route-status.js';
import { snapshotForPod } from './snapshots.js';
import { TlsManager, type ServingTls } from './tls.js';
import { INJECTED_LABEL, OutdatedPodReporter, coreEventWriter, injectionHash, registerWebhook, type InjectionConfig } from './webhook.js';

/** Least time between two status writes of a route caused by per-target totals alone. */
const TARGET_STATUS_INTERVAL_MS = 5_000;

/** The control plane process: caches, config distribution, status, leader election, health. */
export class Operator {
  readonly cache: ClusterCache;
  readonly distributor: Distributor;
  private readonly queue: WorkQueue;
  private readonly leader: LeaderElector | undefined;
  private readonly registry = new Registry();
  private server: FastifyInstance | undefined;
  private health: FastifyInstance | undefined;
  tls: ServingTls | undefined;

  constructor(
    private readonly o: OperatorOptions,
    private readonly kc: KubeConfig,
    private readonly logger: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {
    const core = kc.makeApiClient(CoreV1Api);
    const custom = kc.makeApiClient(CustomObjectsApi);
    this.cache = new ClusterCache(kc, logger);
    collectDefaultMetrics({ register: this.registry });
    const connected = new Gauge({ name: 'paygo_operator_connected_sidecars', help: 'Sidecar config streams connected to this replica.', registers: [this.registry] });
    const isLeaderGauge = new Gauge({ name: 'paygo_operator_leader', help: '1 while this replica is the leader.', registers: [this.registry] });
    const reconcileErrors = new Counter({ name: 'paygo_operator_reconcile_errors_total', help: 'Failed reconciles (retried with backoff).', registers: [this.registry] });
    this.distributor = new Distributor({
      authenticator: new TokenAuthenticator(kc.makeApiClient(AuthenticationV1Api), core, { now: Date.now }),
      snapshotFor: (id) => snapshotForPod(this.cache, id.namespace, id.labels, id.serviceAccount),
      isLeader: () => this.isLeader(),
      onNamespaceSyncChanged: (ns) => {
        connected.set(this.distributor.connections.size);
        this.enqueueNamespace(ns);
      },
      onTargetReport: (id, report) => {
        for (const key of this.targetTotals.report(id.namespace, id.podUid, report)) this.enqueueTargetStatus(key);
      },
      logger,
    });
    const writer = new RouteStatusWriter({
      cache: this.cache,
      custom,
      core,
      routeSync: (ns, name) => this.distributor.routeSync(ns, name),
      targetTotals: (ns, route, target) => this.targetTotals.totals(ns, route, target),
      now,
      logger,
      fieldManager: `paygo-operator-${o.identity}`.slice(0, 128),
    });
    const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames: ['namespace', 'budget', 'period'], registers: [this.registry] });
    this.budgets = new BudgetService({
      cache: this.cache,
      custom,
      core,
      authenticator: this.distributor.authenticator,
      isLeader: () => this.isLeader() && this.budgetsRestored,
      now,
      logger,
      fieldManager: `paygo-operator-${o.identity}`.slice(0, 128),
      gauges: {
        limit: gauge('paygo_budget_limit_usd', 'Budget limit per period in USD.'),
        spent: gauge('paygo_budget_spent_usd', 'Fleet-wide spend in the current budget period in USD.'),
        reserved: gauge('paygo_budget_reserved_usd', 'Allowance granted to sidecars and not yet spent, in USD.'),
        remaining: gauge('paygo_budget_remaining_ratio', 'Share of the budget limit neither spent nor granted (0-1).'),
      },
    });
    this.rateLimits = new RateLimitService({
      cache: this.cache,
      authenticator: this.distributor.authenticator,
      isLeader: () => this.isLeader(),
      now: () => now().getTime(),
      logger,
    });
    this.rateLimitStatus = new RateLimitStatusWriter({
      cache: this.cache,
      custom,
      ledger: this.rateLimits.ledger,
      isLeader: () => this.isLeader(),
      now: () => now().getTime(),
      logger,
      fieldManager: `paygo-operator-${o.identity}`.slice(0, 128),
    });
    this.queue = new WorkQueue(
      async (key) => {
        if (!this.isLeader()) return;
        const [ns, name] = key.split('/') as [string, string];
        await writer.reconcile(ns, name);
      },
      (key, err) => {
        reconcileErrors.inc();
        logger.warn({ route: key, error: (err as Error).message }, 'status reconcile failed; retrying');
      },
    );
    if (o.leaderElect) {
      this.leader = new LeaderElector({
        api: kc.makeApiClient(CoordinationV1Api),
        namespace: o.namespace,
        name: o.leaseName,
        identity: o.identity,
        logger,
        onChange: (leader) => {
          isLeaderGauge.set(leader ? 1 : 0);
          this.budgetsRestored = false;
          // Rate-limit shares are in memory: a new leader waits out the old one's (ratelimits.ts).
          if (leader) this.rateLimits.lead();
          this.rateLimitStatus.lead();
          if (leader) this.restoreBudgets();
          if (leader) for (const r of this.cache.routes.list()) this.queue.add(`${r.metadata?.namespace}/${r.metadata?.name}`);
          else this.distributor.closeAll(); // sidecars reconnect to the new leader
        },
      });
    } else {
      isLeaderGauge.set(1);
    }
    this.cache.onNamespaceChanged((ns) => {
      this.distributor.refresh(ns);
      this.enqueueNamespace(ns);
      this.reconcileBudgets(ns);
    });
    this.tlsManager = new TlsManager({
      core,
      namespace: o.namespace,
      secretName: o.tlsSecret,
      dnsNames: ['localhost', o.serviceName, `${o.serviceName}.${o.namespace}`, `${o.serviceName}.${o.namespace}.svc`, `${o.serviceName}.${o.namespace}.svc.cluster.local`, ...o.tlsSans.filter((s) => !isIP(s))],
      ips: ['127.0.0.1', ...o.tlsSans.filter((s) => isIP(s))],
      now,
      logger,
      certFile: o.tlsCertFile,
      keyFile: o.tlsKeyFile,
      caFile: o.tlsCaFile,
    });
  }
  private readonly tlsManager: TlsManager;
  readonly budgets: BudgetService;
  readonly rateLimits: RateLimitService;
  /** ProviderQuota and RateLimit status (leader only). */
  readonly rateLimitStatus: RateLimitStatusWriter;
  /** Budget syncs are refused until the book is restored from Budget.status. */
  private budgetsRestored = false;

  private restoreBudgets(): void {
    this.budgets.restore().then(
      () => {
        this.budgetsRestored = true;
        for (const ns of new Set(this.cache.budgets.list().map((b) => b.metadata?.namespace ?? 'default'))) this.reconcileBudgets(ns);
      },
      (err: unknown) => {
        this.logger.warn({ error: (err as Error).message }, 'could not restore budgets; retrying');
        setTimeout(() => this.isLeader() && this.restoreBudgets(), 1000).unref();
      },
    );
  }

  private reconcileBudgets(namespace: string): void {
    this.budgets.reconcileNamespace(namespace).catch((err: unknown) => this.logger.warn({ namespace, error: (err as Error).message }, 'budget status reconcile failed'));
  }

  isLeader(): boolean {
    return this.leader ? this.leader.isLeader() : true;
  }

  /** Per-target totals change with every report: a route's status takes them at most every few seconds. */
  private enqueueTargetStatus(key: string): void {
    if (this.targetStatusTimers.has(key)) return;
    const wait = Math.max(0, (this.targetStatusAt.get(key) ?? 0) + TARGET_STATUS_INTERVAL_MS - Date.now());
    const timer = setTimeout(() => {
      this.targetStatusTimers.delete(key);
      this.targetStatusAt.set(key, Date.now());
      this.queue.add(key);
    }, wait);
    timer.unref();
    this.targetStatusTimers.set(key, timer);
  }
  private readonly targetTotals = new TargetTotals();
  private readonly targetStatusAt = new Map<string, number>();
  private readonly targetStatusTimers = new Map<string, NodeJS.Timeout>();

  private enqueueNamespace(ns: string): void {
    for (const r of this.cache.routes.list(ns)) this.queue.add(`${ns}/${r.metadata?.name}`);
  }

  async start(): Promise<{ url: string; healthUrl: string }> {
    this.tls = await this.tlsManager.load();
    await this.cache.start();
    this.budgets.start();
    this.rateLimits.start();
    this.rateLimitStatus.start();
    if (this.leader) this.leader.start();
    else {
      // Always leader, but a restarted process: shares its predecessor granted may be in use.
      this.rateLimits.lead();
      this.restoreBudgets();
    }
    const log = this.logger as unknown as FastifyBaseLogger;
    this.server = Fastify({ loggerInstance: log, logController: new LogController({ disableRequestLogging: true }), https: { cert: this.tls.certPem, key: this.tls.keyPem } });
    this.distributor.register(this.server);
    this.budgets.register(this.server);
    this.rateLimits.register(this.server);
    const tls = this.tls;
    const injection: InjectionConfig = {
      image: this.o.sidecarImage,
      ...(this.o.sidecarImagePullPolicy ? { imagePullPolicy: this.o.sidecarImagePullPolicy } : {}),
      ...(this.o.sidecarLogLevel ? { logLevel: this.o.sidecarLogLevel } : {}),
      ...(this.o.sidecarOtlpEndpoint ? { otlpEndpoint: this.o.sidecarOtlpEndpoint } : {}),
      ...(Object.keys(this.o.sidecarOtelEnv).length > 0 ? { otelEnv: this.o.sidecarOtelEnv } : {}),
      resources: { requests: { cpu: this.o.sidecarCpuRequest, memory: this.o.sidecarMemoryRequest }, limits: { memory: this.o.sidecarMemoryLimit } },
      operatorURL: this.o.operatorURL ?? `https://${this.o.serviceName}.${this.o.namespace}.svc:8443`,
      caPem: tls.caPem,
      port: 4000,
      metricsPort: 9464,
    };
    registerWebhook(this.server, { config: () => injection, logger: this.logger });
    if (this.o.webhookConfigName) await this.ensureCaBundle(this.o.webhookConfigName, tls.caPem);
    this.reporter = new OutdatedPodReporter({
      listPods: async () => (this.isLeader() ? (await this.kc.makeApiClient(CoreV1Api).listPodForAllNamespaces({ labelSelector: `${INJECTED_LABEL}=true` })).items : []),
      currentHash: () => injectionHash(injection),
      events: coreEventWriter(this.kc.makeApiClient(CoreV1Api)),
      logger: this.logger,
    });
    this.reporter.start(300_000);
    // Re-check the serving certificate hourly: a replica re-issues it when a third of its
    // validity is left, and every replica picks the new one up without a restart.
    this.tlsTimer = setInterval(() => {
      this.tlsManager.load().then(
        (next) => {
          if (next.certPem === this.tls?.certPem) return;
          this.tls = next;
          (this.server?.server as unknown as import('node:tls').Server | undefined)?.setSecureContext({ cert: next.certPem, key: next.keyPem });
          this.logger.info('serving certificate reloaded');
        },
        (err: unknown) => this.logger.warn({ error: (err as Error).message }, 'certificate check failed'),
      );
    }, 3_600_000);
    this.tlsTimer.unref();
    await this.server.listen({ host: this.o.listenHost, port: this.o.listenPort });
    this.health = Fastify({ loggerInstance: log, logController: new LogController({ disableRequestLogging: true }) });
    this.health.get('/healthz', async () => ({ status: 'ok' }));
    this.health.get('/readyz', async (_req, reply) => (this.cache.synced() ? { status: 'ok', leader: this.isLeader() } : reply.code(503).send({ status: 'caches not synced' })));
    this.health.get('/metrics', async (_req, reply) => reply.type(this.registry.contentType).send(await this.registry.metrics()));
    await this.health.listen({ host: this.o.healthHost, port: this.o.healthPort });
    const addr = (s: FastifyInstance) => {
      const a = s.server.address();
      return typeof a === 'object' && a ? a.port : 0;
    };
    const url = `https://127.0.0.1:${addr(this.server)}`;
    const healthUrl = `http://127.0.0.1:${addr(this.health)}`;
    this.logger.info({ url, healthUrl, identity: this.o.identity }, 'operator started');
    return { url, healthUrl };
  }

  private reporter: OutdatedPodReporter | undefined;
  private tlsTimer: NodeJS.Timeout | undefined;

  /** Keeps the webhook configuration's caBundle equal to the CA that signs our certificate. */
  private async ensureCaBundle(name: string, caPem: string): Promise<void> {
    const api = this.kc.makeApiClient(AdmissionregistrationV1Api);
    const bundle = Buffer.from(caPem).toString('base64');
    try {
      const cfg = await api.readMutatingWebhookConfiguration({ name });
      if ((cfg.webhooks ?? []).every((w) => w.clientConfig.caBundle === bundle)) return;
      for (const w of cfg.webhooks ?? []) w.clientConfig.caBundle = bundle;
      await api.replaceMutatingWebhookConfiguration({ name, body: cfg });
      this.logger.info({ webhook: name }, 'webhook caBundle updated');
    } catch (err) {
      this.logger.warn({ webhook: name, error: (err as Error).message }, 'could not set the webhook caBundle');
    }
  }

  /** Graceful stop: release the lease first so another replica takes over at once. */
  async stop(): Promise<void> {
    clearInterval(this.tlsTimer);
    this.rateLimitStatus.stop();
    for (const t of this.targetStatusTimers.values()) clearTimeout(t);
    await this.reporter?.stop();
    await this.leader?.stop();
    this.budgets.stop();
    this.rateLimits.stop();
    this.queue.stop();
    this.distributor.stop();
    await Promise.allSettled([this.server?.close(), this.health?.close(), this.cache.stop()]);
  }
}
