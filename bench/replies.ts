/**
 * What the reply stream costs beside the pub/sub channel it replaced: one sync outcome from the
 * process that ran the call to the gateway waiting for it, timed from the send to its arrival,
 * over each transport on the same Redis, interleaved reply by reply so the machine's noise
 * falls on both alike. The stream is the platform's own code (sendOutcome, ReplyReader); the
 * baseline is a plain PUBLISH to a subscribed connection, as replies went before. The Redis
 * commands each reply costs are counted from Redis' own INFO commandstats.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { nanoid } from 'nanoid';
import { keySpace } from '../infra/queue/names.js';
import { ReplyReader, sendOutcome, type ReplyMessage } from '../infra/queue/replies.js';
import type { InvocationOutcome } from '../infra/queue/jobs.js';
import { startRedis } from '../infra/services/redis-server.js';
import { freePort } from '../infra/services/process.js';
import { percentiles, round, type Percentiles } from './stats.js';

export interface ReplyTransportCost {
  streamMs: Percentiles;
  pubsubMs: Percentiles;
  /** Redis commands per reply, writer and reader together, one reply at a time. */
  streamCommandsPerReply: number;
  pubsubCommandsPerReply: number;
  /** The same with {@link BURST} replies sent at once (the reader takes them in batches). */
  streamCommandsPerReplyInBursts: number;
  pubsubCommandsPerReplyInBursts: number;
}

/** Replies in flight at once for the burst figures (as many calls waiting on one gateway). */
const BURST = 32;

export async function replyTransportCost(redisUrl: string, count: number, warmup = 500): Promise<ReplyTransportCost> {
  const keys = keySpace(`bench-replies-${nanoid(6)}`);
  const writer = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const readerConnection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const subscriber = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const admin = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const arrived = new Map<string, () => void>();
  const onArrival = (message: ReplyMessage): void => arrived.get(message.id)?.();
  const reader = new ReplyReader({
    key: keys.replies('bench'),
    connection: readerConnection,
    redis: writer,
    onReply: onArrival,
    // A failed read is retried by the reader; a reply it never delivers stalls the bench, which says so.
    onError: (error) => console.error('bench: reading the reply stream failed', error),
  });
  const channel = `${keys.replies('bench')}:pubsub`;
  subscriber.on('message', (_channel: string, message: string) => onArrival(JSON.parse(message) as InvocationOutcome));
  try {
    await reader.start();
    await subscriber.subscribe(channel);
    const outcome = (id: string): InvocationOutcome => ({
      id,
      ok: true,
      value: { statusCode: 200, body: '{"message":"hello from a warm instance"}' },
      cold: false,
      workerId: 'bench',
      timings: { queuedMs: 0, acquireMs: 0, runMs: 1 },
    });
    const timed = async (send: (id: string) => Promise<unknown>): Promise<number> => {
      const id = nanoid();
      const started = performance.now();
      const landed = new Promise<void>((resolve) => arrived.set(id, resolve));
      await send(id);
      await landed;
      arrived.delete(id);
      return performance.now() - started;
    };
    const viaStream = (id: string): Promise<number> => sendOutcome(writer, keys, keys.replies('bench'), outcome(id));
    const viaPubsub = (id: string): Promise<number> => writer.publish(channel, JSON.stringify(outcome(id)));
    const stream: number[] = [];
    const pubsub: number[] = [];
    for (let i = 0; i < warmup; i++) {
      await timed(viaStream);
      await timed(viaPubsub);
    }
    const calls = async (): Promise<number> => {
      const stats = (await admin.info('commandstats')).split('\n');
      return stats.reduce((sum, line) => sum + Number(/calls=(\d+)/.exec(line)?.[1] ?? 0), 0);
    };
    // Commands per reply, each transport alone (the INFO itself is one command, taken off).
    const countOf = async (send: (id: string) => Promise<unknown>, n: number): Promise<number> => {
      const before = await calls();
      for (let i = 0; i < n; i++) await timed(send);
      return round((await calls()) - before - 1) / n;
    };
    const streamCommandsPerReply = round(await countOf(viaStream, 200), 2);
    const pubsubCommandsPerReply = round(await countOf(viaPubsub, 200), 2);
    const inBursts = async (send: (id: string) => Promise<unknown>, rounds: number): Promise<number> => {
      const before = await calls();
      for (let i = 0; i < rounds; i++) await Promise.all(Array.from({ length: BURST }, () => timed(send)));
      return round(((await calls()) - before - 1) / (rounds * BURST), 2);
    };
    const streamCommandsPerReplyInBursts = await inBursts(viaStream, 20);
    const pubsubCommandsPerReplyInBursts = await inBursts(viaPubsub, 20);
    for (let i = 0; i < count; i++) {
      stream.push(await timed(viaStream));
      pubsub.push(await timed(viaPubsub));
    }
    return {
      streamMs: percentiles(stream),
      pubsubMs: percentiles(pubsub),
      streamCommandsPerReply,
      pubsubCommandsPerReply,
      streamCommandsPerReplyInBursts,
      pubsubCommandsPerReplyInBursts,
    };
  } finally {
    await reader.stop();
    await Promise.all([writer.quit(), subscriber.quit(), admin.quit()]);
  }
}

/** `npm run bench -- --replies`: the figure alone, on a Redis of its own, printed as one line each. */
export async function replyTransportBench(count = 5000): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-bench-replies-'));
  const redis = await startRedis({ dir, port: await freePort(), persist: false });
  try {
    const r = await replyTransportCost(redis.url, count);
    const ratio = (a: number, b: number): string => `${round(a / b, 2)}×`;
    console.log(
      `reply, one at a time (ms): stream p50 ${r.streamMs.p50} p99 ${r.streamMs.p99}; pub/sub p50 ${r.pubsubMs.p50} p99 ${r.pubsubMs.p99}; ${ratio(r.streamMs.p50, r.pubsubMs.p50)} at p50`,
    );
    console.log(
      `Redis commands per reply: stream ${r.streamCommandsPerReply} (one at a time), ${r.streamCommandsPerReplyInBursts} (${BURST} at once); pub/sub ${r.pubsubCommandsPerReply}, ${r.pubsubCommandsPerReplyInBursts}`,
    );
  } finally {
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
