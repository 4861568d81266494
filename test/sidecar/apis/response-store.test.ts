import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ResponseStore, type ResponseStoreOptions } from '../../../sidecar/apis/response-store.js';
import type { ResponseObject, StoredResponse } from '../../../sidecar/apis/responses-types.js';

const HOUR = 3_600_000;

function clock() {
  let t = 1_700_000_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

/** A stored response: `text` is the answer; its output message has id msg_<n>. */
function stored(n: number, text = `answer ${n}`, inputItems: StoredResponse['inputItems'] = []): StoredResponse {
  const response = {
    id: `resp_${n.toString(16).padStart(4, '0')}`,
    object: 'response',
    status: 'completed',
    output: [{ type: 'message', id: `msg_${n}`, status: 'completed', role: 'assistant', content: [{ type: 'output_text', text, annotations: [], logprobs: [] }] }],
  } as unknown as ResponseObject;
  return { response, conversation: [{ role: 'user', content: `question ${n}` }, { role: 'assistant', content: text }], inputItems };
}

const idOf = (n: number) => stored(n).response.id;

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'paygo-responses-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function store(o: Partial<ResponseStoreOptions> = {}): ResponseStore {
  return new ResponseStore({ maxEntries: 100, maxBytes: 1_000_000, ttlMs: 24 * HOUR, ...o });
}

describe('ResponseStore in memory', () => {
  it('keeps a response by id, indexes its input items with ids and its output items, and deletes them together', () => {
    const s = store();
    const userItem = { type: 'message', id: 'msg_client', role: 'user', content: 'hi' };
    const entry = stored(1, 'hello', [userItem]);
    expect(s.put(entry)).toBe(true);
    expect(s.get(idOf(1))).toEqual(entry);
    expect(s.item('msg_client')).toEqual(userItem);
    expect(s.item('msg_1')).toEqual(entry.response.output[0]);
    expect(s.item('msg_2')).toBeUndefined();
    expect(s.get('resp_unknown')).toBeUndefined();
    expect([s.size, s.heldBytes]).toEqual([1, JSON.stringify(entry).length]);

    expect(s.delete(idOf(1))).toBe(true);
    expect(s.delete(idOf(1))).toBe(false);
    expect([s.get(idOf(1)), s.item('msg_client'), s.item('msg_1'), s.size, s.heldBytes]).toEqual([undefined, undefined, undefined, 0, 0]);
  });

  it('an item id given again in a later response belongs to the later one, and stays when the earlier goes', () => {
    const s = store();
    const first = { type: 'message', id: 'msg_same', role: 'user', content: 'first' };
    const second = { type: 'message', id: 'msg_same', role: 'user', content: 'second' };
    s.put(stored(1, 'a', [first]));
    s.put(stored(2, 'b', [second]));
    s.delete(idOf(1));
    expect(s.item('msg_same')).toEqual(second);
  });

  it('evicts the least recently used by count; get and item both count as use', () => {
    const s = store({ maxEntries: 2 });
    s.put(stored(1));
    s.put(stored(2));
    s.get(idOf(1)); // 2 is now the least recently used
    s.put(stored(3));
    expect([1, 2, 3].map((n) => s.get(idOf(n)) !== undefined)).toEqual([true, false, true]);
    expect(s.item('msg_2')).toBeUndefined();

    s.item('msg_1'); // 3 is now the least recently used
    s.put(stored(4));
    expect([1, 3, 4].map((n) => s.get(idOf(n)) !== undefined)).toEqual([true, false, true]);
  });

  it('evicts by bytes, and never keeps an entry that alone exceeds them', () => {
    const one = JSON.stringify(stored(1, 'x'.repeat(400))).length;
    const s = store({ maxBytes: one * 2 + 10 });
    s.put(stored(1, 'x'.repeat(400)));
    s.put(stored(2, 'y'.repeat(400)));
    expect(s.size).toBe(2);
    s.put(stored(3, 'z'.repeat(400))); // three do not fit: 1 goes
    expect([1, 2, 3].map((n) => s.get(idOf(n)) !== undefined)).toEqual([false, true, true]);
    expect(s.heldBytes).toBe(JSON.stringify(stored(2, 'y'.repeat(400))).length + JSON.stringify(stored(3, 'z'.repeat(400))).length);

    expect(s.put(stored(4, 'w'.repeat(one * 3)))).toBe(false);
    expect([s.get(idOf(4)), s.size]).toEqual([undefined, 2]);
  });

  it('forgets an entry ttlMs after it was stored, however often it was read', () => {
    const t = clock();
    const s = store({ ttlMs: 10_000, now: t.now });
    s.put(stored(1));
    t.advance(5_000);
    s.put(stored(2));
    t.advance(4_999);
    expect(s.get(idOf(1))).toBeDefined();
    t.advance(1); // 1 is 10 s old
    expect([s.get(idOf(1)), s.item('msg_1')]).toEqual([undefined, undefined]);
    expect(s.get(idOf(2))).toBeDefined();
    t.advance(5_000);
    s.put(stored(3)); // storing sweeps what expired (2) even unread
    expect([s.size, s.heldBytes]).toEqual([1, JSON.stringify(stored(3)).length]);
  });
});

describe('ResponseStore on disk', () => {
  it('writes each response to <dir>/responses/<id>.json (0600), and a new store on the same dir reads them back', async () => {
    const dir = tempDir();
    const t = clock();
    const a = store({ dir, now: t.now });
    const item = { type: 'function_call', id: 'fc_client', call_id: 'call_1', name: 'f', arguments: '{}' };
    a.put(stored(1, 'one', [item]));
    a.put(stored(2, 'two'));
    await a.close();
    const files = readdirSync(join(dir, 'responses')).sort();
    expect(files).toEqual([`${idOf(1)}.json`, `${idOf(2)}.json`]);
    expect(statSync(join(dir, 'responses', files[0]!)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(join(dir, 'responses', files[0]!), 'utf8'))).toEqual({ version: 1, expires_at: t.now() + 24 * HOUR, entry: stored(1, 'one', [item]) });

    const b = store({ dir, now: t.now });
    expect([b.get(idOf(1)), b.get(idOf(2)), b.item('fc_client'), b.item('msg_2')]).toEqual([stored(1, 'one', [item]), stored(2, 'two'), item, stored(2, 'two').response.output[0]]);
    expect(b.heldBytes).toBe(a.heldBytes);
  });

  it('deleting, evicting and expiring remove the file; expired files are not read back', async () => {
    const dir = tempDir();
    const t = clock();
    const a = store({ dir, now: t.now, maxEntries: 2, ttlMs: 10_000 });
    a.put(stored(1));
    a.put(stored(2));
    a.put(stored(3)); // evicts 1
    a.delete(idOf(2));
    await a.close();
    expect(readdirSync(join(dir, 'responses'))).toEqual([`${idOf(3)}.json`]);

    t.advance(10_000);
    const b = store({ dir, now: t.now, maxEntries: 2, ttlMs: 10_000 });
    expect(b.size).toBe(0);
    expect(readdirSync(join(dir, 'responses'))).toEqual([]);
  });

  it('reading back applies the limits, keeping the most recently stored', async () => {
    const dir = tempDir();
    const t = clock();
    const a = store({ dir, now: t.now });
    for (const n of [1, 2, 3]) {
      a.put(stored(n));
      t.advance(1);
    }
    await a.close();
    const b = store({ dir, now: t.now, maxEntries: 2 });
    expect([1, 2, 3].map((n) => b.get(idOf(n)) !== undefined)).toEqual([false, true, true]);
    await b.close();
    expect(readdirSync(join(dir, 'responses')).sort()).toEqual([`${idOf(2)}.json`, `${idOf(3)}.json`]);
  });

  it('removes unreadable files and interrupted writes at load, reporting the former without their content', () => {
    const dir = tempDir();
    store({ dir }); // creates <dir>/responses
    const responses = join(dir, 'responses');
    writeFileSync(join(responses, 'resp_00aa.json'), '{"secret prompt text');
    writeFileSync(join(responses, 'resp_00bb.json'), JSON.stringify({ version: 1, expires_at: Number.MAX_SAFE_INTEGER, entry: stored(1) })); // id ≠ file name
    writeFileSync(join(responses, 'resp_00cc.json.123.4.tmp'), '{');
    writeFileSync(join(responses, 'notes.txt'), 'not ours');
    const errors: Array<[string, string]> = [];
    const s = store({ dir, onPersistError: (err, op) => errors.push([op, err.message]) });
    expect(s.size).toBe(0);
    expect(errors).toEqual([
      ['load', 'resp_00aa.json: unreadable JSON'],
      ['load', 'resp_00bb.json: not a stored response'],
    ]);
    expect(readdirSync(responses)).toEqual(['notes.txt']);
  });

  it('a failed write reaches onPersistError and never the caller; the entry stays in memory', async () => {
    const dir = tempDir();
    const errors: string[] = [];
    const s = store({ dir, onPersistError: (_err, op) => errors.push(op) });
    rmSync(join(dir, 'responses'), { recursive: true });
    writeFileSync(join(dir, 'responses'), 'a file where the directory was');
    expect(s.put(stored(1))).toBe(true);
    await s.close();
    expect(errors).toEqual(['write']);
    expect(s.get(idOf(1))).toEqual(stored(1));
  });

  it('starts its file writes together after a short delay, not during the request that stored them', async () => {
    const dir = tempDir();
    const s = store({ dir });
    s.put(stored(1));
    s.put(stored(2));
    s.put(stored(3));
    s.delete(idOf(3)); // before the flush: its file is never written
    await new Promise((r) => setTimeout(r, 20));
    expect(readdirSync(join(dir, 'responses'))).toEqual([]);
    // The flush comes by itself (200 ms), without close().
    const deadline = Date.now() + 5_000;
    while (readdirSync(join(dir, 'responses')).filter((f) => f.endsWith('.json')).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await s.close();
    expect(readdirSync(join(dir, 'responses')).sort()).toEqual([`${idOf(1)}.json`, `${idOf(2)}.json`]);
  });

  it('only ids of our own form name files', async () => {
    const dir = tempDir();
    const s = store({ dir });
    const odd = stored(1);
    odd.response.id = '../../etc/passwd';
    s.put(odd);
    await s.close();
    expect(s.get('../../etc/passwd')).toEqual(odd);
    expect(readdirSync(join(dir, 'responses'))).toEqual([]);
    expect(s.delete('../../etc/passwd')).toBe(true);
    await s.close();
  });
});
