import type { Condition } from '../crds/src/index.js';

/**
 * Sets a condition the Kubernetes way: lastTransitionTime changes only when the status does.
 * Returns a new list, sorted by type so equal states compare equal.
 */
export function setCondition(existing: Condition[] | undefined, next: Omit<Condition, 'lastTransitionTime'>, now: Date): Condition[] {
  const old = existing?.find((c) => c.type === next.type);
  const lastTransitionTime = old && old.status === next.status ? old.lastTransitionTime : now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const others = (existing ?? []).filter((c) => c.type !== next.type);
  return [...others, { ...next, lastTransitionTime }].sort((a, b) => a.type.localeCompare(b.type));
}

export function conditionStatus(conditions: Condition[] | undefined, type: string): Condition['status'] | undefined {
  return conditions?.find((c) => c.type === type)?.status;
}
