import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Agent } from 'undici';
import { formatIssues } from '../../crds/src/meta.js';
import { ACK_PATH, STREAM_PATH, SnapshotMessageSchema } from '../../crds/src/protocol.js';
import { SnapshotSchema, type Snapshot } from '../../crds/src/snapshot.js';
import { SseParser } from '../sse.js';

export interface OperatorSourceOptions {
  /** https://operator:8443 */
  url: string;
  /** The pod's projected ServiceAccount token (audience paygo); re-read on every connect as it rotates. */
  tokenFile: string;
  /** CA bundle that signed the operator's serving certificate: a file, or the PEM itself. */
  caFile: string | undefined;
  caPem?: string | undefined;
  /** Where the last good snapshot is kept, so the sidecar serves when the operator is away. */
  stateDir: string;
  logger: Logger;
  /** Applies a snapshot; throws (with a reason) when it cannot be served. */
  /** Applies a snapshot; a promise when it completes later (settles once the config is live). */
  apply(snapshot: Snapshot, source: 'operator' | 'disk'): void | Promise<void>;
  random?: () => number;
  maxBackoffMs?: number;
  /** The longest wait between ACK retries (2 s); they start at 200 ms (or this, if less) and double. */
  ackMaxDelayMs?: number;
}

const SNAPSHOT_FILE = 'snapshot.json';
/** An ACK is retried while its snapshot is the stream's latest, at most this often (≈ 2 min). */
const ACK_ATTEMPTS = 60;

/**
 * How long to wait before the next connect. Failures back off exponentially with jitter (up to
 * `maxBackoffMs`, 30 s). A 503 not_leader is not a failure: the operator is up, the Service just
 * sent this connection to a standby replica (which closes it), so the next connection is tried
 * after the standby's Retry-After (jittered, at most 2 s) without growing the backoff — else a
 * sidecar that was refused a few times while the operator restarted waits up to 30 s per try,
 * half of which land on the standby again.
 */
export function reconnectDelayMs(o: { attempt: number; retryAfterMs: number; notLeader: boolean; random: () => number; maxBackoffMs?: number | undefined }): number {
  if (o.notLeader) {
    const base = Math.min(2_000, Math.max(200, o.retryAfterMs || 1_000));
    return Math.floor(base / 2 + o.random() * (base / 2));
  }
  const cap = Math.min(o.maxBackoffMs ?? 30_000, 500 * 2 ** Math.min(o.attempt, 10));
  return Math.max(o.retryAfterMs, Math.floor(cap / 2 + o.random() * (cap / 2)));
}

function errorCode(body: string): unknown {
  try {
    return (JSON.parse(body) as { error?: { code?: unknown } }).error?.code;
  } catch {
    return undefined;
  }
}

/**
 * Operator mode: one long-lived authenticated SSE stream to the operator. Each snapshot is
 * validated, applied atomically and ACKed (or NACKed with the reason, keeping the previous
 * one); the last good snapshot is persisted and served at start when the operator is away.
 * Reconnects with exponential backoff and jitter.
 */
export class OperatorConfigSource {
  private readonly agent: Agent;
  private abort: AbortController | undefined;
  private stopped = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Counts streams and snapshots: an ACK stops retrying once either moved on. */
  private streamSeq = 0;
  private snapshotSeq = 0;
  connected = false;

  constructor(private readonly o: OperatorSourceOptions) {
    this.agent = new Agent({
      connect: o.caPem ? { ca: o.caPem } : o.caFile ? { ca: readFileSync(o.caFile, 'utf8') } : {},
      bodyTimeout: 45_000, // the operator sends a keepalive every 15 s
      headersTimeout: 15_000,
    });
  }

  /** Loads the persisted snapshot (if any) and starts streaming. Returns whether one was loaded. */
  start(): boolean {
    const loaded = this.loadFromDisk();
    void this.connect();
    return loaded;
  }

  private loadFromDisk(): boolean {
    let text: string;
    try {
      text = readFileSync(join(this.o.stateDir, SNAPSHOT_FILE), 'utf8');
    } catch {
      return false;
    }
    try {
      const snapshot = SnapshotSchema.parse(JSON.parse(text));
      const applied = this.o.apply(snapshot, 'disk');
      if (applied) applied.catch((err: Error) => this.o.logger.warn({ error: err.message }, 'ignoring an unusable persisted snapshot'));
      this.o.logger.info({ version: snapshot.version }, 'serving the last good snapshot from disk until the operator answers');
      return true;
    } catch (err) {
      this.o.logger.warn({ error: (err as Error).message }, 'ignoring an unreadable persisted snapshot');
      return false;
    }
  }

  private persist(snapshot: Snapshot): void {
    mkdirSync(this.o.stateDir, { recursive: true, mode: 0o700 });
    const tmp = join(this.o.stateDir, `${SNAPSHOT_FILE}.tmp`);
    writeFileSync(tmp, JSON.stringify(snapshot), { mode: 0o600 });
    renameSync(tmp, join(this.o.stateDir, SNAPSHOT_FILE));
  }

  private token(): string {
    return readFileSync(this.o.tokenFile, 'utf8').trim();
  }

  private scheduleReconnect(retryAfterMs: number, notLeader: boolean): void {
    if (this.stopped) return;
    const delay = reconnectDelayMs({ attempt: this.attempt, retryAfterMs, notLeader, random: this.o.random ?? Math.random, maxBackoffMs: this.o.maxBackoffMs });
    if (!notLeader) this.attempt++;
    this.timer = setTimeout(() => void this.connect(), delay);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.abort = new AbortController();
    let retryAfterMs = 0;
    let notLeader = false;
    try {
      const res = await this.agent.request({
        origin: new URL(this.o.url).origin,
        path: STREAM_PATH,
        method: 'GET',
        headers: { authorization: `Bearer ${this.token()}`, accept: 'text/event-stream' },
        signal: this.abort.signal,
      });
      if (res.statusCode !== 200) {
        const body = await res.body.text().catch(() => '');
        retryAfterMs = Number(res.headers['retry-after'] ?? 0) * 1000 || 0;
        notLeader = res.statusCode === 503 && errorCode(body) === 'not_leader';
        throw new Error(`operator answered ${res.statusCode}: ${body.slice(0, 300)}`);
      }
      this.connected = true;
      this.streamSeq++;
      this.o.logger.info({ operator: this.o.url }, 'connected to the operator');
      const parser = new SseParser();
      for await (const chunk of res.body) {
        for (const ev of parser.push(chunk as Uint8Array)) {
          if (ev.event === 'snapshot') await this.onSnapshot(ev.data);
        }
      }
      throw new Error('operator closed the stream');
    } catch (err) {
      this.connected = false;
      this.streamSeq++;
      if (this.stopped) return;
      this.o.logger.warn({ operator: this.o.url, error: (err as Error).message }, 'operator stream lost; reconnecting with backoff');
      this.scheduleReconnect(retryAfterMs, notLeader);
    }
  }

  private async onSnapshot(data: string): Promise<void> {
    this.snapshotSeq++;
    let version = 'unknown';
    let snapshot: Snapshot;
    try {
      const raw = JSON.parse(data) as { snapshot?: { version?: unknown } };
      if (typeof raw?.snapshot?.version === 'string') version = raw.snapshot.version;
      const parsed = SnapshotMessageSchema.safeParse(raw);
      if (!parsed.success) throw new Error(`invalid snapshot: ${formatIssues(parsed.error)}`);
      snapshot = parsed.data.snapshot;
      await this.o.apply(snapshot, 'operator');
    } catch (err) {
      const reason = (err as Error).message;
      this.o.logger.error({ version, reason }, 'snapshot rejected; still serving the previous config');
      this.ack({ version, accepted: false, reason });
      return;
    }
    this.attempt = 0;
    try {
      this.persist(snapshot);
    } catch (err) {
      this.o.logger.warn({ error: (err as Error).message }, 'could not persist the snapshot');
    }
    this.o.logger.info({ version: snapshot.version, routes: snapshot.routes.map((r) => r.name) }, 'snapshot applied');
    this.ack({ version: snapshot.version, accepted: true });
  }

  /**
   * ACKs in the background (the stream goes on to the next snapshot) until one is taken, while
   * this snapshot is still the stream's latest and the stream is up. Each ACK is a new request
   * that the Service sends to either replica; the standby answers 503 and closes the
   * connection, so every retry has an even chance to reach the leader — a fixed few attempts
   * would leave a route at Syncing now and then (1 in 32 with 5). Bounded by ACK_ATTEMPTS.
   */
  private ack(body: { version: string; accepted: boolean; reason?: string }): void {
    void this.ackUntilTaken(body, this.streamSeq, this.snapshotSeq);
  }

  private async ackUntilTaken(body: { version: string; accepted: boolean; reason?: string }, stream: number, snapshot: number): Promise<void> {
    const current = () => !this.stopped && this.streamSeq === stream && this.snapshotSeq === snapshot;
    const maxDelay = this.o.ackMaxDelayMs ?? 2_000;
    let why = '';
    for (let attempt = 0; attempt < ACK_ATTEMPTS; attempt++) {
      if (attempt > 0) {
        await new Promise((r) => setTimeout(r, Math.min(maxDelay, 200 * 2 ** (attempt - 1))).unref());
        if (!current()) return; // superseded: the newer snapshot's ACK, or the next stream's, says it
      }
      try {
        const status = await this.post(ACK_PATH, body);
        if (status < 300 || !current()) return; // taken, or a 409 for a version no longer sent
        why = `operator answered ${status}`;
        if (status < 500) break; // refused for good (e.g. 401): retrying cannot help
      } catch (err) {
        why = (err as Error).message;
      }
    }
    this.o.logger.warn({ version: body.version, error: why }, 'could not send the ACK');
  }

  /** POSTs JSON to the operator with the pod's token. */
  private postRaw(path: string, body: unknown): ReturnType<Agent['request']> {
    return this.agent.request({
      origin: new URL(this.o.url).origin,
      path,
      method: 'POST',
      headers: { authorization: `Bearer ${this.token()}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  }

  /** POSTs JSON to the operator with the pod's token; resolves with the HTTP status. */
  async post(path: string, body: unknown): Promise<number> {
    const res = await this.postRaw(path, body);
    await res.body.dump();
    return res.statusCode;
  }

  /** POSTs JSON to the operator with the pod's token; resolves with the HTTP status and the JSON answer (undefined when none). */
  async postJson(path: string, body: unknown): Promise<{ status: number; json: unknown }> {
    const res = await this.postRaw(path, body);
    const text = await res.body.text();
    let json: unknown;
    try {
      json = text ? (JSON.parse(text) as unknown) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.statusCode, json };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.abort?.abort();
    await this.agent.close().catch(() => {});
  }
}
