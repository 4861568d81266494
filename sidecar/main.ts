#!/usr/bin/env node
import { createServer } from 'node:http';
import { pino } from 'pino';
import type { Snapshot } from '../crds/src/index.js';
import { join } from 'node:path';
import { collectBudgetGauges } from './budget/gauges.js';
import { BudgetEnforcer } from './budget/enforcer.js';
import { LocalFunds } from './budget/local-funds.js';
import type { BudgetFunds } from './budget/funds.js';
import { RemoteFunds } from './budget/remote-funds.js';
import { readFileSync } from 'node:fs';
import { OperatorConfigSource } from './config/operator-source.js';
import { UsageMeter } from './metering/meter.js';
import { TargetReporter } from './metering/target-reporter.js';
import { createMetrics } from './metering/metrics.js';
import { withCatalogPrices } from './metering/catalog-process.js';
import { catalogLoaded, createPricer, loadCatalog, Pricer } from './metering/pricing.js';
import { parseOptions, USAGE } from './options.js';
import { seededRandom } from './random.js';
import { ConfigCompiler, type RuntimeConfig } from './router/runtime.js';
import { collectRateLimitGauges, countLimited } from './ratelimit/gauges.js';
import { RateLimiter } from './ratelimit/limits.js';
import { ProviderBackoffs } from './ratelimit/provider-backoffs.js';
import { RemoteShares, fleetOf } from './ratelimit/remote-shares.js';
import { buildApp, RESPONSE_STORE_DEFAULTS } from './server.js';
import { ResponseStore } from './apis/response-store.js';
import { tracingConfig, type Tracing } from './tracing.js';
import { createHttpTransport } from './transport.js';

async function main(): Promise<void> {
  let options;
  try {
    options = parseOptions(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (options === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  // Synchronous writes (pino's default): measured cheaper per line than sync: false, whose
  // thread-pool round trips wake the event loop; usage lines are written after the response
  // went out (UsageMeter), so they add no latency.
  const stdout = pino.destination({ dest: 1, sync: true });
  const logger = pino({ level: options.logLevel, base: { component: 'paygo-sidecar' } }, stdout);
  // Its own instance (not a child) so each line has one "component" key, and its own buffer:
  // the lines of one batch of finished requests (UsageMeter) go out in one write, not one each.
  // flush(), not flushSync(): the latter also fsyncs, which blocks for hundreds of µs on a file.
  const usageOut = pino.destination({ dest: 1, sync: true, minLength: 512 * 1024, maxWrite: 1024 * 1024 });
  const usageLog = pino({ level: options.logLevel, base: { component: 'paygo-usage' } }, usageOut);
  const metrics = createMetrics();
  const pricer = createPricer();
  const meter = new UsageMeter(metrics, (p, m, u, o, at) => pricer.price(p, m, u, o, at), usageLog, undefined, () => usageOut.flush());
  // Standalone: this sidecar is the only spender and keeps the ledger. Operator mode: it spends
  // only allowance the operator grants, so budgets hold across the whole fleet.
  const funds: BudgetFunds = options.operator
    ? new RemoteFunds({ url: options.operator, tokenFile: options.tokenFile, ca: options.operatorCaPem ?? (options.operatorCa ? readFileSync(options.operatorCa, 'utf8') : undefined), logger })
    : new LocalFunds(join(options.stateDir, 'budgets.json'), logger);
  const enforcer = new BudgetEnforcer(funds, {
    now: () => new Date(),
    logger,
    events: {
      onRefused: (b, action) => metrics.budgetRefused.inc({ namespace: b.namespace, budget: b.name, action }),
      onOverLimit: (b) => metrics.budgetOverLimit.inc({ namespace: b.namespace, budget: b.name }),
    },
  });
  collectBudgetGauges(metrics, enforcer, funds);
  // Operator mode: every rate limit is fleet-wide; this process's buckets hold the shares the
  // operator grants it (ratelimit/remote-shares.ts), over the config stream's connection.
  // Providers' own rate-limit signals (headers, 429 Retry-After) hold back their credential here;
  // in operator mode the same syncs share them with the namespace's other sidecars.
  let operatorSource: OperatorConfigSource | undefined;
  const backoffs = new ProviderBackoffs(Date.now);
  const shares = options.operator
    ? new RemoteShares({
        post: (path, body) => (operatorSource ? operatorSource.postJson(path, body) : Promise.reject(new Error('operator connection not started'))),
        logger,
        backoffs,
      })
    : undefined;
  const rateLimits = new RateLimiter(Date.now, { onLimited: countLimited(metrics) }, shares ? fleetOf(shares) : undefined, backoffs);
  collectRateLimitGauges(metrics, rateLimits);
  // The OpenTelemetry SDK is loaded only when tracing is on.
  const traceConfig = tracingConfig(options.otlpEndpoint, process.env);
  let tracing: Tracing | undefined;
  if (traceConfig) {
    const { createTracing } = await import('./tracing-sdk.js');
    tracing = createTracing(traceConfig, logger);
    logger.info({ otlpEndpoint: traceConfig.url ? new URL(traceConfig.url).origin : 'from OTEL_EXPORTER_OTLP_* variables' }, 'tracing on');
  }
  const transport = createHttpTransport();
  const compiler = new ConfigCompiler(transport);
  let config: RuntimeConfig | undefined;

  const applyNow = (snapshot: Snapshot, source: string) => {
    pricer.usePushedPrices(snapshot.routes);
    config = compiler.compile(snapshot);
    enforcer.setBudgets(snapshot.budgets);
    // Standalone: local buckets of the whole limits. Operator mode: this process's fleet shares.
    rateLimits.apply(config);
    metrics.configInfo.reset();
    metrics.configInfo.set({ version: snapshot.version, source }, 1);
  };
  // Catalog prices: the operator pushes them; otherwise a short-lived child process resolves
  // them (the catalog never enters this process). Only time-dependent catalog prices load the
  // catalog here (once, ~100 ms). A snapshot that waits for either is applied unless a newer
  // one came meanwhile.
  let applying = 0;
  const apply = (snapshot: Snapshot, source: string): Promise<void> | undefined => {
    const mine = ++applying;
    if (catalogLoaded() || !Pricer.needsCatalog(snapshot.routes)) {
      applyNow(snapshot, source);
      return undefined;
    }
    return withCatalogPrices(snapshot)
      .catch((err: Error) => {
        logger.warn({ error: err.message }, 'resolving catalog prices in a child process failed; loading the price catalog in process');
        return snapshot;
      })
      .then(async (priced) => {
        if (Pricer.needsCatalog(priced.routes)) {
          await loadCatalog();
          logger.info({ version: snapshot.version }, 'price catalog loaded (a target has time-dependent catalog prices)');
        }
        if (mine === applying) applyNow(priced, source);
      });
  };
  (metrics.circuitOpen as unknown as { collect?: () => void }).collect = () => {
    metrics.circuitOpen.reset();
    const seen = new Set<string>();
    for (const route of config?.byModel.values() ?? []) {
      if (seen.has(route.id)) continue;
      seen.add(route.id);
      for (const t of route.targets) {
        metrics.circuitOpen.set({ namespace: route.namespace, route: route.name, target: t.name, provider: t.provider }, t.health.breaker.state === 'closed' ? 0 : 1);
      }
    }
  };

  let source: { stop(): void | Promise<void>; reload?(reason: string): boolean };
  let reporter: TargetReporter | undefined;
  if (options.operator) {
    // Operator mode: not ready until a snapshot arrives (or the last good one is on disk).
    const op = new OperatorConfigSource({ url: options.operator, tokenFile: options.tokenFile, caFile: options.operatorCa, caPem: options.operatorCaPem, stateDir: options.stateDir, logger, apply });
    operatorSource = op;
    op.start();
    reporter = new TargetReporter({ targets: meter.targets, flush: () => meter.flush(), post: (path, body) => op.post(path, body), logger, intervalMs: options.targetReportIntervalMs });
    source = op;
  } else {
    // File mode only: YAML parsing and the config builder are not loaded in operator mode.
    const { FileConfigSource } = await import('./config/file-source.js');
    const file = new FileConfigSource({
      path: options.config,
      env: process.env,
      logger,
      apply: (s) => apply(s, 'file'),
    });
    try {
      const snapshot = await file.start();
      logger.info({ config: options.config, version: snapshot.version, routes: snapshot.routes.map((r) => r.name) }, 'config loaded');
    } catch (err) {
      logger.fatal({ config: options.config, error: (err as Error).message }, 'cannot load config');
      process.exit(1);
    }
    source = file;
  }

  // What /v1/responses answered, kept for previous_response_id, item references and GET; in the
  // state dir too, so a restarted sidecar still knows the ids its app holds.
  const responseStore = new ResponseStore({
    ...RESPONSE_STORE_DEFAULTS,
    ttlMs: options.responsesTtlSeconds * 1000,
    maxBytes: options.responsesMaxBytes,
    maxEntries: options.responsesTtlSeconds === 0 ? 0 : RESPONSE_STORE_DEFAULTS.maxEntries,
    dir: options.responsesTtlSeconds === 0 ? undefined : options.stateDir,
    onPersistError: (err, op) => logger.warn({ op, error: err.message }, 'response store: file operation failed'),
  });
  const app = buildApp({
    getConfig: () => config,
    responseStore,
    meter,
    logger,
    bodyLimit: options.bodyLimit,
    random: options.seed === undefined ? Math.random : seededRandom(options.seed),
    unitPrice: (t) => pricer.unitPrice(t.provider, t.model, t.pricing),
    tracing,
    rateLimits,
    budgets: {
      enforcer,
      worstCase: (t, input, maxOut) => {
        const q = pricer.worstCaseCost(t.provider, t.model, input, maxOut, t.pricing);
        return q.known ? q.costNano : undefined;
      },
    },
    hooks: {
      onRetry: (route, target, kind) => metrics.retries.inc({ namespace: route.namespace, route: route.name, target: target.name, provider: target.provider, reason: kind }),
      onFailover: (route, target, kind) => metrics.failovers.inc({ namespace: route.namespace, route: route.name, target: target.name, provider: target.provider, reason: kind }),
      onAttemptFailed: (route, target, kind, error) =>
        logger.warn({ route: `${route.namespace}/${route.name}`, target: target.name, provider: target.provider, kind, error: error.message }, 'upstream attempt failed'),
      onCircuitOpen: (route, target) => logger.warn({ route: `${route.namespace}/${route.name}`, target: target.name }, 'circuit opened'),
    },
  });
  await app.listen({ host: options.host, port: options.port });

  // The metrics listener also answers /healthz and /readyz: the API listens on loopback only,
  // so kubelet probes (which come from outside the pod's network namespace) use this port.
  const metricsServer = createServer((req, res) => {
    if (req.url === '/healthz' || req.url === '/readyz') {
      const ok = req.url === '/healthz' || config !== undefined;
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify(ok ? { status: 'ok', ...(config ? { configVersion: config.version } : {}) } : { status: 'no configuration loaded' }));
      return;
    }
    if (req.url === '/metrics') {
      meter.flush();
      metrics.registry.metrics().then(
        (body) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(body);
        },
        () => {
          res.writeHead(500);
          res.end();
        },
      );
      return;
    }
    res.writeHead(404);
    res.end();
  });
  if (options.metricsPort !== 0) {
    await new Promise<void>((resolve) => metricsServer.listen(options.metricsPort, options.metricsHost, resolve));
    const address = metricsServer.address();
    logger.info({ metrics: typeof address === 'object' && address ? `${address.address}:${address.port}` : address }, 'metrics listening');
  }

  process.on('SIGHUP', () => source.reload?.('SIGHUP'));
  let stopping = false;
  /**
   * The drain: stop accepting connections, let every in-flight request finish and settle its
   * budget hold, then send the final budget report (it closes this process's allowances, so the
   * operator can trust them), the last per-target totals, and the usage log. The final report
   * gets its own slice at the end of the grace; requests still unsettled then stay counted as
   * spent by the operator (their reservations go into the final report's `keep`).
   */
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining in-flight requests');
    const grace = options.shutdownGraceMs;
    const force = setTimeout(() => {
      logger.warn('shutdown grace period over; exiting');
      process.exit(0);
    }, grace);
    force.unref();
    const finalReportMs = Math.min(5_000, Math.floor(grace / 5));
    funds.drain?.();
    // fastify's close() alone would wait out the keep-alive timeout of connections that go idle
    // after it started: close each one as soon as its response is out.
    const closeIdle = setInterval(() => app.server.closeIdleConnections(), 50);
    let drainTimer: NodeJS.Timeout | undefined;
    const outOfTime = new Promise<void>((r) => (drainTimer = setTimeout(r, grace - finalReportMs)));
    Promise.race([app.close().then(() => enforcer.settled()), outOfTime])
      .then(async () => {
        clearInterval(closeIdle);
        clearTimeout(drainTimer);
        if (enforcer.unsettled > 0) logger.warn({ requests: enforcer.unsettled }, 'shutdown grace nearly over with budget-covered requests in flight; their reservations stay counted as spent');
        await Promise.all([funds.close(finalReportMs), shares?.close()]);
        // The last per-target totals go out over the operator connection, then it closes.
        await reporter?.stop();
      })
      .catch((err: unknown) => logger.warn({ error: (err as Error).message }, 'shutdown step failed'))
      .finally(async () => {
        const metricsClosed = new Promise((r) => metricsServer.close(r));
        metricsServer.closeAllConnections();
        await Promise.allSettled([source.stop(), transport.close(), metricsClosed, responseStore.close()]);
        meter.flush();
        usageOut.flushSync();
        // The last spans (of the requests drained above) leave last.
        await tracing?.shutdown(Math.min(5_000, finalReportMs || 1_000));
        logger.info('stopped');
        process.exit(0);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err) => {
  process.stderr.write(`paygo-sidecar: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
