/**
 * How an asynchronous call ends, wherever it ends (a worker ran it, or no worker could): a
 * success is recorded; a failure is run again after a growing delay (1×, 2×, 4× backoff) while
 * attempts remain, then recorded as failed and kept in the dead-letter list to be re-driven.
 * The record is written before this returns, so the job can be acknowledged safely after.
 * A result larger than the record keeps fails the call with FunctionResponseTooLarge, and that
 * failure is not retried: the same code would return the same result.
 *
 * A function's own `maximumRetryAttempts` and `maximumEventAgeSeconds` (as Lambda has them) win
 * over the platform's defaults: an event older than its maximum age is not run again but
 * dead-lettered. Each state is written before the next step is taken (the retry's `queued` row
 * before its job), so a process dying in between leaves a record the reconciler finds
 * (scheduler/reconciler.ts). A run that ends after its call had ended already (a call queued again
 * by the reconciler or taken back from a node, whose first run also finished) changes nothing: it
 * is a duplicate, counted in `reconciled.duplicates` in Redis.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../config.js';
import { SkiffError, type ErrorBody, type ErrorCode } from '../errors.js';
import type { Database } from '../db/database.js';
import { DeadLetters } from '../db/dead-letters.js';
import type { InvocationRecords } from '../db/invocation-records.js';
import type { InvocationJob, InvocationOutcome } from '../queue/jobs.js';
import { keySpace } from '../queue/names.js';
import { recordBase } from './record-base.js';

export interface AsyncCallDeps {
  /** The shared invocation queue, for retries. */
  queue: Queue<InvocationJob>;
  records: InvocationRecords;
  deadLetters: DeadLetters;
  /** Retries of a function that set no maximumRetryAttempts. */
  retries: number;
  backoffMs: number;
  /** Largest age of an event, for a function that set no maximumEventAgeSeconds. */
  maxEventAgeSeconds: number;
  /** Counts a duplicate run (see above). */
  countDuplicate?: () => Promise<unknown>;
  /** How long a retried call may wait for a worker, as for a new call. */
  queueWaitMs: number;
  /** Largest result kept in a record, in bytes of JSON. */
  resultLimitBytes: number;
}

/** Failures that a new attempt would meet again. */
const NOT_RETRIED: ReadonlySet<ErrorCode> = new Set(['FunctionResponseTooLarge']);

/** The outcome as it is recorded: a success whose result is over the limit is a failure. */
function bounded(outcome: InvocationOutcome, limitBytes: number): InvocationOutcome {
  if (!outcome.ok) return outcome;
  const json = JSON.stringify(outcome.value) ?? 'null';
  if (json.length <= limitBytes / 3) return outcome; // a character is at most 3 bytes
  const bytes = Buffer.byteLength(json);
  if (bytes <= limitBytes) return outcome;
  const error = new SkiffError(
    'FunctionResponseTooLarge',
    `the result is ${bytes} bytes of JSON, over the limit of ${limitBytes} bytes for an asynchronous call`,
  );
  return { id: outcome.id, ok: false, error: error.toBody(), cold: outcome.cold, workerId: outcome.workerId };
}

export type AsyncEnd = 'succeeded' | 'retrying' | 'dead' | 'duplicate';

/** How old an event may be before it is not run again, in ms. */
export function maxEventAgeMs(deps: Pick<AsyncCallDeps, 'maxEventAgeSeconds'>, job: Pick<InvocationJob, 'fn'>): number {
  return (job.fn.maximumEventAgeSeconds ?? deps.maxEventAgeSeconds) * 1000;
}

/** The error a call too old to run again is dead-lettered with. */
export function tooOldError(ageMs: number, maxAgeMs: number, last?: ErrorBody): ErrorBody {
  const why = `the event is ${Math.round(ageMs / 1000)} s old, past the function's maximumEventAgeSeconds (${maxAgeMs / 1000} s): it is not run again`;
  return last ? { ...last, message: `${last.message} (${why})` } : new SkiffError('Unavailable', why).toBody();
}

export async function finishAsync(deps: AsyncCallDeps, job: InvocationJob, given: InvocationOutcome, durationMs?: number): Promise<AsyncEnd> {
  const outcome = bounded(given, deps.resultLimitBytes);
  const base = {
    ...recordBase(job),
    async: true,
    ...(outcome.cold === undefined ? {} : { cold: outcome.cold }),
    ...(outcome.workerId === undefined ? {} : { workerId: outcome.workerId }),
    ...(durationMs === undefined ? {} : { durationMs }),
  };
  const duplicate = async (): Promise<AsyncEnd> => {
    await deps.countDuplicate?.().catch(() => undefined); // a count, never worth failing the job for
    return 'duplicate';
  };
  if (outcome.ok) {
    if (!(await deps.records.write({ ...base, status: 'succeeded', result: outcome.value, attempt: job.attempt }))) return duplicate();
    return 'succeeded';
  }
  const retries = job.fn.maximumRetryAttempts ?? deps.retries;
  let error = outcome.error;
  if (job.attempt <= retries && !NOT_RETRIED.has(outcome.error.code)) {
    const delay = deps.backoffMs * 2 ** (job.attempt - 1);
    const now = Date.now();
    const age = now + delay - (job.acceptedAt ?? job.enqueuedAt);
    const maxAge = maxEventAgeMs(deps, job);
    if (age <= maxAge) {
      // Still on its way: the record shows the last error while it waits for the next attempt.
      if (!(await deps.records.write({ ...base, status: 'queued', error: outcome.error, attempt: job.attempt + 1 }))) return duplicate();
      await deps.queue.add(
        'invoke',
        { ...job, attempt: job.attempt + 1, enqueuedAt: now + delay, startBy: now + delay + deps.queueWaitMs },
        { jobId: `${job.id}-attempt-${job.attempt + 1}`, delay },
      );
      return 'retrying';
    }
    error = tooOldError(age, maxAge, outcome.error);
  }
  if (!(await deps.records.write({ ...base, status: 'failed', error, attempt: job.attempt }))) return duplicate();
  await deps.deadLetters.add({ id: job.id, functionName: job.fn.name, functionVersion: job.fn.version, event: job.event, error, attempts: job.attempt });
  return 'dead';
}

/** The dependencies above, made from the configuration (a worker's and a scheduler's). */
export function openAsyncCalls(
  config: Readonly<Config>,
  connection: Redis,
  records: InvocationRecords,
  db: Database,
): AsyncCallDeps & { close(): Promise<void> } {
  const keys = keySpace(config.keyPrefix);
  const queue = new Queue<InvocationJob>(keys.invocationQueue, {
    connection,
    prefix: keys.bullPrefix,
    defaultJobOptions: { removeOnComplete: true, removeOnFail: 1000 },
  });
  return {
    queue,
    records,
    deadLetters: new DeadLetters(db),
    retries: config.asyncRetries.retries,
    backoffMs: config.asyncRetries.backoffMs,
    maxEventAgeSeconds: config.asyncRetries.maxEventAgeSeconds,
    countDuplicate: () => connection.hincrby(keys.reconciled, 'duplicates', 1),
    queueWaitMs: config.gateway.queueWaitMs,
    resultLimitBytes: config.gateway.asyncResultLimitBytes,
    close: () => queue.close(),
  };
}
