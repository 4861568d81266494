import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfigDocuments } from '../../crds/src/index.js';

/** Every example a user applies must be valid against the same schema the cluster uses. */
describe('examples/', () => {
  const dir = join(import.meta.dirname, '../../examples');
  it.each(readdirSync(dir).filter((f) => f.endsWith('.yaml')))('%s is valid', (file) => {
    const docs = parseConfigDocuments(readFileSync(join(dir, file), 'utf8'));
    expect(docs.routes.length + docs.budgets.length).toBeGreaterThan(0);
  });
});
