/**
 * How a synchronous call ends, wherever it ends (a worker ran it, the scheduler refused it, a lost
 * node's call was taken back): its outcome is appended to the reply stream of the gateway waiting
 * for it (infra/queue/replies.ts), then its record is queued for the next batched write to PostgreSQL.
 * The asynchronous counterpart is `finishAsync` (async-calls.ts).
 */
import type { Redis } from 'ioredis';
import type { InvocationRecord, InvocationRecords } from '../db/invocation-records.js';
import type { InvocationJob, InvocationOutcome } from '../queue/jobs.js';
import type { KeySpace } from '../queue/names.js';
import { sendOutcome } from '../queue/replies.js';
import { recordBase } from './record-base.js';

export interface SyncCallDeps {
  redis: Redis;
  keys: KeySpace;
  records: InvocationRecords;
}

export interface SyncEnd {
  /** How long the call ran, when it ran. */
  durationMs?: number;
  /** The result is kept in the record only while the outcome's JSON is at most this many bytes
   *  (the caller got it whole either way); absent: always. */
  resultLimitBytes?: number;
}

/** Sends `outcome` to the call's reply stream and records it (status, result or error, cold, node). */
export async function finishSync(deps: SyncCallDeps, job: InvocationJob, outcome: InvocationOutcome, end: SyncEnd = {}): Promise<void> {
  if (job.replyTo === null) throw new TypeError(`finishSync: call ${job.id} is asynchronous (finishAsync ends it)`);
  // A large outcome waits in a key and the reply points to it: never one big stream entry.
  const bytes = await sendOutcome(deps.redis, deps.keys, job.replyTo, outcome);
  const record: InvocationRecord = {
    ...recordBase(job),
    async: false,
    status: outcome.ok ? 'succeeded' : 'failed',
    ...(outcome.ok ? (bytes <= (end.resultLimitBytes ?? Infinity) ? { result: outcome.value } : {}) : { error: outcome.error }),
    ...(outcome.cold === undefined ? {} : { cold: outcome.cold }),
    ...(outcome.workerId === undefined ? {} : { workerId: outcome.workerId }),
    ...(end.durationMs === undefined ? {} : { durationMs: end.durationMs }),
  };
  deps.records.record(record);
}
