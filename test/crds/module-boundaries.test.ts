import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * The operator and the sidecar never import each other: what both need (the API schemas, the
 * sync protocol, money, budget periods) lives in crds/src, which imports neither. This test
 * reads every import of the three trees (static, re-export and dynamic) and fails on a
 * crossing, so a convenient `../sidecar/...` in the operator cannot creep back in.
 */
const ROOT = resolve(import.meta.dirname, '../..');

/** Which module may not be reached from which. */
const FORBIDDEN: Record<string, readonly string[]> = {
  operator: ['sidecar'],
  sidecar: ['operator'],
  crds: ['sidecar', 'operator'],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

/** The top-level directory each relative import of `file` (repository-relative) lands in. */
function importedModules(file: string, text: string): Array<{ specifier: string; module: string }> {
  const { importedFiles } = ts.preProcessFile(text, true, true);
  return importedFiles
    .map((f) => f.fileName)
    .filter((s) => s.startsWith('.'))
    .map((specifier) => ({ specifier, module: relative(ROOT, resolve(ROOT, dirname(file), specifier)).split(sep)[0]! }));
}

function crossings(file: string, text: string): string[] {
  const from = file.split(sep)[0]!;
  const banned = FORBIDDEN[from] ?? [];
  return importedModules(file, text)
    .filter((i) => banned.includes(i.module))
    .map((i) => `${file} imports ${i.specifier}`);
}

describe('module boundaries', () => {
  const files = [...sourceFiles('operator'), ...sourceFiles('sidecar'), ...sourceFiles('crds/src')];

  it('finds the sources and their imports (the scan is not vacuous)', () => {
    expect(files).toContain(join('operator', 'budget-ledger.ts'));
    expect(files).toContain(join('sidecar', 'chat.ts'));
    const ledgerImports = importedModules(join('operator', 'budget-ledger.ts'), readFileSync(join(ROOT, 'operator/budget-ledger.ts'), 'utf8'));
    expect(ledgerImports.map((i) => i.module)).toContain('crds');
  });

  it('operator never imports sidecar, sidecar never imports operator, crds/src imports neither', () => {
    const found = files.flatMap((f) => crossings(f, readFileSync(join(ROOT, f), 'utf8')));
    expect(found).toEqual([]);
  });

  it('catches every import form that crosses', () => {
    const text = [
      "import { formatUsd } from '../sidecar/metering/money.js';",
      "export { x } from '../sidecar/x.js';",
      "import type { T } from '../sidecar/t.js';",
      "const m = await import('../sidecar/lazy.js');",
      "import { ok } from '../crds/src/money.js';",
    ].join('\n');
    expect(crossings(join('operator', 'example.ts'), text)).toEqual([
      'operator/example.ts imports ../sidecar/metering/money.js',
      'operator/example.ts imports ../sidecar/x.js',
      'operator/example.ts imports ../sidecar/t.js',
      'operator/example.ts imports ../sidecar/lazy.js',
    ]);
  });
});
