import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { ACK_PATH, AckMessageSchema, STREAM_PATH, TARGET_REPORT_PATH, TargetReportSchema, formatIssues, type Snapshot, type TargetReport } from '../crds/src/index.js';
import type { PodIdentity, TokenAuthenticator } from './auth.js';
import { answeringErrors } from './internal-error.js';
import { identifySidecar } from './sidecar-caller.js';

/** One connected sidecar stream. */
export interface SidecarConnection {
  id: string;
  identity: PodIdentity;
  res: ServerResponse;
  /** The snapshot last sent (undefined before the first). */
  sent: Snapshot | undefined;
  /** The sidecar's answer to a snapshot version. */
  ack: { version: string; accepted: boolean; reason?: string } | undefined;
}

export interface RouteSync {
  desired: number;
  synced: number;
  rejected: number;
  /** A NACK reason, when some sidecar rejected the snapshot carrying this route. */
  rejectReason: string | undefined;
}

export interface DistributorOptions {
  authenticator: TokenAuthenticator;
  /** The snapshot for a pod, computed from the cache. */
  snapshotFor(identity: PodIdentity): Snapshot;
  /** Only the leader serves streams: ACKs feed status, which only the leader writes. */
  isLeader(): boolean;
  /** Called when connections or ACKs change what a namespace's status should say. */
  onNamespaceSyncChanged(namespace: string): void;
  /** A sidecar process's per-target totals (POST /v1/targets/report). */
  onTargetReport?(identity: PodIdentity, report: TargetReport): void;
  logger: Logger;
  keepaliveMs?: number;
}

/**
 * Config distribution: each sidecar holds one authenticated SSE stream; it is sent its pod's
 * snapshot on connect and whenever that snapshot changes, and answers each version with an
 * ACK or NACK (POST /v1/ack). Sidecars also report per-target totals (POST /v1/targets/report).
 */
export class Distributor {
  readonly connections = new Map<string, SidecarConnection>();
  private readonly keepalive: NodeJS.Timeout;

  readonly authenticator: TokenAuthenticator;

  constructor(private readonly o: DistributorOptions) {
    this.authenticator = o.authenticator;
    this.keepalive = setInterval(() => {
      for (const c of this.connections.values()) c.res.write(': keepalive\n\n');
    }, o.keepaliveMs ?? 15_000);
    this.keepalive.unref();
  }

  register(app: FastifyInstance): void {
    const log = this.o.logger;
    app.get(STREAM_PATH, (req, reply) => answeringErrors(reply, log, () => this.stream(req, reply)));
    app.post(ACK_PATH, (req, reply) => answeringErrors(reply, log, () => this.ack(req, reply)));
    app.post(TARGET_REPORT_PATH, (req, reply) => answeringErrors(reply, log, () => this.targetReport(req, reply)));
  }

  /** The calling pod and its validated JSON body; undefined once an error answer went out. */
  private async receive<S extends z.ZodType>(req: FastifyRequest, reply: FastifyReply, schema: S, code: string): Promise<{ identity: PodIdentity; body: z.infer<S> } | undefined> {
    const identity = await this.identify(req, reply);
    if (!identity) return undefined;
    const parsed = schema.safeParse(req.body);
    if (!parsed.success) {
      await reply.code(400).send({ error: { message: formatIssues(parsed.error), code } });
      return undefined;
    }
    return { identity, body: parsed.data };
  }

  private async targetReport(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const got = await this.receive(req, reply, TargetReportSchema, 'invalid_report');
    if (!got) return;
    this.o.onTargetReport?.(got.identity, got.body);
    await reply.code(204).send();
  }

  private identify(req: FastifyRequest, reply: FastifyReply): Promise<PodIdentity | undefined> {
    return identifySidecar(req, reply, this.o);
  }

  private async stream(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const identity = await this.identify(req, reply);
    if (!identity) return;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    const conn: SidecarConnection = { id: randomUUID(), identity, res, sent: undefined, ack: undefined };
    this.connections.set(conn.id, conn);
    this.o.logger.info({ pod: `${identity.namespace}/${identity.podName}` }, 'sidecar connected');
    res.on('close', () => {
      this.connections.delete(conn.id);
      this.o.logger.info({ pod: `${identity.namespace}/${identity.podName}` }, 'sidecar disconnected');
      this.o.onNamespaceSyncChanged(identity.namespace);
    });
    this.push(conn);
    this.o.onNamespaceSyncChanged(identity.namespace);
  }

  private async ack(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const got = await this.receive(req, reply, AckMessageSchema, 'invalid_ack');
    if (!got) return;
    const { identity, body: ack } = got;
    let matched = false;
    for (const c of this.connections.values()) {
      if (c.identity.podUid !== identity.podUid || c.sent?.version !== ack.version) continue;
      c.ack = ack;
      matched = true;
    }
    if (!ack.accepted) {
      this.o.logger.warn({ pod: `${identity.namespace}/${identity.podName}`, version: ack.version, reason: ack.reason }, 'sidecar rejected a snapshot');
    }
    if (matched) this.o.onNamespaceSyncChanged(identity.namespace);
    await reply.code(matched ? 204 : 409).send();
  }

  /** Sends a connection its current snapshot if it changed. */
  private push(conn: SidecarConnection): void {
    const snapshot = this.o.snapshotFor(conn.identity);
    if (conn.sent?.version === snapshot.version) return;
    conn.sent = snapshot;
    conn.ack = undefined;
    conn.res.write(`event: snapshot\ndata: ${JSON.stringify({ snapshot })}\n\n`);
  }

  /** Recomputes and pushes the snapshots of every sidecar in a namespace. */
  refresh(namespace: string): void {
    for (const c of this.connections.values()) if (c.identity.namespace === namespace) this.push(c);
  }

  /** How the sidecars that a route reaches stand with it. */
  routeSync(namespace: string, name: string): RouteSync {
    const out: RouteSync = { desired: 0, synced: 0, rejected: 0, rejectReason: undefined };
    for (const c of this.connections.values()) {
      if (c.identity.namespace !== namespace || !c.sent?.routes.some((r) => r.name === name)) continue;
      out.desired++;
      if (c.ack?.version !== c.sent.version) continue;
      if (c.ack.accepted) out.synced++;
      else {
        out.rejected++;
        out.rejectReason ??= `pod ${c.identity.podName}: ${c.ack.reason ?? 'rejected'}`;
      }
    }
    return out;
  }

  /** Closes every stream (sidecars reconnect, e.g. to the new leader). */
  closeAll(): void {
    for (const c of this.connections.values()) c.res.end();
  }

  stop(): void {
    clearInterval(this.keepalive);
    this.closeAll();
  }
}
