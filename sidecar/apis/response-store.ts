import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StoredItem, StoredResponse } from './responses-types.js';

/**
 * The responses the sidecar issued, for the Responses API's state: GET /v1/responses/:id,
 * `previous_response_id` and `item_reference`. An app talks only to its own sidecar, so whatever
 * provider served a response, its id resolves here.
 *
 * Bounded by count and by bytes (approximate: the entry's JSON length), least recently used
 * evicted first; each entry lives `ttlMs` from when it was stored (reads do not extend it, as
 * OpenAI's retention counts from creation). With `dir`, every entry is also written to
 * `<dir>/responses/<id>.json` (mode 0600, tmp + rename, off the request path) and read back at
 * construction, so ids survive a restart; evicted, expired and deleted entries lose their file.
 * Entries hold prompt text: nothing here logs content, and persistence errors reach
 * `onPersistError` with the file operation only.
 */
export interface ResponseStoreOptions {
  maxEntries: number;
  maxBytes: number;
  ttlMs: number;
  /** Milliseconds since the epoch; injected for tests. */
  now?: () => number;
  /** A directory to persist entries in (`<dir>/responses/`); memory only without it. */
  dir?: string;
  /** A write, delete or read-back failed (never thrown into requests). */
  onPersistError?: (err: Error, operation: 'write' | 'delete' | 'load') => void;
}

interface Entry {
  value: StoredResponse;
  bytes: number;
  expiresAt: number;
  /** Item id → item, for item_reference. */
  items: Map<string, StoredItem>;
}

/** Ids we issue (resp_ + hex); only these name files, so a client's id can never name a path. */
const FILE_ID = /^resp_[0-9a-f]{1,128}$/;
const FILE_VERSION = 1;
/** How long file writes and deletes wait to be started together (ResponseStore.later). */
const PERSIST_DELAY_MS = 200;

export class ResponseStore {
  /** Least recently used first (Map order). */
  private readonly entries = new Map<string, Entry>();
  /** Insertion order, never reordered: with one TTL for all, the first entry expires first. */
  private readonly byAge = new Map<string, Entry>();
  /** Item id → the response whose entry holds it. */
  private readonly itemOwners = new Map<string, string>();
  private bytes = 0;
  private readonly now: () => number;
  private readonly fileDir: string | undefined;
  /** Per response id, the last file operation queued (operations on one file run in order). */
  private readonly fileOps = new Map<string, Promise<void>>();
  /** Ids whose file may exist (loaded, or a write queued): only these need a delete. */
  private readonly onDisk = new Set<string>();
  /** Per response id, the file operation asked for since the last flush (the last one wins). */
  private readonly unflushed = new Map<string, { operation: 'write' | 'delete'; run: () => Promise<void> }>();
  private flushTimer: NodeJS.Timeout | undefined;
  private tmpCounter = 0;

  constructor(private readonly o: ResponseStoreOptions) {
    this.now = o.now ?? Date.now;
    this.fileDir = o.dir === undefined ? undefined : join(o.dir, 'responses');
    if (this.fileDir !== undefined) this.load(this.fileDir);
  }

  /** Entries held. */
  get size(): number {
    return this.entries.size;
  }

  /** Approximate bytes held (JSON length of the entries). */
  get heldBytes(): number {
    return this.bytes;
  }

  get(id: string): StoredResponse | undefined {
    return this.touch(id)?.value;
  }

  /** An input item the client gave with this id, or an output item of a stored response. */
  item(id: string): StoredItem | undefined {
    const owner = this.itemOwners.get(id);
    return owner === undefined ? undefined : this.touch(owner)?.items.get(id);
  }

  /**
   * Stores a response under its id (replacing an entry with that id). Returns false when the
   * entry alone exceeds maxBytes: it is not kept, as a cache would not keep it.
   */
  put(value: StoredResponse): boolean {
    const id = value.response.id;
    const json = JSON.stringify(value);
    const expiresAt = this.now() + this.o.ttlMs;
    this.dropExpired();
    if (!this.insert(id, value, json.length, expiresAt)) {
      this.remove(id);
      return false;
    }
    this.persist(id, `{"version":${FILE_VERSION},"expires_at":${expiresAt},"entry":${json}}`);
    return true;
  }

  /** Removes a response (and its file). Returns whether it was held. */
  delete(id: string): boolean {
    const held = this.touch(id) !== undefined;
    this.remove(id);
    return held;
  }

  /** Starts the file writes and deletes not started yet, and waits for all of them. */
  async close(): Promise<void> {
    this.flush();
    while (this.fileOps.size > 0) await Promise.all([...this.fileOps.values()]);
  }

  /** The entry, made most recently used; an expired one is removed. */
  private touch(id: string): Entry | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    if (e.expiresAt <= this.now()) {
      this.remove(id);
      return undefined;
    }
    this.entries.delete(id);
    this.entries.set(id, e);
    return e;
  }

  /** Adds an entry and evicts down to the limits; false when it alone is over maxBytes. */
  private insert(id: string, value: StoredResponse, bytes: number, expiresAt: number): boolean {
    if (bytes > this.o.maxBytes || this.o.maxEntries < 1) return false;
    this.forget(id);
    const items = new Map<string, StoredItem>();
    for (const item of value.inputItems) if (typeof item.id === 'string') items.set(item.id, item);
    for (const item of value.response.output) items.set(item.id, item);
    const e: Entry = { value, bytes, expiresAt, items };
    this.entries.set(id, e);
    this.byAge.set(id, e);
    this.bytes += bytes;
    for (const itemId of items.keys()) this.itemOwners.set(itemId, id);
    for (const [oldest] of this.entries) {
      if (this.entries.size <= this.o.maxEntries && this.bytes <= this.o.maxBytes) break;
      this.remove(oldest);
    }
    return true;
  }

  private dropExpired(): void {
    const now = this.now();
    for (const [id, e] of this.byAge) {
      if (e.expiresAt > now) break;
      this.remove(id);
    }
  }

  /** Removes an entry from memory and deletes its file. */
  private remove(id: string): void {
    this.forget(id);
    this.unpersist(id);
  }

  /** Removes an entry from memory only. */
  private forget(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.entries.delete(id);
    this.byAge.delete(id);
    this.bytes -= e.bytes;
    // An item id given again in a later request points to that later response: leave it.
    for (const itemId of e.items.keys()) if (this.itemOwners.get(itemId) === id) this.itemOwners.delete(itemId);
  }

  private file(id: string): string | undefined {
    return this.fileDir !== undefined && FILE_ID.test(id) ? join(this.fileDir, `${id}.json`) : undefined;
  }

  /** Queues a file operation after the earlier ones on the same id; failures go to onPersistError. */
  private queue(id: string, operation: 'write' | 'delete', run: () => Promise<void>): void {
    const before = this.fileOps.get(id) ?? Promise.resolve();
    const op = before
      .then(run)
      .catch((err: unknown) => {
        try {
          this.o.onPersistError?.(err instanceof Error ? err : new Error(String(err)), operation);
        } catch {
          // A failing logger must not turn into an unhandled rejection.
        }
      })
      .finally(() => {
        if (this.fileOps.get(id) === op) this.fileOps.delete(id);
      });
    this.fileOps.set(id, op);
  }

  private persist(id: string, text: string): void {
    const file = this.file(id);
    if (file === undefined) return;
    const tmp = `${file}.${process.pid}.${++this.tmpCounter}.tmp`;
    this.onDisk.add(id);
    this.later(id, 'write', async () => {
      try {
        await writeFile(tmp, text, { mode: 0o600 });
        await rename(tmp, file);
      } catch (err) {
        await rm(tmp, { force: true }).catch(() => undefined);
        throw err;
      }
    });
  }

  private unpersist(id: string): void {
    const file = this.file(id);
    if (file === undefined || !this.onDisk.delete(id)) return;
    this.later(id, 'delete', () => rm(file, { force: true }));
  }

  /**
   * A file operation, started with the others at the next flush (PERSIST_DELAY_MS), not at once:
   * its file system calls and their callbacks then came in the middle of the next request, and
   * a stream's first byte after a model's pause paid for them. A write a delete replaces before
   * the flush is never made. A crash loses what was not flushed yet.
   */
  private later(id: string, operation: 'write' | 'delete', run: () => Promise<void>): void {
    this.unflushed.set(id, { operation, run });
    this.flushTimer ??= setTimeout(() => this.flush(), PERSIST_DELAY_MS).unref();
  }

  private flush(): void {
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    for (const [id, { operation, run }] of this.unflushed) this.queue(id, operation, run);
    this.unflushed.clear();
  }

  /** Reads the persisted entries back: expired and unreadable files are deleted, the rest inserted oldest first. */
  private load(fileDir: string): void {
    let names: string[];
    try {
      mkdirSync(fileDir, { recursive: true, mode: 0o700 });
      names = readdirSync(fileDir);
    } catch (err) {
      this.o.onPersistError?.(err as Error, 'load');
      return;
    }
    const now = this.now();
    const found: Array<{ id: string; value: StoredResponse; bytes: number; expiresAt: number }> = [];
    for (const name of names) {
      const path = join(fileDir, name);
      if (name.endsWith('.tmp')) {
        rmSync(path, { force: true }); // a write cut short by a crash
        continue;
      }
      const id = name.endsWith('.json') ? name.slice(0, -5) : '';
      if (!FILE_ID.test(id)) continue;
      try {
        const parsed = JSON.parse(readFileSync(path, 'utf8')) as { version?: unknown; expires_at?: unknown; entry?: StoredResponse };
        const entry = parsed.entry;
        if (parsed.version !== FILE_VERSION || typeof parsed.expires_at !== 'number' || entry?.response?.id !== id || !Array.isArray(entry.conversation) || !Array.isArray(entry.inputItems) || !Array.isArray(entry.response.output)) {
          throw new Error(`${name}: not a stored response`);
        }
        if (parsed.expires_at <= now) {
          rmSync(path, { force: true });
          continue;
        }
        found.push({ id, value: entry, bytes: JSON.stringify(entry).length, expiresAt: parsed.expires_at });
      } catch (err) {
        this.o.onPersistError?.(err instanceof SyntaxError ? new Error(`${name}: unreadable JSON`) : (err as Error), 'load');
        rmSync(path, { force: true });
      }
    }
    // Oldest first: the LRU and age orders then match the order they were stored in.
    found.sort((a, b) => a.expiresAt - b.expiresAt);
    for (const f of found) this.onDisk.add(f.id);
    for (const f of found) if (!this.insert(f.id, f.value, f.bytes, f.expiresAt)) this.remove(f.id);
  }
}
