/**
 * A call a gateway sent straight to a node (the short warm path: `warm` set) runs there only on an
 * instance free at once; when the instance was taken meanwhile (another gateway counted on the
 * same slot), the node hands the call to the shared queue for a scheduler to place, as the
 * gateway would have queued it — not a cold start on this node that no scheduler chose. The node
 * queue's consumer (worker/calls/node-queue.ts) on the real Redis the test runner starts; the
 * instance set is faked (it has no free instance), as are the records nothing here writes.
 */
import t from 'tap';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { nanoid } from 'nanoid';
import { trace } from '@opentelemetry/api';
import type { InvocationRecords } from '../../infra/db/invocation-records.js';
import type { AsyncCallDeps } from '../../infra/calls/async-calls.js';
import { createLogger } from '../../infra/log.js';
import { nodeJobId } from '../../infra/queue/ids.js';
import type { InvocationJob } from '../../infra/queue/jobs.js';
import { keySpace } from '../../infra/queue/names.js';
import type { InstanceSet } from '../../worker/instances/instance-set.js';
import { NodeQueueConsumer } from '../../worker/calls/node-queue.js';
import { eventually } from '../support/api.js';
import { functionVersion } from '../support/function-version.js';

const url = process.env.REDIS_URL;

t.test(
  'a straight call that finds no free instance goes to the shared queue, unmarked, for a scheduler',
  { skip: url ? false : 'REDIS_URL is not set (run with the test runner)' },
  async (t) => {
    const keys = keySpace(`test-straight-${nanoid(8)}`);
    const redis = new Redis(url ?? '', { maxRetriesPerRequest: null });
    const queueConnection = new Redis(url ?? '', { maxRetriesPerRequest: null });
    let asked = 0;
    const instances = {
      takeFree: () => {
        asked++;
        return undefined;
      },
      acquire: () => Promise.reject(new Error('a straight call must not make or wait for an instance')),
    } as unknown as InstanceSet;
    const consumer = new NodeQueueConsumer({
      id: 'n1',
      keys,
      redis,
      queueConnection,
      concurrency: 1,
      instances,
      records: { record: () => t.fail('nothing is recorded for a call handed on') } as unknown as InvocationRecords,
      asyncCalls: {} as AsyncCallDeps,
      tracer: trace.getTracer('test'),
      log: createLogger('test', 'warn'),
    });
    const nodeQueue = new Queue<InvocationJob>(keys.nodeQueue('n1'), { connection: redis, prefix: keys.bullPrefix });
    const shared = new Queue<InvocationJob>(keys.invocationQueue, { connection: redis, prefix: keys.bullPrefix });
    t.teardown(async () => {
      await consumer.stop();
      await Promise.all([nodeQueue.obliterate({ force: true }), shared.obliterate({ force: true })]);
      await Promise.all([nodeQueue.close(), shared.close()]);
      await Promise.all([redis.quit(), queueConnection.quit()]);
    });
    await consumer.start();

    const now = Date.now();
    const call: InvocationJob = {
      id: 'call1',
      fn: functionVersion(),
      event: { n: 1 },
      replyTo: keys.replies('g1'),
      enqueuedAt: now,
      startBy: now + 60_000,
      attempt: 1,
      trace: {},
      tenantLimits: { maxInstances: 10, maxMemoryMb: 4096 },
    };
    await nodeQueue.add('invoke', { ...call, warm: true }, { jobId: nodeJobId(call) });
    let handed: InvocationJob | undefined;
    t.ok(
      await eventually(async () => (handed = (await shared.getJobs(['waiting'])).map((j) => j.data).find((d) => d.id === 'call1')) !== undefined),
      'the call is on the shared queue',
    );
    t.equal(asked, 1, 'the node looked for a free instance once');
    t.same(handed, call, 'as the gateway would have queued it: same reply stream, deadline and limits, and no longer marked straight');
    t.equal(await redis.exists(keys.replies('g1')), 0, 'nothing was answered: the call is still to run');
  },
);
