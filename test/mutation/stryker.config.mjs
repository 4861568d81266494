// StrykerJS over the logic that decides routing, money and budgets (make mutation; not in CI:
// it runs the unit tier once per mutant). Incremental: a re-run tests only mutants whose code
// or tests changed since the last one (.paygo/mutation/incremental.json).
// MUTATE=path,path narrows a run (e.g. MUTATE=sidecar/budget/*.ts make mutation).
// MUTATION_DIR keeps a run's incremental file, reports and sandbox apart (two runs at once).
const dir = process.env.MUTATION_DIR ?? '.paygo/mutation';
const modules = process.env.MUTATE
  ? process.env.MUTATE.split(',')
  : [
      'sidecar/router/*.ts',
      'sidecar/metering/*.ts',
      'sidecar/budget/*.ts',
      'sidecar/chat.ts',
      'operator/budget-ledger.ts',
      'operator/budgets.ts',
      'operator/route-status.ts',
      'operator/distribution.ts',
      'operator/leader.ts',
      'operator/snapshots.ts',
      'operator/queue.ts',
      'operator/conditions.ts',
      'operator/target-totals.ts',
      'operator/auth.ts',
    ];

export default {
  testRunner: 'vitest',
  vitest: { configFile: 'test/mutation/vitest.config.ts' },
  mutate: [...modules, '!sidecar/metering/catalog-process.ts'],
  coverageAnalysis: 'perTest',
  incremental: true,
  incrementalFile: `${dir}/incremental.json`,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: `${dir}/report.html` },
  jsonReporter: { fileName: `${dir}/report.json` },
  tempDirName: `${dir}/tmp`,
  // Other runs' sandboxes and reports live under .paygo: never copy them into this one's.
  ignorePatterns: ['/.paygo'],
  concurrency: Number(process.env.MUTATION_CONCURRENCY ?? 2),
  timeoutMS: 20_000,
  thresholds: { high: 90, low: 80, break: null },
};
