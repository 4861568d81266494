import { describe, expect, it } from 'vitest';
import { buildSnapshot, parseConfigDocuments } from '../../../crds/src/index.js';
import { createMetrics } from '../../../sidecar/metering/metrics.js';
import { collectRateLimitGauges, countLimited } from '../../../sidecar/ratelimit/gauges.js';
import { RateLimiter } from '../../../sidecar/ratelimit/limits.js';
import { ConfigCompiler } from '../../../sidecar/router/runtime.js';
import type { Transport } from '../../../sidecar/transport.js';

const CONFIG = `
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: r }
spec:
  model: m
  targets: [{ name: a, provider: simulate, model: x, quota: { requestsPerMinute: 5 } }]
---
apiVersion: paygo.dev/v1alpha1
kind: RateLimit
metadata: { name: team }
spec:
  limits: { tokensPerDay: 1000 }
`;

describe('rate-limit metrics', () => {
  it('paygo_ratelimit_remaining per bucket at scrape time; paygo_ratelimit_limited_requests_total by reason', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const limiter = new RateLimiter(() => 0, { onLimited: countLimited(metrics) });
    collectRateLimitGauges(metrics, limiter);
    limiter.apply(new ConfigCompiler({} as Transport).compile(buildSnapshot({ ...parseConfigDocuments(CONFIG), env: {} })));
    limiter.all()[1]!.bucket.take(2, 0);
    countLimited(metrics)(limiter.all()[0]!, 'limited');
    const text = await metrics.registry.metrics();
    expect(text).toContain('paygo_ratelimit_remaining{kind="consumer",limit="default/team",resource="tokens",window="day"} 1000\n');
    expect(text).toContain('paygo_ratelimit_remaining{kind="provider",limit="default/r/a",resource="requests",window="minute"} 3\n');
    expect(text).toContain('paygo_ratelimit_limited_requests_total{kind="consumer",limit="default/team",resource="tokens",reason="limited"} 1\n');
    limiter.apply(undefined);
    expect(await metrics.registry.metrics()).not.toContain('paygo_ratelimit_remaining{');
  });
});
