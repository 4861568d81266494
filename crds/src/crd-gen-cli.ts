/**
 * `make crds`: writes the generated CRD manifests (crds/*.yaml, and the Helm chart's copy in
 * charts/paygo/crds/) from the zod schemas.
 *
 *   node dist/crds/src/crd-gen-cli.js [--check] [--root DIR]
 *
 * --check writes nothing and exits 1 if a checked-in manifest differs from the generated one.
 * --root is the repository root (default: the current directory).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { renderCrds } from './crd-gen.js';

/** Helm installs CRDs from the chart's crds/ directory: a copy of the generated ones. */
const CHART_CRDS = join('charts', 'paygo', 'crds');

function main(): number {
  const { values } = parseArgs({
    options: { check: { type: 'boolean', default: false }, root: { type: 'string' } },
    strict: true,
  });
  const root = resolve(values.root ?? process.cwd());
  if (!existsSync(join(root, 'crds', 'src'))) {
    process.stderr.write(`crd-gen: ${root} is not the paygo repository root (no crds/src); run from it or pass --root\n`);
    return 2;
  }
  const crds = renderCrds().flatMap((c) => [c, { ...c, file: join(CHART_CRDS, basename(c.file)) }]);
  if (values.check) {
    const stale = crds.filter(({ file, yaml }) => {
      const path = join(root, file);
      return !existsSync(path) || readFileSync(path, 'utf8') !== yaml;
    });
    if (stale.length > 0) {
      process.stderr.write(`crd-gen: stale CRD manifests (run \`make crds\`):\n${stale.map((s) => `  ${s.file}\n`).join('')}`);
      return 1;
    }
    process.stdout.write(`crd-gen: ${crds.length} CRD manifests are up to date\n`);
    return 0;
  }
  for (const { file, yaml } of crds) {
    const path = join(root, file);
    mkdirSync(dirname(path), { recursive: true });
    const changed = !existsSync(path) || readFileSync(path, 'utf8') !== yaml;
    if (changed) writeFileSync(path, yaml);
    process.stdout.write(`crd-gen: ${changed ? 'wrote' : 'unchanged'} ${file}\n`);
  }
  return 0;
}

try {
  process.exitCode = main();
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 2;
}
