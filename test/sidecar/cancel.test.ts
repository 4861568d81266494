import { describe, expect, it } from 'vitest';
import { Cancel, sleep } from '../../sidecar/cancel.js';

describe('Cancel', () => {
  it('aborts once, keeps the first reason and tells every listener once', () => {
    const c = new Cancel();
    const calls: string[] = [];
    c.onAbort(() => calls.push('a'));
    c.onAbort(() => calls.push('b'));
    c.abort('first');
    c.abort('second');
    expect(c.aborted).toBe(true);
    expect(c.reason).toBe('first');
    expect(calls).toEqual(['a', 'b']);
    expect(c.listenerCount('abort')).toBe(0);
  });

  it('onAbort on an aborted Cancel runs at once; its remover stops a pending listener', () => {
    const c = new Cancel();
    let ran = 0;
    const off = c.onAbort(() => ran++);
    off();
    expect(c.listenerCount('abort')).toBe(0);
    c.abort('x');
    expect(ran).toBe(0);
    c.onAbort(() => ran++);
    expect(ran).toBe(1);
  });

  it('a child follows its parent with the same reason, aborts alone, and unlinks on dispose', () => {
    const parent = new Cancel();
    const a = parent.child();
    const b = parent.child();
    b.cancel.abort('own');
    expect(parent.aborted).toBe(false);
    b.dispose();
    expect(parent.listenerCount('abort')).toBe(1);
    parent.abort('gone');
    expect(a.cancel.aborted).toBe(true);
    expect(a.cancel.reason).toBe('gone');
    expect(b.cancel.reason).toBe('own');
  });

  it('sleep resolves early on abort and leaves no listener or timer behind', async () => {
    const c = new Cancel();
    const started = Date.now();
    const slept = sleep(10_000, c);
    setTimeout(() => c.abort('stop'), 5);
    await slept;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(c.listenerCount('abort')).toBe(0);
    await sleep(10_000, c); // already aborted: at once
    const d = new Cancel();
    await sleep(1, d);
    expect(d.listenerCount('abort')).toBe(0);
  });
});
