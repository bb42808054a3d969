/**
 * Taking calls back from a worker node's queue:
 *  - calls placed on it but not started go back to the shared queue, to be placed again;
 *  - calls it started, if the node is gone: asynchronous ones, and synchronous ones of functions
 *    deployed as idempotent, are placed again (run once more: async calls count as idempotent);
 *    other synchronous ones are answered `Unavailable` (running a call twice behind its
 *    caller's back is worse than an honest error).
 * Used by a draining worker for its own queue (waiting calls only) and by the scheduler for a
 * node whose heartbeat stopped or that an operator removed. The node must already be out of the
 * fleet's placements (an order or a draining state); a scheduler with an older view may still
 * place a call on it for a moment, so the queue is swept again after `settleMs`.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { SkiffError } from '../infra/errors.js';
import type { InvocationRecords } from '../infra/db/invocation-records.js';
import { recordBase, type InvocationJob, type InvocationOutcome } from '../infra/queue/jobs.js';
import type { KeySpace } from '../infra/queue/names.js';

/** A fresh shared-queue id for a call taken back (its earlier jobs may still exist). */
const backId = (data: InvocationJob): string => `${data.id}-${data.attempt}-back-${Date.now()}`;

export interface RecoveryResult {
  replaced: number;
  answered: number;
}

export async function takeBackCalls(
  o: { redis: Redis; keys: KeySpace; records: InvocationRecords },
  nodeId: string,
  includeStarted: boolean,
  settleMs = 600,
): Promise<RecoveryResult> {
  const opts = { connection: o.redis, prefix: o.keys.bullPrefix };
  const nodeQueue = new Queue<InvocationJob>(o.keys.nodeQueue(nodeId), opts);
  const shared = new Queue<InvocationJob>(o.keys.invocationQueue, { ...opts, defaultJobOptions: { removeOnComplete: true, removeOnFail: 1000 } });
  const result: RecoveryResult = { replaced: 0, answered: 0 };
  const sweep = async (): Promise<void> => {
    for (const job of await nodeQueue.getJobs(['waiting', 'delayed', 'prioritized', 'waiting-children'])) {
      await shared.add('invoke', job.data, { jobId: backId(job.data) });
      await job.remove();
      result.replaced++;
    }
  };
  try {
    await sweep();
    await new Promise((resolve) => setTimeout(resolve, settleMs));
    await sweep();
    if (!includeStarted) return result;
    for (const job of await nodeQueue.getJobs(['active'])) {
      const data = job.data;
      if (data.replyTo === null || data.fn.idempotent) {
        // The waiting gateway still waits on the same reply channel.
        await shared.add('invoke', data, { jobId: backId(data) });
        result.replaced++;
      } else {
        const error = new SkiffError('Unavailable', `the worker node running this call (${nodeId}) was lost; the call may not have run`);
        const outcome: InvocationOutcome = { id: data.id, ok: false, error: error.toBody() };
        await o.redis.publish(data.replyTo, JSON.stringify(outcome));
        o.records.record({ ...recordBase(data), async: false, status: 'failed', error: outcome.error });
        result.answered++;
      }
    }
    // The node is gone: nothing of its queue is needed any more (active jobs included).
    await nodeQueue.obliterate({ force: true });
    return result;
  } finally {
    await Promise.all([nodeQueue.close(), shared.close()]);
  }
}
