/**
 * Calendar budget periods in an IANA time zone: daily (local midnight), weekly (Monday local
 * midnight, ISO weeks), monthly (the 1st, local midnight). Computed with Intl only, so time
 * zones with DST shifts get the right instant for "local midnight".
 */
export type Period = 'daily' | 'weekly' | 'monthly';

interface LocalParts {
  year: number;
  month: number; // 1-12
  day: number;
  weekday: number; // 1 = Monday … 7 = Sunday
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric', weekday: 'short', hourCycle: 'h23' });
    formatters.set(timeZone, f);
  }
  return f;
}

const WEEKDAYS: Record<string, number> = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 };

function localParts(at: Date, timeZone: string): LocalParts & { hour: number; minute: number; second: number } {
  const parts: Record<string, string> = {};
  for (const p of formatter(timeZone).formatToParts(at)) parts[p.type] = p.value;
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    hour: Number(parts.hour),
    minute: Number(parts.minute),
    second: Number(parts.second),
    weekday: WEEKDAYS[parts.weekday ?? 'Mon'] ?? 1,
  };
}

/** Offset of the zone from UTC at an instant, in ms. */
function offsetMs(at: Date, timeZone: string): number {
  const p = localParts(at, timeZone);
  const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return asUtc - Math.floor(at.getTime() / 1000) * 1000;
}

/** The instant of local midnight on a local calendar date (the first instant of that day). */
function localMidnight(year: number, month: number, day: number, timeZone: string): Date {
  const guess = Date.UTC(year, month - 1, day);
  // Two passes settle DST: the offset at the guess may differ from the offset at the answer.
  let t = guess - offsetMs(new Date(guess), timeZone);
  t = guess - offsetMs(new Date(t), timeZone);
  return new Date(t);
}

export function periodBounds(period: Period, timeZone: string, now: Date): { start: Date; end: Date } {
  const p = localParts(now, timeZone);
  let start: { y: number; m: number; d: number };
  let end: { y: number; m: number; d: number };
  const add = (y: number, m: number, d: number, days: number) => {
    const x = new Date(Date.UTC(y, m - 1, d + days));
    return { y: x.getUTCFullYear(), m: x.getUTCMonth() + 1, d: x.getUTCDate() };
  };
  switch (period) {
    case 'daily':
      start = { y: p.year, m: p.month, d: p.day };
      end = add(p.year, p.month, p.day, 1);
      break;
    case 'weekly':
      start = add(p.year, p.month, p.day, -(p.weekday - 1));
      end = add(start.y, start.m, start.d, 7);
      break;
    case 'monthly':
      start = { y: p.year, m: p.month, d: 1 };
      end = p.month === 12 ? { y: p.year + 1, m: 1, d: 1 } : { y: p.year, m: p.month + 1, d: 1 };
      break;
  }
  return { start: localMidnight(start.y, start.m, start.d, timeZone), end: localMidnight(end.y, end.m, end.d, timeZone) };
}
