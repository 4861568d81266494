import { describe, expect, it } from 'vitest';
import type { Condition } from '../../crds/src/index.js';
import { conditionStatus, setCondition } from '../../operator/conditions.js';

const T0 = new Date('2026-03-10T12:00:00.123Z');
const T1 = new Date('2026-03-10T12:05:00.987Z');

const ready = (status: Condition['status'], reason = 'Synced'): Omit<Condition, 'lastTransitionTime'> => ({ type: 'Ready', status, reason, message: `ready ${status}`, observedGeneration: 1 });

describe('setCondition', () => {
  it('adds a condition to no list, stamped now to the second (metav1.Time has no fraction)', () => {
    expect(setCondition(undefined, ready('True'), T0)).toEqual([{ ...ready('True'), lastTransitionTime: '2026-03-10T12:00:00Z' }]);
    expect(setCondition([], ready('False'), T1)).toEqual([{ ...ready('False'), lastTransitionTime: '2026-03-10T12:05:00Z' }]);
  });

  it('keeps lastTransitionTime while the status stays, taking the new reason, message and generation', () => {
    const first = setCondition(undefined, ready('False', 'Syncing'), T0);
    const next = setCondition(first, { type: 'Ready', status: 'False', reason: 'SecretNotFound', message: 'later', observedGeneration: 2 }, T1);
    expect(next).toEqual([{ type: 'Ready', status: 'False', reason: 'SecretNotFound', message: 'later', observedGeneration: 2, lastTransitionTime: '2026-03-10T12:00:00Z' }]);
  });

  it('moves lastTransitionTime when the status changes, and replaces (never duplicates) the condition', () => {
    const first = setCondition(undefined, ready('False', 'Syncing'), T0);
    const next = setCondition(first, ready('True'), T1);
    expect(next).toEqual([{ ...ready('True'), lastTransitionTime: '2026-03-10T12:05:00Z' }]);
    expect(setCondition(next, ready('Unknown', 'Pending'), T0)).toEqual([{ ...ready('Unknown', 'Pending'), lastTransitionTime: '2026-03-10T12:00:00Z' }]);
  });

  it('only the condition of the same type counts: others are kept as they are, and the list is sorted by type', () => {
    const existing: Condition[] = [
      { type: 'ResolvedRefs', status: 'True', reason: 'Resolved', message: 'ok', lastTransitionTime: '2026-01-01T00:00:00Z' },
      { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok', lastTransitionTime: '2026-01-02T00:00:00Z' },
    ];
    // Another type with the same status does not lend its time to Ready.
    const next = setCondition(existing, ready('True'), T0);
    expect(next).toEqual([
      { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok', lastTransitionTime: '2026-01-02T00:00:00Z' },
      { ...ready('True'), lastTransitionTime: '2026-03-10T12:00:00Z' },
      { type: 'ResolvedRefs', status: 'True', reason: 'Resolved', message: 'ok', lastTransitionTime: '2026-01-01T00:00:00Z' },
    ]);
    expect(next.map((c) => c.type)).toEqual(['Accepted', 'Ready', 'ResolvedRefs']);
    // The input list is not changed.
    expect(existing.map((c) => c.type)).toEqual(['ResolvedRefs', 'Accepted']);
  });

  it('an equal set of conditions compares equal whatever order it came in', () => {
    const a = setCondition(setCondition(undefined, ready('True'), T0), { type: 'Accepted', status: 'True', reason: 'A', message: 'a' }, T0);
    const b = setCondition(setCondition(undefined, { type: 'Accepted', status: 'True', reason: 'A', message: 'a' }, T0), ready('True'), T0);
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(a.map((c) => c.type)).toEqual(['Accepted', 'Ready']);
  });
});

describe('conditionStatus', () => {
  it('is the status of the condition of that type, undefined when absent', () => {
    const list = setCondition(setCondition(undefined, ready('False'), T0), { type: 'Accepted', status: 'True', reason: 'A', message: 'a' }, T0);
    expect(conditionStatus(list, 'Ready')).toBe('False');
    expect(conditionStatus(list, 'Accepted')).toBe('True');
    expect(conditionStatus(list, 'ResolvedRefs')).toBeUndefined();
    expect(conditionStatus(undefined, 'Ready')).toBeUndefined();
    expect(conditionStatus([], 'Ready')).toBeUndefined();
  });
});
