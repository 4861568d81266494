import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { awaitsCatalogPrice, resolveCatalogPrice, type CatalogPrice } from '../../crds/src/catalog.js';
import { targetName, type ProviderName } from '../../crds/src/modelroute.js';
import type { Snapshot } from '../../crds/src/snapshot.js';

/**
 * Catalog prices resolved in a short-lived child process (this file, run with RESOLVE_FLAG): it
 * loads the price catalog, answers for the targets asked on stdout, and exits, so the catalog's
 * code and data (≈ 10 MB of RSS) never enter the sidecar. A worker thread was measured too: it
 * leaves ≈ 6 MB behind (its malloc arena and code), a child process nothing. The operator
 * resolves prices itself (operator/catalog-prices.ts); this serves file mode and whatever a
 * snapshot left to the sidecar.
 */
type Ask = Array<{ provider: ProviderName; model: string }>;
type Answer = Array<CatalogPrice | null | undefined>;

const RESOLVE_FLAG = '--resolve-catalog-prices';

function resolveInChild(asks: Ask): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [fileURLToPath(import.meta.url), RESOLVE_FLAG], { maxBuffer: 64 * 1024 * 1024, timeout: 30_000 }, (err, stdout) => {
      if (err) return reject(err);
      try {
        resolve((JSON.parse(stdout) as Array<CatalogPrice | null | 0>).map((p) => (p === 0 ? undefined : p)));
      } catch (e) {
        reject(e as Error);
      }
    });
    // A child that dies early closes its stdin (EPIPE): the callback above reports the failure.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(JSON.stringify(asks));
  });
}

/**
 * The snapshot with catalog prices for every target that needs them and does not carry them;
 * targets whose catalog prices depend on time stay without (the caller loads the catalog for those).
 */
export async function withCatalogPrices(snapshot: Snapshot): Promise<Snapshot> {
  const asks: Ask = [];
  const slots: Array<{ route: number; target: string }> = [];
  snapshot.routes.forEach((r, ri) =>
    r.spec.targets.forEach((t, i) => {
      const name = targetName(t, i);
      if (!awaitsCatalogPrice(t, name, r.catalogPrices)) return;
      asks.push({ provider: t.provider, model: t.model });
      slots.push({ route: ri, target: name });
    }),
  );
  if (asks.length === 0) return snapshot;
  const answer = await resolveInChild(asks);
  const routes = snapshot.routes.map((r) => ({ ...r, catalogPrices: { ...r.catalogPrices } }));
  slots.forEach((slot, k) => {
    const price = answer[k];
    if (price !== undefined) routes[slot.route]!.catalogPrices[slot.target] = price;
  });
  return { ...snapshot, routes };
}

if (process.argv[2] === RESOLVE_FLAG) {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const asks = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Ask;
  const { calcPrice } = await import('@pydantic/genai-prices');
  // JSON has no undefined: 0 stands for it
  const answer: Answer = asks.map((a) => resolveCatalogPrice(calcPrice, a.provider, a.model));
  process.stdout.write(JSON.stringify(answer.map((p) => (p === undefined ? 0 : p))));
}
