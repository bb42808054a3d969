/**
 * A schedule's tick becomes an async call in one place (scheduler/schedule-ticks.ts): recorded
 * `queued` with its event, then queued under an id made from the tick; a tick run twice is one
 * call; a tick of a version that is no longer current, or of a function that is gone, is dropped.
 * The records and the queue are fakes: this is about the decisions, the e2e test runs it for real.
 */
import t from 'tap';
import type { Queue } from 'bullmq';
import type { FunctionInfo } from '../../infra/db/function-store.js';
import type { InvocationRecord, InvocationRecords } from '../../infra/db/invocation-records.js';
import { createLogger } from '../../infra/log.js';
import type { InvocationJob } from '../../infra/queue/jobs.js';
import { keySpace } from '../../infra/queue/names.js';
import type { TickJob } from '../../infra/schedules/job-schedulers.js';
import { ScheduleTicks } from '../../scheduler/schedule-ticks.js';
import { functionVersion } from '../support/function-version.js';

function setUp(current: FunctionInfo | undefined, accepted = true) {
  const steps: string[] = [];
  const written: InvocationRecord[] = [];
  const queued: Array<{ job: InvocationJob; jobId: string | undefined }> = [];
  const ticks = new ScheduleTicks({
    keys: keySpace('unit'),
    queueConnection: undefined as never,
    invocations: {
      add: async (_name: string, job: InvocationJob, opts?: { jobId?: string }) => {
        steps.push('queued');
        queued.push({ job, jobId: opts?.jobId });
      },
    } as unknown as Queue<InvocationJob>,
    records: {
      acceptOnce: async (record: InvocationRecord) => {
        steps.push('recorded');
        written.push(record);
        return accepted;
      },
    } as unknown as InvocationRecords,
    current: async (name) => (name === current?.name ? current : undefined),
    limits: async () => ({ maxInstances: 5, maxMemoryMb: 1024 }),
    region: 'eu-west-1',
    queueWaitMs: 30_000,
    log: createLogger('test', 'silent'),
  });
  return { ticks, steps, written, queued };
}

const info: FunctionInfo = {
  ...functionVersion({ name: 'report', versionId: 'v2', schedules: [{ everyMs: 1000 }, { expression: 'rate(1 hour)' }] }),
  codeSize: 0,
  createdAt: '',
  updatedAt: '',
};
const tick = (data: Partial<TickJob> = {}, dueAt = Date.UTC(2026, 11, 2, 12)) => ({
  id: `repeat:report:v2:1:${dueAt}`,
  data: { functionName: 'report', versionId: 'v2', position: 1, ...data },
  timestamp: dueAt - 1000,
  opts: { prevMillis: dueAt },
});

t.test('a tick is recorded, then queued as an async call of the current version', async (t) => {
  const { ticks, steps, written, queued } = setUp(info);
  t.equal(await ticks.accept(tick()), 'accepted');
  t.same(steps, ['recorded', 'queued'], 'recorded before it is queued, as an accepted call');
  const call = queued[0]?.job;
  t.equal(queued[0]?.jobId, call?.id, 'queued under its own id');
  t.match(written[0], { id: call?.id, functionName: 'report', tenant: 't1', async: true, status: 'queued', attempt: 1, event: call?.event });
  t.match(call, { replyTo: null, attempt: 1, fn: { name: 'report', versionId: 'v2' }, tenantLimits: { maxInstances: 5, maxMemoryMb: 1024 } });
  t.match(call?.event, {
    id: call?.id,
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: 't1',
    time: '2026-12-02T12:00:00Z',
    region: 'eu-west-1',
    resources: ['arn:aws:events:eu-west-1:t1:rule/report-schedule-2'],
  });
});

t.test('the same tick twice is the same call; a tick accepted before is not queued again', async (t) => {
  const first = setUp(info);
  await first.ticks.accept(tick());
  await first.ticks.accept(tick());
  t.equal(first.queued[0]?.jobId, first.queued[1]?.jobId, 'one id: the queue keeps one job');
  const later = setUp(info);
  await later.ticks.accept(tick({}, Date.UTC(2026, 11, 2, 13)));
  t.not(later.queued[0]?.jobId, first.queued[0]?.jobId, 'another tick, another call');
  const ended = setUp(info, false);
  t.equal(await ended.ticks.accept(tick()), 'accepted-before');
  t.same(ended.steps, ['recorded'], 'not queued');
});

t.test('ticks of schedules no longer deployed are dropped', async (t) => {
  for (const [why, current, data] of [
    ['redeployed (another version is current)', { ...info, versionId: 'v3' }, {}],
    ['the function is gone', undefined, {}],
    ['the version has no such schedule', info, { position: 5 }],
  ] as const) {
    const { ticks, steps } = setUp(current);
    t.equal(await ticks.accept(tick(data)), 'dropped', why);
    t.same(steps, [], `${why}: nothing recorded or queued`);
  }
});
