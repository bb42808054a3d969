/**
 * How an asynchronous call ends, wherever it ends (a worker ran it, or no worker could): a
 * success is recorded; a failure is run again after a growing delay (1×, 2×, 4× backoff) while
 * attempts remain, then recorded as failed and kept in the dead-letter list to be re-driven.
 * The record is written before this returns, so the job can be acknowledged safely after.
 * A result larger than the record keeps fails the call with FunctionResponseTooLarge, and that
 * failure is not retried: the same code would return the same result.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../config.js';
import { SkiffError, type ErrorCode } from '../errors.js';
import type { Database } from '../db/database.js';
import { DeadLetters } from '../db/dead-letters.js';
import type { InvocationRecords } from '../db/invocation-records.js';
import { recordBase, type InvocationJob, type InvocationOutcome } from './jobs.js';
import { keySpace } from './names.js';

export interface AsyncCallDeps {
  /** The shared invocation queue, for retries. */
  queue: Queue<InvocationJob>;
  records: InvocationRecords;
  deadLetters: DeadLetters;
  retries: number;
  backoffMs: number;
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
  const error = new SkiffError('FunctionResponseTooLarge', `the result is ${bytes} bytes of JSON, over the limit of ${limitBytes} bytes for an asynchronous call`);
  return { id: outcome.id, ok: false, error: error.toBody(), cold: outcome.cold, workerId: outcome.workerId };
}

export type AsyncEnd = 'succeeded' | 'retrying' | 'dead';

export async function finishAsync(deps: AsyncCallDeps, job: InvocationJob, given: InvocationOutcome, durationMs?: number): Promise<AsyncEnd> {
  const outcome = bounded(given, deps.resultLimitBytes);
  const base = {
    ...recordBase(job),
    async: true,
    ...(outcome.cold === undefined ? {} : { cold: outcome.cold }),
    ...(outcome.workerId === undefined ? {} : { workerId: outcome.workerId }),
    ...(durationMs === undefined ? {} : { durationMs }),
  };
  if (outcome.ok) {
    await deps.records.write({ ...base, status: 'succeeded', result: outcome.value });
    return 'succeeded';
  }
  if (job.attempt <= deps.retries && !NOT_RETRIED.has(outcome.error.code)) {
    const delay = deps.backoffMs * 2 ** (job.attempt - 1);
    const now = Date.now();
    await deps.queue.add(
      'invoke',
      { ...job, attempt: job.attempt + 1, enqueuedAt: now + delay, startBy: now + delay + deps.queueWaitMs },
      { jobId: `${job.id}-attempt-${job.attempt + 1}`, delay },
    );
    // Still on its way: the record shows the last error while it waits for the next attempt.
    await deps.records.write({ ...base, status: 'queued', error: outcome.error });
    return 'retrying';
  }
  await deps.deadLetters.add({ id: job.id, functionName: job.fn.name, functionVersion: job.fn.version, event: job.event, error: outcome.error, attempts: job.attempt });
  await deps.records.write({ ...base, status: 'failed', error: outcome.error });
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
    queueWaitMs: config.gateway.queueWaitMs,
    resultLimitBytes: config.gateway.asyncResultLimitBytes,
    close: () => queue.close(),
  };
}
