/**
 * Schedules as a deploy gives them: EventBridge's rate() and cron() (and everyMs) turned into
 * what a BullMQ job scheduler repeats on, what cannot be converted refused with an InvalidRequest
 * naming the entry; the scheduled event a tick hands the function; a tick's call id.
 */
import t from 'tap';
import { getNextMillis } from 'bullmq';
import { isSkiffError } from '../../infra/errors.js';
import { MAX_SCHEDULES, cronPattern, repeatOf, validateSchedules } from '../../infra/schedules/expression.js';
import { scheduledEvent } from '../../infra/schedules/scheduled-event.js';
import { derivedInvocationId, invocationId } from '../../infra/queue/ids.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

function refuses(t: TapTest, run: () => unknown, field: string, message: RegExp): void {
  try {
    run();
    t.fail(`expected an InvalidRequest for ${field}`);
  } catch (error) {
    t.ok(isSkiffError(error, 'InvalidRequest'), 'InvalidRequest');
    t.equal((error as { field?: string }).field, field, `names ${field}`);
    t.match((error as Error).message, message);
  }
}

t.test('rate() and everyMs become an interval in ms', async (t) => {
  t.same(repeatOf({ expression: 'rate(1 minute)' }, 's'), { every: 60_000 });
  t.same(repeatOf({ expression: 'rate(5 minutes)' }, 's'), { every: 300_000 });
  t.same(repeatOf({ expression: 'rate(2 hours)' }, 's'), { every: 7_200_000 });
  t.same(repeatOf({ expression: ' rate(1 day) ' }, 's'), { every: 86_400_000 });
  t.same(repeatOf({ everyMs: 1000 }, 's'), { every: 1000 });
  refuses(t, () => repeatOf({ expression: 'rate(1 minutes)' }, 'schedules[0]'), 'schedules[0].expression', /singular/);
  refuses(t, () => repeatOf({ expression: 'rate(5 minute)' }, 'schedules[0]'), 'schedules[0].expression', /plural/);
  refuses(t, () => repeatOf({ expression: 'rate(0 minutes)' }, 'schedules[0]'), 'schedules[0].expression', /at least 1/);
  refuses(t, () => repeatOf({ expression: 'rate(10 seconds)' }, 'schedules[1]'), 'schedules[1].expression', /minute\(s\), hour\(s\) or day\(s\)/);
  refuses(t, () => repeatOf({ expression: 'rate(400 days)' }, 'schedules[0]'), 'schedules[0].expression', /longer than a year/);
  refuses(t, () => repeatOf({ expression: 'rate(five minutes)' }, 'schedules[0]'), 'schedules[0].expression', /whole number/);
  refuses(t, () => repeatOf({ everyMs: 999 }, 'schedules[2]'), 'schedules[2].everyMs', /from 1000/);
  refuses(t, () => repeatOf({ everyMs: 1500.5 }, 'schedules[2]'), 'schedules[2].everyMs', /whole number/);
  refuses(t, () => repeatOf({ expression: 'every 5 minutes' }, 'schedules[3]'), 'schedules[3].expression', /neither rate/);
});

t.test("cron(): EventBridge's six fields become BullMQ's five, weekdays renumbered", async (t) => {
  t.same(repeatOf({ expression: 'cron(0 12 * * ? *)' }, 's'), { pattern: '0 12 * * *', tz: 'UTC' });
  t.equal(cronPattern('0/15 * ? * MON-FRI *', 'f'), '0/15 * * * MON-FRI');
  t.equal(cronPattern('0 8 ? * 2-6 *', 'f'), '0 8 * * 1-5', 'EventBridge 2-6 (Mon-Fri) is cron 1-5');
  t.equal(cronPattern('0 8 ? * 1,7 *', 'f'), '0 8 * * 0,6', 'Sunday and Saturday');
  t.equal(cronPattern('0 8 ? * 6#3 *', 'f'), '0 8 * * 5#3', 'the third Friday: the nth stays');
  t.equal(cronPattern('0 8 ? * 6L *', 'f'), '0 8 * * 5L', 'the last Friday');
  t.equal(cronPattern('0 8 ? * 2/2 *', 'f'), '0 8 * * 1/2', 'a step stays a step');
  t.equal(cronPattern('0 0 L * ? *', 'f'), '0 0 L * *', 'the last day of the month');
  t.equal(cronPattern('15 10 1 JAN-MAR ? *', 'f'), '15 10 1 JAN-MAR *');
  // The converted pattern fires when EventBridge would: 2026-01-01 is a Thursday.
  const from = Date.UTC(2026, 0, 1, 0, 0);
  t.equal(new Date(getNextMillis(from, { pattern: cronPattern('0 8 ? * 2 *', 'f'), tz: 'UTC' }) ?? 0).toISOString(), '2026-01-05T08:00:00.000Z', 'a Monday');
  t.equal(new Date(getNextMillis(from, { pattern: cronPattern('30 9 ? * 6#3 *', 'f'), tz: 'UTC' }) ?? 0).toISOString(), '2026-01-16T09:30:00.000Z');

  refuses(t, () => repeatOf({ expression: 'cron(0 12 * * ? 2027)' }, 'schedules[0]'), 'schedules[0].expression', /year field must be \*/);
  refuses(t, () => cronPattern('0 12 * * *', 'x'), 'x', /expected 6 fields, got 5/);
  refuses(t, () => cronPattern('0 12 * * * *', 'x'), 'x', /exactly one of day-of-month and day-of-week must be \?/);
  refuses(t, () => cronPattern('0 12 ? * ? *', 'x'), 'x', /exactly one/);
  refuses(t, () => cronPattern('0 12 15W * ? *', 'x'), 'x', /W \(the nearest weekday\) is not supported/);
  refuses(t, () => cronPattern('0 12 ? * 8 *', 'x'), 'x', /day-of-week 8 is out of 1–7/);
  refuses(t, () => cronPattern('0 12 ? * 0 *', 'x'), 'x', /day-of-week 0 is out of 1–7/);
  refuses(t, () => cronPattern('0 ? * * ? *', 'x'), 'x', /hours field/);
  refuses(t, () => cronPattern('61 12 * * ? *', 'x'), 'x', /cron\(61 12/);
  refuses(t, () => cronPattern('0 0 31 2 ? *', 'x'), 'x', /cron\(0 0 31 2/);
  refuses(t, () => cronPattern('0 12 * FOO ? *', 'x'), 'x', /cron\(/);
});

t.test('a deploy has at most MAX_SCHEDULES schedules, each named by its position when bad', async (t) => {
  validateSchedules([{ everyMs: 1000 }, { expression: 'rate(1 hour)' }, { expression: 'cron(0 12 * * ? *)' }]);
  refuses(
    t,
    () => validateSchedules(Array.from({ length: MAX_SCHEDULES + 1 }, () => ({ everyMs: 1000 }))),
    'schedules',
    new RegExp(`at most ${MAX_SCHEDULES}`),
  );
  refuses(t, () => validateSchedules([{ everyMs: 1000 }, { expression: 'cron(0 12 * * ? 2030)' }]), 'schedules[1].expression', /year/);
});

t.test("a tick's event is EventBridge's Scheduled Event", async (t) => {
  const event = scheduledEvent({ id: 'abc', tenant: 'acme', region: 'eu-west-1', functionName: 'report', position: 0, dueAt: Date.UTC(2026, 11, 2, 12, 0, 0) });
  t.same(event, {
    version: '0',
    id: 'abc',
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: 'acme',
    time: '2026-12-02T12:00:00Z',
    region: 'eu-west-1',
    resources: ['arn:aws:events:eu-west-1:acme:rule/report-schedule-1'],
    detail: {},
  });
  t.equal(
    scheduledEvent({ id: 'a', tenant: 't', region: 'r', functionName: 'f', position: 1, dueAt: 1500 }).time,
    '1970-01-01T00:00:01.500Z',
    'ms kept when there are some',
  );
});

t.test("a tick's call id is made from the tick, shaped as any invocation id", async (t) => {
  const id = derivedInvocationId('repeat:f:v1:0:1700000000000');
  t.equal(id, derivedInvocationId('repeat:f:v1:0:1700000000000'), 'the same tick, the same id');
  t.not(id, derivedInvocationId('repeat:f:v1:0:1700000001000'), 'another tick, another id');
  t.equal(id.length, invocationId().length);
  t.match(id, /^[0-9A-Za-z_]+$/, 'never a dash');
});
