/**
 * The consumer of this node's straight-calls stream (infra/queue/straight-calls.ts): the calls
 * gateways send straight to its warm instances. Reads them in batches, as many as it has call
 * slots free, runs each (the node queue consumer's `run`, the same as a placed call's), and
 * acknowledges each entry once the call is answered. On stop it ends its read, lets the running
 * calls finish, and hands what is left on the stream to the shared queue (recovery.ts).
 */
import type { Redis } from 'ioredis';
import type { Logger } from '../../infra/log.js';
import type { InvocationJob } from '../../infra/queue/jobs.js';
import type { KeySpace } from '../../infra/queue/names.js';
import { finishStraight, isMissingGroup, openStraightCalls, readStraight, type StraightCall } from '../../infra/queue/straight-calls.js';

export interface StraightConsumerOptions {
  id: string;
  keys: KeySpace;
  /** Commands: acknowledging entries, making the stream again. */
  redis: Redis;
  /** The connection its reads block on (a `blocking` one); the consumer closes it when it stops. */
  connection: Redis;
  /** Straight calls run at once. */
  concurrency: number;
  /** Runs one call to its end (answered and recorded). */
  run(job: InvocationJob): Promise<void>;
  log: Logger;
}

/** Longest a read waits for a call; a read returns as soon as one arrives. */
const READ_BLOCK_MS = 5_000;
/** Most entries read at once. */
const READ_BATCH = 64;
/** Pause before reading again after a failed read (Redis away, say). */
const READ_RETRY_MS = 200;

export class StraightConsumer {
  private stopping = false;
  private loop: Promise<void> | undefined;
  private readonly running = new Set<Promise<void>>();
  private slotFreed: (() => void) | undefined;

  constructor(private readonly o: StraightConsumerOptions) {}

  /** Makes the stream (and its group) if missing, then reads it in the background. */
  async start(): Promise<void> {
    await openStraightCalls(this.o.redis, this.o.keys, this.o.id);
    this.loop = this.read();
  }

  /** Ends the read under way, waits for the running calls; the stream's rest is the caller's to hand back. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.slotFreed?.();
    this.o.connection.disconnect();
    await this.loop;
    await Promise.all(this.running);
  }

  private async read(): Promise<void> {
    const o = this.o;
    while (!this.stopping) {
      const free = o.concurrency - this.running.size;
      if (free <= 0) {
        await new Promise<void>((resolve) => (this.slotFreed = resolve));
        continue;
      }
      let calls: StraightCall[];
      try {
        calls = await readStraight(o.connection, o.keys, o.id, o.id, Math.min(free, READ_BATCH), READ_BLOCK_MS);
      } catch (error) {
        if (this.stopping) return;
        if (isMissingGroup(error)) {
          // Redis lost the stream (restarted empty, wiped): make it again and read on.
          o.log.warn({ worker: o.id }, 'the straight-calls stream was gone; making it again');
          await openStraightCalls(o.redis, o.keys, o.id).catch((again: unknown) => o.log.warn({ err: again }, 'could not make the straight-calls stream'));
        } else {
          o.log.warn({ err: error }, 'reading straight calls failed; reading again');
        }
        await new Promise((resolve) => setTimeout(resolve, READ_RETRY_MS));
        continue;
      }
      for (const call of calls) this.runOne(call);
    }
  }

  private runOne(call: StraightCall): void {
    const o = this.o;
    const done: Promise<void> = o
      .run(call.job)
      .catch((error: unknown) => o.log.error({ err: error, invocation: call.job.id }, 'a straight call failed in the worker'))
      // Answered (or failed for good): off the pending list and the stream.
      .then(() => finishStraight(o.redis, o.keys, o.id, [call.entryId]))
      .catch((error: unknown) => o.log.warn({ err: error, invocation: call.job.id }, 'could not acknowledge a straight call'))
      .finally(() => {
        this.running.delete(done);
        const wake = this.slotFreed;
        this.slotFreed = undefined;
        wake?.();
      });
    this.running.add(done);
  }
}
