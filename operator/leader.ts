import type { CoordinationV1Api, V1Lease } from '@kubernetes/client-node';
import type { FastifyReply } from 'fastify';
import type { Logger } from 'pino';

/**
 * What a replica that is not the leader answers sidecars. `connection: close` makes the client
 * open a new connection for its retry, which the Service may route to the leader; a kept-alive
 * one would reach this replica again.
 */
export async function replyNotLeader(reply: FastifyReply): Promise<void> {
  await reply
    .code(503)
    .header('retry-after', '1')
    .header('connection', 'close')
    .send({ error: { message: 'not the leader; retry', code: 'not_leader' } });
}

export interface LeaderOptions {
  api: CoordinationV1Api;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  retryPeriodMs?: number;
  /** How long leadership outlives the last successful renewal (default two thirds of the lease, as client-go). */
  renewDeadlineMs?: number;
  now?: () => Date;
  logger: Logger;
  onChange(leader: boolean): void;
}

/**
 * Lease times are metav1.MicroTime: the API server insists on six fractional digits, and the
 * client passes strings through untouched (a Date would be serialised with three).
 */
function microTime(d: Date): Date {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as unknown as Date;
}

/**
 * Leader election on a coordination.k8s.io/v1 Lease (the client-go algorithm): acquire when the
 * lease is free or expired, renew while held, step down when renewal keeps failing past the
 * renew deadline (shorter than the lease). Updates use resourceVersion, so two candidates never
 * both win; and `isLeader()` itself answers false once the deadline has passed since the time
 * written in the last renewal, so a replica whose renewal hangs is no longer leader by the time
 * the lease expires and another replica may take it.
 */
export class LeaderElector {
  private leader = false;
  private timer: NodeJS.Timeout | undefined;
  private lastRenew = 0;
  private stopped = false;
  /** The tick running now, if any (stop waits for it, so the release is the last write). */
  private inflight: Promise<void> | undefined;
  private readonly duration: number;
  private readonly period: number;
  private readonly deadline: number;
  private readonly now: () => Date;

  constructor(private readonly o: LeaderOptions) {
    this.duration = o.leaseDurationMs ?? 15_000;
    this.period = o.retryPeriodMs ?? 2_000;
    this.deadline = Math.min(o.renewDeadlineMs ?? Math.floor((this.duration * 2) / 3), this.duration);
    this.now = o.now ?? (() => new Date());
  }

  isLeader(): boolean {
    if (this.leader && !this.fresh()) this.setLeader(false);
    return this.leader;
  }

  /** Is the last renewal recent enough to act as leader? */
  private fresh(): boolean {
    return this.now().getTime() - this.lastRenew < this.deadline;
  }

  start(): void {
    this.inflight = this.tick();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.inflight = this.tick();
    }, this.period);
  }

  private setLeader(leader: boolean): void {
    if (leader === this.leader) return;
    this.leader = leader;
    this.o.logger.info({ identity: this.o.identity, lease: `${this.o.namespace}/${this.o.name}` }, leader ? 'became leader' : 'lost leadership');
    this.o.onChange(leader);
  }

  private async tick(): Promise<void> {
    // The lease says it was renewed at the time taken before the request: count from there.
    const started = this.now().getTime();
    try {
      const ok = await this.tryAcquireOrRenew(new Date(started));
      // Stopped meanwhile: stop() already stepped down and releases the lease.
      if (this.stopped) return;
      if (ok) this.lastRenew = started;
      this.setLeader((ok || this.leader) && this.fresh());
    } catch (err) {
      if (this.stopped) return;
      this.o.logger.warn({ error: (err as Error).message }, 'lease update failed');
      if (this.leader && !this.fresh()) this.setLeader(false);
    }
    this.schedule();
  }

  private async tryAcquireOrRenew(now: Date): Promise<boolean> {
    const { api, namespace, name, identity } = this.o;
    let lease: V1Lease;
    try {
      lease = await api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
      try {
        await api.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace },
            spec: { holderIdentity: identity, leaseDurationSeconds: Math.ceil(this.duration / 1000), acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
          },
        });
        return true;
      } catch (e) {
        if ((e as { code?: number }).code === 409) return false;
        throw e;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const expired = renewed + (spec.leaseDurationSeconds ?? 0) * 1000 < now.getTime();
    if (holder !== identity && holder !== '' && !expired) return false;
    const taking = holder !== identity;
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(this.duration / 1000),
      renewTime: microTime(now),
      ...(spec.acquireTime ? { acquireTime: microTime(new Date(spec.acquireTime)) } : {}),
      ...(taking ? { acquireTime: microTime(now), leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
    };
    try {
      await api.replaceNamespacedLease({ name, namespace, body: lease });
      return true;
    } catch (err) {
      if ((err as { code?: number }).code === 409) return false;
      throw err;
    }
  }

  /** Stops campaigning and releases the lease if held, so a successor takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.setLeader(false);
    // A tick in flight may still acquire or renew the lease: release after it (waiting at
    // most 5 s for an API server that does not answer; the lease then expires on its own).
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([this.inflight, new Promise<void>((r) => (timeout = setTimeout(r, 5000)))]);
    clearTimeout(timeout);
    try {
      const lease = await this.o.api.readNamespacedLease({ name: this.o.name, namespace: this.o.namespace });
      if (lease.spec?.holderIdentity === this.o.identity) {
        lease.spec.holderIdentity = '';
        await this.o.api.replaceNamespacedLease({ name: this.o.name, namespace: this.o.namespace, body: lease });
      }
    } catch {
      /* the lease expires on its own */
    }
  }
}
