import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { TARGET_REPORT_PATH, type TargetReport } from '../../crds/src/protocol.js';
import type { TargetStats } from './meter.js';

export interface TargetReporterOptions {
  /** The meter's per-target totals since this process started. */
  targets: ReadonlyMap<string, TargetStats>;
  /** Flushes what the meter has not published yet. */
  flush(): void;
  /** POSTs to the operator; resolves with the HTTP status. */
  post(path: string, body: unknown): Promise<number>;
  logger: Logger;
  intervalMs: number;
}

/**
 * Operator mode: reports the per-target totals of this sidecar process to the operator now and
 * then (cumulative since start, under one boot id), so ModelRoute status can show them.
 */
export class TargetReporter {
  private readonly boot = randomUUID();
  private readonly timer: NodeJS.Timeout;
  private lastSent = '';
  private sending = false;

  constructor(private readonly o: TargetReporterOptions) {
    this.timer = setInterval(() => void this.send(), o.intervalMs);
    this.timer.unref();
  }

  async send(): Promise<void> {
    if (this.sending) return;
    this.o.flush();
    const report: TargetReport = {
      boot: this.boot,
      targets: [...this.o.targets.values()].map((t) => ({ route: t.route, target: t.target, requests: t.requests, successes: t.successes, errors: t.errors, cost: t.costNano.toString() })),
    };
    const body = JSON.stringify(report.targets);
    if (report.targets.length === 0 || body === this.lastSent) return;
    this.sending = true;
    try {
      const status = await this.o.post(TARGET_REPORT_PATH, report);
      if (status === 204) this.lastSent = body;
      else this.o.logger.debug({ status }, 'target report not taken; sent again later');
    } catch (err) {
      this.o.logger.debug({ error: (err as Error).message }, 'could not send the target report; sent again later');
    } finally {
      this.sending = false;
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.send();
  }
}
