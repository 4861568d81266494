import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

// Every write of the state file is counted (the real file system does the work).
const fsCalls = vi.hoisted(() => ({ writes: [] as string[] }));
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  return {
    ...fs,
    renameSync: (from: string, to: string) => {
      fsCalls.writes.push(fs.readFileSync(from, 'utf8'));
      fs.renameSync(from, to);
    },
  };
});

const { LocalFunds } = await import('../../../sidecar/budget/local-funds.js');

/**
 * Standalone budgets (README: "spend is persisted to a JSON file, atomically and debounced, so a
 * restart in the same period continues where it stopped"). Timers are faked: no wall-clock waits.
 */
function fakeLogger() {
  const warns: Array<[unknown, string]> = [];
  const logger = { warn: (obj: unknown, msg: string) => void warns.push([obj, msg]) } as unknown as Logger;
  return { logger, warns };
}

let dir: string;
beforeEach(() => {
  vi.useFakeTimers();
  fsCalls.writes = [];
  dir = mkdtempSync(join(tmpdir(), 'paygo-local-funds-'));
});
afterEach(() => {
  vi.useRealTimers();
});

const K = 'ns/b@2026-12-01T00:00:00.000Z';

describe('LocalFunds', () => {
  it('reserves up to the limit exactly, refuses beyond it as exhausted, and counts reservations in view', async () => {
    const { logger } = fakeLogger();
    const f = new LocalFunds(join(dir, 'budgets.json'), logger);
    expect(f.view(K)).toEqual({ spent: 0n, reserved: 0n }); // unknown key: nothing spent or reserved
    expect(await f.reserve(K, 1_000n, 600n)).toBe('reserved');
    expect(f.view(K)).toEqual({ spent: 0n, reserved: 600n });
    expect(await f.reserve(K, 1_000n, 401n)).toBe('exhausted');
    expect(f.view(K)).toEqual({ spent: 0n, reserved: 600n }); // a refusal reserves nothing
    expect(await f.reserve(K, 1_000n, 400n)).toBe('reserved'); // exactly the limit fits
    f.settle(K, 600n, 100n);
    expect(f.view(K)).toEqual({ spent: 100n, reserved: 400n });
    f.record(K, 50n);
    expect(f.view(K)).toEqual({ spent: 150n, reserved: 400n });
    expect(f.view('ns/other@2026-12-01T00:00:00.000Z')).toEqual({ spent: 0n, reserved: 0n });
  });

  it('persists spend once per flush window (debounced), atomically, creating the directory', async () => {
    const { logger, warns } = fakeLogger();
    const file = join(dir, 'state', 'nested', 'budgets.json'); // the directory does not exist yet
    const f = new LocalFunds(file, logger, 500);
    await f.reserve(K, 1_000n, 300n);
    f.settle(K, 300n, 120n);
    await vi.advanceTimersByTimeAsync(300);
    f.record(K, 5n); // within the window: no second timer
    await vi.advanceTimersByTimeAsync(199);
    expect(fsCalls.writes).toEqual([]);
    expect(existsSync(file)).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(fsCalls.writes).toEqual([JSON.stringify({ spentNano: { [K]: '125' } })]);
    expect(readFileSync(file, 'utf8')).toBe(JSON.stringify({ spentNano: { [K]: '125' } }));
    expect(existsSync(`${file}.tmp`)).toBe(false); // written aside, then renamed over
    await vi.advanceTimersByTimeAsync(5_000);
    expect(fsCalls.writes).toHaveLength(1); // nothing more to write: no more timers
    f.record(K, 1n); // a new window
    await vi.advanceTimersByTimeAsync(500);
    expect(fsCalls.writes).toHaveLength(2);
    expect(readFileSync(file, 'utf8')).toBe(JSON.stringify({ spentNano: { [K]: '126' } }));
    expect(warns).toEqual([]);
  });

  it('flushes again into an existing directory', async () => {
    const { logger, warns } = fakeLogger();
    const file = join(dir, 'budgets.json');
    const f = new LocalFunds(file, logger, 10);
    f.record(K, 7n);
    f.flush();
    f.record(K, 3n);
    f.flush();
    expect(readFileSync(file, 'utf8')).toBe(JSON.stringify({ spentNano: { [K]: '10' } }));
    expect(warns).toEqual([]);
    await f.close();
  });

  it('a restart continues from the persisted spend; reservations are not persisted', async () => {
    const { logger, warns } = fakeLogger();
    const file = join(dir, 'budgets.json');
    const a = new LocalFunds(file, logger);
    await a.reserve(K, 1_000n, 900n);
    a.settle(K, 900n, 700n);
    await a.reserve(K, 1_000n, 200n); // in flight when the process stops
    await a.close(); // writes at once, without waiting for the window
    expect(fsCalls.writes).toEqual([JSON.stringify({ spentNano: { [K]: '700' } })]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(fsCalls.writes).toHaveLength(1); // the pending timer was cleared
    const b = new LocalFunds(file, logger);
    expect(b.view(K)).toEqual({ spent: 700n, reserved: 0n });
    expect(await b.reserve(K, 1_000n, 301n)).toBe('exhausted');
    expect(await b.reserve(K, 1_000n, 300n)).toBe('reserved');
    expect(warns).toEqual([]);
  });

  it('starts from zero without a warning when there is no state file, and when the file has no spend', async () => {
    const { logger, warns } = fakeLogger();
    const missing = new LocalFunds(join(dir, 'absent.json'), logger);
    expect(missing.view(K)).toEqual({ spent: 0n, reserved: 0n });
    const file = join(dir, 'empty.json');
    writeFileSync(file, '{}');
    const empty = new LocalFunds(file, logger);
    expect(empty.view(K)).toEqual({ spent: 0n, reserved: 0n });
    expect(await empty.reserve(K, 10n, 10n)).toBe('reserved');
    expect(warns).toEqual([]);
  });

  it('an unreadable state file is logged and the budget starts from zero', () => {
    const { logger, warns } = fakeLogger();
    const file = join(dir, 'corrupt.json');
    writeFileSync(file, '{"spentNano":');
    const f = new LocalFunds(file, logger);
    expect(f.view(K)).toEqual({ spent: 0n, reserved: 0n });
    expect(warns).toHaveLength(1);
    expect(warns[0]![1]).toBe('budget state unreadable; starting from zero');
    expect(warns[0]![0]).toMatchObject({ file, error: expect.stringContaining('JSON') });
  });

  it('a state file that cannot be written is logged, and spend is kept in memory', async () => {
    const { logger, warns } = fakeLogger();
    mkdirSync(join(dir, 'blocked'));
    writeFileSync(join(dir, 'blocked', 'not-a-dir'), 'x');
    const file = join(dir, 'blocked', 'not-a-dir', 'budgets.json'); // its directory is a file
    const f = new LocalFunds(file, logger, 10);
    expect(warns.map(([, msg]) => msg)).toEqual(['budget state unreadable; starting from zero']); // ENOTDIR, not ENOENT
    f.record(K, 4n);
    await vi.advanceTimersByTimeAsync(10);
    expect(warns).toHaveLength(2);
    expect(warns[1]![1]).toBe('could not persist budget state');
    expect(warns[1]![0]).toMatchObject({ file, error: expect.stringMatching(/ENOTDIR|EEXIST/) });
    expect(f.view(K)).toEqual({ spent: 4n, reserved: 0n });
  });
});
