/**
 * A function's schedules as a deploy gives them, and what each becomes in BullMQ: EventBridge's
 * `rate(...)` and `cron(...)` expressions (UTC) or a plain `everyMs`, turned into a job
 * scheduler's `every` (ms) or `pattern` (the five-field cron that BullMQ's parser reads). Pure:
 * the gateway validates a deploy with it and the schedules' owner (infra/schedules/job-schedulers.ts)
 * applies what it returns. What cannot be converted faithfully is refused, never approximated.
 */
import { getNextMillis } from 'bullmq';
import { invalidRequest, type SkiffError } from '../errors.js';

/** One schedule of a function, as deployed and stored. */
export type Schedule = { expression: string } | { everyMs: number };

/** What a job scheduler repeats on. */
export type Repeat = { every: number } | { pattern: string; tz: 'UTC' };

/** Schedules one function may have. */
export const MAX_SCHEDULES = 10;
export const MIN_EVERY_MS = 1000;
/** The longest interval: a year. */
export const MAX_EVERY_MS = 366 * 86_400_000;
/** Longest expression accepted. */
export const MAX_EXPRESSION_LENGTH = 256;

const RATE_UNITS: Record<string, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };

/** The repeat of `schedule`, or an InvalidRequest naming `field` (e.g. `schedules[2].expression`). */
export function repeatOf(schedule: Schedule, field: string): Repeat {
  if ('everyMs' in schedule) {
    const ms = schedule.everyMs;
    if (!Number.isInteger(ms) || ms < MIN_EVERY_MS || ms > MAX_EVERY_MS) {
      throw invalidRequest(`${field}.everyMs`, `everyMs must be a whole number of ms from ${MIN_EVERY_MS} to ${MAX_EVERY_MS}; got ${ms}`);
    }
    return { every: ms };
  }
  const at = `${field}.expression`;
  const text = schedule.expression.trim();
  if (text.length > MAX_EXPRESSION_LENGTH) throw invalidRequest(at, `the expression is longer than ${MAX_EXPRESSION_LENGTH} characters`);
  const rate = /^rate\((.*)\)$/s.exec(text);
  if (rate) return { every: rateMs(rate[1] ?? '', at) };
  const cron = /^cron\((.*)\)$/s.exec(text);
  if (cron) return { pattern: cronPattern(cron[1] ?? '', at), tz: 'UTC' };
  throw invalidRequest(at, `${JSON.stringify(text)} is neither rate(value unit) nor cron(minutes hours day-of-month month day-of-week year)`);
}

/** Validates a deploy's whole list: each entry converts, and there are not too many. */
export function validateSchedules(schedules: readonly Schedule[]): void {
  if (schedules.length > MAX_SCHEDULES) throw invalidRequest('schedules', `a function has at most ${MAX_SCHEDULES} schedules; got ${schedules.length}`);
  schedules.forEach((schedule, i) => repeatOf(schedule, `schedules[${i}]`));
}

/** `rate(5 minutes)`: a positive whole value, a unit singular for 1 and plural otherwise (as EventBridge requires). */
function rateMs(inner: string, field: string): number {
  const match = /^\s*(\d+)\s+([a-z]+)\s*$/.exec(inner);
  const bad = (why: string): SkiffError => invalidRequest(field, `rate(${inner}): ${why}; e.g. rate(1 minute), rate(5 minutes), rate(2 hours), rate(1 day)`);
  if (!match) throw bad('expected a whole number and a unit');
  const value = Number(match[1]);
  const word = match[2] ?? '';
  const unit = word.endsWith('s') ? word.slice(0, -1) : word;
  const unitMs = RATE_UNITS[unit];
  if (unitMs === undefined) throw bad(`the unit must be minute(s), hour(s) or day(s), not ${word}`);
  if (value < 1) throw bad('the value must be at least 1');
  if (value === 1 && word !== unit) throw bad(`a value of 1 takes the singular unit (${unit})`);
  if (value > 1 && word === unit) throw bad(`a value above 1 takes the plural unit (${unit}s)`);
  const ms = value * unitMs;
  if (ms > MAX_EVERY_MS) throw bad('the interval is longer than a year');
  return ms;
}

/** Characters each EventBridge cron field may hold (before names are checked by the parser). */
const FIELD_CHARS = {
  minutes: /^[0-9,*/-]+$/,
  hours: /^[0-9,*/-]+$/,
  dayOfMonth: /^[0-9,*/?LW-]+$/,
  month: /^[0-9A-Za-z,*/-]+$/,
  dayOfWeek: /^[0-9A-Za-z,*/?L#-]+$/,
};

/**
 * EventBridge's six fields (minutes hours day-of-month month day-of-week year) → BullMQ's five.
 * EventBridge numbers weekdays 1–7 from Sunday, cron 0–6; exactly one of the two day fields is
 * `?`; the year can only be `*` (a job scheduler has no year field).
 */
export function cronPattern(inner: string, field: string): string {
  const bad = (why: string): SkiffError =>
    invalidRequest(field, `cron(${inner}): ${why}; the form is cron(minutes hours day-of-month month day-of-week year), e.g. cron(0 12 * * ? *)`);
  const parts = inner.trim().split(/\s+/);
  if (parts.length !== 6) throw bad(`expected 6 fields, got ${parts.length}`);
  const [minutes, hours, dayOfMonth, month, dayOfWeek, year] = parts as [string, string, string, string, string, string];
  if (year !== '*') throw bad(`the year field must be * (schedules for given years are not supported), got ${year}`);
  const fields = { minutes, hours, dayOfMonth, month, dayOfWeek };
  for (const [name, value] of Object.entries(fields)) {
    if (!FIELD_CHARS[name as keyof typeof FIELD_CHARS].test(value)) throw bad(`the ${name} field ${JSON.stringify(value)} has characters it may not`);
  }
  if ((dayOfMonth === '?') === (dayOfWeek === '?')) throw bad('exactly one of day-of-month and day-of-week must be ?');
  for (const [name, value] of Object.entries(fields)) {
    if (value.includes('?') && value !== '?') throw bad(`? stands alone in the ${name} field`);
  }
  if (dayOfMonth.includes('W')) throw bad('W (the nearest weekday) is not supported');
  const pattern = [minutes, hours, dayOfMonth === '?' ? '*' : dayOfMonth, month, dayOfWeek === '?' ? '*' : weekdays(dayOfWeek, bad)].join(' ');
  let next: number | undefined;
  try {
    next = getNextMillis(Date.now(), { pattern, tz: 'UTC' });
  } catch (error) {
    throw bad((error as Error).message);
  }
  if (next === undefined || !Number.isFinite(next)) throw bad('it never fires');
  return pattern;
}

/** EventBridge weekday numbers (1 = Sunday … 7 = Saturday) → cron's (0 = Sunday … 6 = Saturday); names stay. */
function weekdays(value: string, bad: (why: string) => SkiffError): string {
  if (value === 'L') return 'SAT'; // EventBridge: L alone is the last day of the week
  return value.replace(/(^|[,\-/#])(\d+)/g, (whole, before: string, digits: string) => {
    // A step (`/2`) and the nth weekday (`#3`) are counts, not weekdays.
    if (before === '/' || before === '#') return whole;
    const day = Number(digits);
    if (day < 1 || day > 7) throw bad(`day-of-week ${day} is out of 1–7 (1 is Sunday) in ${value}`);
    return `${before}${day - 1}`;
  });
}
