import { describe, expect, it } from 'vitest';
import { periodBounds } from '../../crds/src/period.js';

const iso = (b: { start: Date; end: Date }) => [b.start.toISOString(), b.end.toISOString()];

describe('periodBounds', () => {
  it('daily, weekly and monthly in UTC', () => {
    const now = new Date('2026-11-26T18:57:00Z'); // a Thursday
    expect(iso(periodBounds('daily', 'UTC', now))).toEqual(['2026-11-26T00:00:00.000Z', '2026-11-27T00:00:00.000Z']);
    expect(iso(periodBounds('weekly', 'UTC', now))).toEqual(['2026-11-23T00:00:00.000Z', '2026-11-30T00:00:00.000Z']);
    expect(iso(periodBounds('monthly', 'UTC', now))).toEqual(['2026-11-01T00:00:00.000Z', '2026-12-01T00:00:00.000Z']);
    expect(iso(periodBounds('monthly', 'UTC', new Date('2026-12-31T23:59:59Z')))).toEqual(['2026-12-01T00:00:00.000Z', '2027-01-01T00:00:00.000Z']);
  });

  it('uses local midnight of the time zone', () => {
    // 23:30 UTC on Nov 26 is already Nov 27 in Berlin (UTC+1).
    const now = new Date('2026-11-26T23:30:00Z');
    expect(iso(periodBounds('daily', 'Europe/Berlin', now))).toEqual(['2026-11-26T23:00:00.000Z', '2026-11-27T23:00:00.000Z']);
    expect(iso(periodBounds('daily', 'America/New_York', now))).toEqual(['2026-11-26T05:00:00.000Z', '2026-11-27T05:00:00.000Z']);
  });

  it('handles DST changes inside the period', () => {
    // Berlin switches to summer time on 2026-03-29: that day has 23 hours.
    const b = periodBounds('daily', 'Europe/Berlin', new Date('2026-03-29T12:00:00Z'));
    expect(iso(b)).toEqual(['2026-03-28T23:00:00.000Z', '2026-03-29T22:00:00.000Z']);
    const m = periodBounds('monthly', 'Europe/Berlin', new Date('2026-03-15T12:00:00Z'));
    expect(iso(m)).toEqual(['2026-02-28T23:00:00.000Z', '2026-03-31T22:00:00.000Z']);
  });

  it('weeks start on Monday', () => {
    expect(iso(periodBounds('weekly', 'UTC', new Date('2026-11-29T23:59:59Z')))).toEqual(['2026-11-23T00:00:00.000Z', '2026-11-30T00:00:00.000Z']);
    expect(iso(periodBounds('weekly', 'UTC', new Date('2026-11-30T00:00:00Z')))).toEqual(['2026-11-30T00:00:00.000Z', '2026-12-07T00:00:00.000Z']);
  });
});
