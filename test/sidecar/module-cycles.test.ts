import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * Imports inside the sidecar go one way: the router imports the adapters, the adapters import
 * their own types and errors (providers/errors.ts), usage.ts and providers/wire.ts both read JSON
 * through json-values.ts. This test reads every import of sidecar/**\/*.ts (static, type-only,
 * re-export and dynamic) and fails on any cycle, naming its files in import order.
 */
const ROOT = resolve(import.meta.dirname, '../..');

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)).split(sep).join('/'));
}

/** The repository-relative .ts files `file` imports (relative specifiers only). */
function imports(file: string, text: string): string[] {
  const { importedFiles } = ts.preProcessFile(text, true, true);
  return importedFiles
    .map((f) => f.fileName)
    .filter((s) => s.startsWith('.'))
    .map((s) => relative(ROOT, resolve(ROOT, dirname(file), s)).split(sep).join('/').replace(/\.js$/, '.ts'));
}

/** Every import cycle of the graph, each once, as `a → b → … → a` starting at its smallest file. */
function cycles(graph: ReadonlyMap<string, readonly string[]>): string[] {
  const found = new Set<string>();
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    path.push(file);
    for (const next of graph.get(file) ?? []) {
      if (!graph.has(next)) continue;
      if (state.get(next) === 'open') {
        const loop = path.slice(path.indexOf(next));
        const first = loop.indexOf([...loop].sort()[0]!);
        const rotated = [...loop.slice(first), ...loop.slice(0, first)];
        found.add([...rotated, rotated[0]].join(' → '));
      } else if (state.get(next) === undefined) visit(next);
    }
    path.pop();
    state.set(file, 'done');
  };
  for (const file of [...graph.keys()].sort()) if (!state.has(file)) visit(file);
  return [...found].sort();
}

describe('sidecar import cycles', () => {
  const files = sourceFiles('sidecar');
  const graph = new Map(files.map((f) => [f, imports(f, readFileSync(join(ROOT, f), 'utf8'))]));

  it('reads the sources and their imports (the scan is not vacuous)', () => {
    expect(files).toContain('sidecar/router/dispatch.ts');
    expect(graph.get('sidecar/router/dispatch.ts')).toContain('sidecar/providers/errors.ts');
    expect(graph.get('sidecar/providers/index.ts')).toContain('sidecar/providers/openai.ts');
  });

  it('has no import cycle', () => {
    expect(cycles(graph)).toEqual([]);
  });

  it('names each cycle it finds, type-only and re-export imports included', () => {
    const text = (lines: string[]) => lines.join('\n');
    const fake = new Map([
      ['sidecar/a.ts', imports('sidecar/a.ts', text(["import type { B } from './b.js';"]))],
      ['sidecar/b.ts', imports('sidecar/b.ts', text(["export { c } from './c.js';"]))],
      ['sidecar/c.ts', imports('sidecar/c.ts', text(["const a = await import('./a.js');"]))],
      ['sidecar/d.ts', imports('sidecar/d.ts', text(["import { e } from './e.js';"]))],
      ['sidecar/e.ts', imports('sidecar/e.ts', text(["import { d } from './d.js';", "import { a } from './a.js';"]))],
    ]);
    expect(cycles(fake)).toEqual(['sidecar/a.ts → sidecar/b.ts → sidecar/c.ts → sidecar/a.ts', 'sidecar/d.ts → sidecar/e.ts → sidecar/d.ts']);
  });
});
