import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { TARGET_REPORT_PATH, TargetReportSchema } from '../../../crds/src/index.js';
import type { TargetStats } from '../../../sidecar/metering/meter.js';
import { TargetReporter } from '../../../sidecar/metering/target-reporter.js';

describe('TargetReporter', () => {
  it('sends the cumulative totals under one boot id, only when they changed, and again after a failure', async () => {
    const targets = new Map<string, TargetStats>();
    const sent: unknown[] = [];
    let answer = 204;
    let flushed = 0;
    const reporter = new TargetReporter({
      targets,
      flush: () => flushed++,
      post: async (path, body) => {
        expect(path).toBe(TARGET_REPORT_PATH);
        sent.push(TargetReportSchema.parse(body));
        return answer;
      },
      logger: pino({ level: 'silent' }),
      intervalMs: 3_600_000,
    });
    await reporter.send();
    expect(sent).toHaveLength(0); // nothing served yet
    targets.set('ns/r/t', { namespace: 'ns', route: 'r', target: 't', provider: 'openai', requests: 2, successes: 2, errors: 0, costNano: 1234n });
    await reporter.send();
    await reporter.send();
    expect(sent).toEqual([{ boot: expect.any(String), targets: [{ route: 'r', target: 't', requests: 2, successes: 2, errors: 0, cost: '1234' }] }]);
    targets.get('ns/r/t')!.requests = 3;
    answer = 503;
    await reporter.send();
    answer = 204;
    await reporter.send();
    expect(sent).toHaveLength(3);
    expect((sent[2] as { boot: string }).boot).toBe((sent[0] as { boot: string }).boot);
    expect(flushed).toBeGreaterThan(0);
    await reporter.stop();
    expect(sent).toHaveLength(3);
  });
});
