/**
 * Taking calls back from a worker node's queue:
 *  - calls placed on it but not started go back to the shared queue, to be placed again;
 *  - calls it started, if the node is gone: an asynchronous one ends as a failed attempt
 *    (`Unavailable`) and is retried after its backoff like any failure, its attempts counted, so a
 *    call that kills every node it runs on ends in the dead-letter list instead of going round for
 *    ever; a synchronous one of a function deployed as idempotent is placed again (its gateway
 *    still waits); other synchronous ones are answered `Unavailable` (running a call twice behind
 *    its caller's back is worse than an honest error).
 * Used by a draining worker for its own queue (waiting calls only), by a scheduler's failover
 * (scheduler/failover.ts) for a node whose heartbeat stopped or that an operator removed, and by a worker that starts again under the
 * same id for the calls its killed predecessor had started ({@link reclaimStartedCalls}: faster
 * than waiting for their locks to expire, and its heartbeat never stopped long enough for the
 * scheduler to see the node gone). For the first two the node must already be out of the fleet's
 * placements (an order or a draining state); a scheduler with an older view may still place a
 * call on it for a moment, so the queue is swept again after `settleMs`.
 *
 * The same holds for the calls gateways sent straight to the node's warm instances (its stream,
 * infra/queue/straight-calls.ts): entries never read are placed again like waiting calls; entries
 * read and not answered (the group's pending list) are calls it started.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { SkiffError } from '../errors.js';
import type { InvocationRecords } from '../db/invocation-records.js';
import { finishAsync, type AsyncCallDeps } from '../calls/async-calls.js';
import type { InvocationJob } from '../queue/jobs.js';
import type { KeySpace } from '../queue/names.js';
import { finishSync } from '../calls/sync-calls.js';
import { closeForTakeBack, finishStraight, pendingCalls, takeUnread, toPlace, type StraightCall } from '../queue/straight-calls.js';

/** A fresh shared-queue id for a call taken back (its earlier jobs may still exist). */
const backId = (data: InvocationJob): string => `${data.id}-${data.attempt}-back-${Date.now()}`;

export interface RecoveryResult {
  /** Calls placed again (waiting ones, and started synchronous ones of idempotent functions). */
  replaced: number;
  /** Started asynchronous calls ended as a failed attempt: retried, or dead-lettered. */
  retried: number;
  /** Started synchronous calls answered `Unavailable`. */
  answered: number;
}

export interface RecoveryDeps {
  redis: Redis;
  keys: KeySpace;
  records: InvocationRecords;
  asyncCalls: AsyncCallDeps;
}

/** What becomes of one call a lost run had started (see the header). */
async function takeBackStarted(o: RecoveryDeps, shared: Queue<InvocationJob>, data: InvocationJob, why: string, result: RecoveryResult): Promise<void> {
  const error = new SkiffError('Unavailable', why);
  if (data.replyTo === null) {
    await finishAsync(o.asyncCalls, data, { id: data.id, ok: false, error: error.toBody() });
    result.retried++;
  } else if (data.fn.idempotent) {
    await shared.add('invoke', toPlace(data), { jobId: backId(data) }); // placed by a scheduler now, wherever it goes
    result.replaced++;
  } else {
    await finishSync(o, data, { id: data.id, ok: false, error: error.toBody() });
    result.answered++;
  }
}

const sharedQueue = (o: RecoveryDeps): Queue<InvocationJob> =>
  new Queue<InvocationJob>(o.keys.invocationQueue, {
    connection: o.redis,
    prefix: o.keys.bullPrefix,
    defaultJobOptions: { removeOnComplete: true, removeOnFail: 1000 },
  });

/** Straight calls to be placed by a scheduler instead: onto the shared queue, then off the node's stream. */
async function placeAgain(
  o: RecoveryDeps,
  shared: Queue<InvocationJob>,
  nodeId: string,
  calls: readonly StraightCall[],
  result: RecoveryResult,
  stream?: string,
): Promise<void> {
  for (const { job } of calls) {
    await shared.add('invoke', toPlace(job), { jobId: backId(job) });
    result.replaced++;
  }
  await finishStraight(
    o.redis,
    o.keys,
    nodeId,
    calls.map((c) => c.entryId),
    stream,
  );
}

/**
 * For a node stopping (cleanly, or for a drain) once its running calls have ended: what is left on
 * its straight-calls stream — entries never read, and entries read but never started (a read cut
 * short by the stop) — goes to the shared queue, and the stream is deleted, so gateways send
 * their next calls through a scheduler.
 */
export async function handBackStraightCalls(o: RecoveryDeps, nodeId: string): Promise<RecoveryResult> {
  const shared = sharedQueue(o);
  const result: RecoveryResult = { replaced: 0, retried: 0, answered: 0 };
  try {
    // Closed first, so that an append of a gateway that has not yet seen the node go fails rather than being lost.
    const closed = await closeForTakeBack(o.redis, o.keys, nodeId);
    if (closed === undefined) return result;
    const left = [...(await pendingCalls(o.redis, o.keys, nodeId, closed)), ...(await takeUnread(o.redis, o.keys, nodeId, closed))];
    await placeAgain(o, shared, nodeId, left, result, closed);
    await o.redis.del(closed);
    return result;
  } finally {
    await shared.close();
  }
}

export async function takeBackCalls(o: RecoveryDeps, nodeId: string, includeStarted: boolean, settleMs = 600): Promise<RecoveryResult> {
  const opts = { connection: o.redis, prefix: o.keys.bullPrefix };
  const nodeQueue = new Queue<InvocationJob>(o.keys.nodeQueue(nodeId), opts);
  const shared = sharedQueue(o);
  const result: RecoveryResult = { replaced: 0, retried: 0, answered: 0 };
  const sweep = async (): Promise<void> => {
    for (const job of await nodeQueue.getJobs(['waiting', 'delayed', 'prioritized', 'waiting-children'])) {
      await shared.add('invoke', job.data, { jobId: backId(job.data) });
      await job.remove();
      result.replaced++;
    }
    await placeAgain(o, shared, nodeId, await takeUnread(o.redis, o.keys, nodeId), result);
  };
  try {
    await sweep();
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    await sweep();
    if (!includeStarted) return result;
    const why = `the worker node running this call (${nodeId}) was lost; the call may not have run`;
    for (const job of await nodeQueue.getJobs(['active'])) await takeBackStarted(o, shared, job.data, why, result);
    // The stream closed first, so that no append lands after the last look at it (it would be lost).
    const closed = await closeForTakeBack(o.redis, o.keys, nodeId);
    if (closed !== undefined) {
      await placeAgain(o, shared, nodeId, await takeUnread(o.redis, o.keys, nodeId, closed), result, closed);
      for (const { job } of await pendingCalls(o.redis, o.keys, nodeId, closed)) await takeBackStarted(o, shared, job, why, result);
      await o.redis.del(closed);
    }
    // The node is gone: nothing of its queue is needed any more (active jobs included).
    await nodeQueue.obliterate({ force: true });
    return result;
  } finally {
    await Promise.all([nodeQueue.close(), shared.close()]);
  }
}

/**
 * For a worker starting under `nodeId`, before it takes jobs: the calls its predecessor had
 * started (active jobs of its own queue; the predecessor is dead, since the same id runs once)
 * are taken back as above, and their jobs moved to the failed set. Their locks belonged to the
 * dead process and may last up to BullMQ's lock duration (30 s): token "0" skips BullMQ's lock
 * check, which is what moving a job without holding its lock takes. Calls waiting on the queue
 * stay there for the new run.
 */
export async function reclaimStartedCalls(o: RecoveryDeps, nodeId: string): Promise<RecoveryResult> {
  const nodeQueue = new Queue<InvocationJob>(o.keys.nodeQueue(nodeId), { connection: o.redis, prefix: o.keys.bullPrefix });
  const shared = sharedQueue(o);
  const result: RecoveryResult = { replaced: 0, retried: 0, answered: 0 };
  try {
    const why = `the worker running this call (${nodeId}) stopped and started again; the call may not have run`;
    for (const job of await nodeQueue.getJobs(['active'])) {
      await takeBackStarted(o, shared, job.data, why, result);
      await job.moveToFailed(new Error('taken back: its worker stopped while running it'), '0', false);
    }
    // Straight calls its predecessor had read; those it never read stay for this run.
    const started = await pendingCalls(o.redis, o.keys, nodeId);
    for (const { job } of started) await takeBackStarted(o, shared, job, why, result);
    await finishStraight(
      o.redis,
      o.keys,
      nodeId,
      started.map((c) => c.entryId),
    );
    return result;
  } finally {
    await Promise.all([nodeQueue.close(), shared.close()]);
  }
}
