// Prints the failed tests of vitest JSON reports, briefly (ANSI codes stripped, each message
// cut), so that the last lines of a failed `make test` say what failed and why.
import { existsSync, readFileSync } from 'node:fs';

const MAX_MESSAGE = 1200;
const strip = (s) => s.replace(/\u001b\[[0-9;]*m/g, '');
// The message and the project's own stack frames; the test runner's frames say nothing.
const brief = (s) =>
  strip(s)
    .split('\n')
    .filter((l) => !/^\s+at .*(node_modules|node:internal|<anonymous>)/.test(l))
    .join('\n')
    .slice(0, MAX_MESSAGE);
const relative = (f) => f.replace(process.cwd() + '/', '');
for (const file of process.argv.slice(2)) {
  if (!existsSync(file)) continue;
  const report = JSON.parse(readFileSync(file, 'utf8'));
  for (const suite of report.testResults ?? []) {
    const failed = (suite.assertionResults ?? []).filter((a) => a.status === 'failed');
    if (failed.length === 0 && suite.status === 'failed') console.log(`FAILED ${relative(suite.name)}: ${brief(suite.message ?? '')}`);
    for (const a of failed) console.log(`FAILED ${relative(suite.name)} > ${a.fullName}\n  ${brief((a.failureMessages ?? []).join('\n')).replace(/\n/g, '\n  ')}`);
  }
}
