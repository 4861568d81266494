import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import { buildSnapshot, parseConfigDocuments, type Snapshot } from '../../crds/src/index.js';

/** Reads a standalone config file (multi-document YAML of ModelRoute, Budget, ProviderQuota, RateLimit and Secret objects) into a snapshot. */
export function loadConfigFile(path: string, env: Record<string, string | undefined>): Snapshot {
  const docs = parseConfigDocuments(readFileSync(path, 'utf8'));
  return buildSnapshot({ routes: docs.routes, budgets: docs.budgets, providerQuotas: docs.providerQuotas, rateLimits: docs.rateLimits, secrets: docs.secrets, env });
}

export interface FileSourceOptions {
  path: string;
  env: Record<string, string | undefined>;
  logger: Logger;
  /**
   * Applies a snapshot, at once or when the returned promise settles (catalog prices may be
   * resolved first); throws or rejects when it cannot be served (the old config then stays).
   */
  apply(snapshot: Snapshot): void | Promise<void>;
  debounceMs?: number;
}

/**
 * Watches the config file: reloads on change (and on reload(), wired to SIGHUP). An invalid
 * file is refused with a log line naming the field, and the running config keeps serving.
 */
export class FileConfigSource {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastVersion: string | undefined;

  constructor(private readonly o: FileSourceOptions) {}

  /** First load: rejects if the file is invalid (nothing to keep serving yet). */
  async start(): Promise<Snapshot> {
    const snapshot = loadConfigFile(this.o.path, this.o.env);
    await this.o.apply(snapshot);
    this.lastVersion = snapshot.version;
    this.logUnresolved(snapshot);
    // Watch the directory: editors replace files by rename, which ends a watch on the file itself.
    this.watcher = watch(dirname(this.o.path), (_event, name) => {
      if (name === null || name === basename(this.o.path)) this.schedule();
    });
    this.watcher.on('error', (err) => this.o.logger.warn({ err: err.message }, 'config watch failed; SIGHUP still reloads'));
    return snapshot;
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.reload('file changed'), this.o.debounceMs ?? 100);
  }

  /** Reloads now; returns false when the file is invalid or unchanged. "config reloaded" is logged once it serves. */
  reload(reason: string): boolean {
    let snapshot: Snapshot;
    let applied: void | Promise<void>;
    const refused = (err: Error) => this.o.logger.error({ reason, path: this.o.path, error: err.message }, 'config refused; still serving the previous config');
    try {
      snapshot = loadConfigFile(this.o.path, this.o.env);
      if (snapshot.version === this.lastVersion) return false;
      applied = this.o.apply(snapshot);
    } catch (err) {
      refused(err as Error);
      return false;
    }
    this.lastVersion = snapshot.version;
    const done = () => {
      this.o.logger.info({ reason, version: snapshot.version, routes: snapshot.routes.length }, 'config reloaded');
      this.logUnresolved(snapshot);
    };
    if (applied) applied.then(done, refused);
    else done();
    return true;
  }

  private logUnresolved(snapshot: Snapshot): void {
    for (const route of snapshot.routes) {
      for (const [target, why] of Object.entries(route.unresolved)) {
        this.o.logger.warn({ route: `${route.namespace}/${route.name}`, target, reason: why }, 'target has no credentials and will be skipped');
      }
    }
  }

  stop(): void {
    clearTimeout(this.timer);
    this.watcher?.close();
  }
}
