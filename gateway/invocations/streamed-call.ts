/**
 * A synchronous call whose response may stream: what a `RESPONSE_STREAM` function URL (and the
 * Invoke API's streaming route) makes. The call is dispatched as any other (call.ts: trace,
 * metrics, errors) with an id chosen here, which names the Redis stream its worker writes a
 * streaming handler's bytes to (infra/queue/response-stream.ts); meanwhile the stream is read on
 * a Redis connection of the call's own (a blocking read holds its connection), so a buffered call
 * never pays for any of it.
 *
 * Whichever comes first decides: the stream's head (the handler streams: its bytes are yielded
 * as they come) or the call's outcome (a handler that does not stream, or a call that failed
 * before its first byte: the value, or the error thrown). The worker ends the stream before it
 * publishes the outcome, so once the outcome is in every entry is already in Redis.
 */
import type { Span } from '@opentelemetry/api';
import type { FastifyReply } from 'fastify';
import type { Redis } from 'ioredis';
import { SkiffError } from '../../infra/errors.js';
import { invocationId } from '../../infra/queue/ids.js';
import { dropResponseStream, readResponseStream, type ResponseStreamEntry } from '../../infra/queue/response-stream.js';
import type { GatewayContext } from '../context.js';
import { callFunction, type CallTarget } from './call.js';

export type StreamedAnswer =
  /** The handler answered with a value (it does not stream): as callFunction's. */
  | { streamed: false; value: unknown }
  /**
   * The handler streams: `contentType` is its stream's; `chunks` yields its bytes as they come and
   * throws the call's SkiffError if it fails part way (over SKIFF_STREAM_LIMIT_BYTES:
   * FunctionResponseTooLarge; a timeout, a crash). Iterate it once, to its end or a `return`
   * (breaking out stops reading).
   */
  | { streamed: true; contentType: string; chunks: AsyncIterable<Buffer> };

/** How long one blocking read waits before it checks again that the call is still on. */
const READ_BLOCK_MS = 5_000;

/**
 * Calls `target` asking it to stream. Resolves once it is known whether it streams; rejects with
 * the call's SkiffError when it failed before streaming. Sets `x-skiff-invocation-id` on `reply`.
 */
export async function streamFunction(ctx: GatewayContext, target: CallTarget, event: unknown, span: Span, reply: FastifyReply): Promise<StreamedAnswer> {
  const id = invocationId();
  void reply.header('x-skiff-invocation-id', id);
  const key = ctx.keys.responseStream(id);
  const reader = new StreamReader(ctx.redis, key);
  const answer = callFunction(ctx, target, event, span, reply, id);
  // Settled = the outcome is in; its error, if any, is thrown where it is awaited below.
  const settled = answer.then(
    () => 'settled' as const,
    () => 'settled' as const,
  );
  const first = await reader.next(settled);
  if (first.length === 0 || first[0]?.kind !== 'head') {
    // The outcome came and nothing streamed: a value, or an error before the first byte.
    reader.close();
    return { streamed: false, value: await answer };
  }
  const contentType = first[0].contentType;
  return { streamed: true, contentType, chunks: chunksOf(reader, first.slice(1), settled, answer) };
}

async function* chunksOf(reader: StreamReader, entries: ResponseStreamEntry[], settled: Promise<'settled'>, answer: Promise<unknown>): AsyncGenerator<Buffer> {
  try {
    let batch = entries;
    for (;;) {
      for (const entry of batch) {
        if (entry.kind === 'data') yield entry.data;
        if (entry.kind === 'end') {
          await answer; // a failure part way is the call's error (it throws here)
          return;
        }
      }
      batch = await reader.next(settled);
      if (batch.length === 0) {
        // The outcome came, and no end after what was read: the worker never finished the stream.
        await answer;
        throw new SkiffError('Unavailable', 'the response stream of the call ended without its end mark');
      }
    }
  } finally {
    reader.close();
  }
}

/**
 * Reads one call's stream in order. `next` waits for entries on a connection of its own; once the
 * call's outcome is in, what is left is read without waiting (an empty batch: nothing more).
 */
class StreamReader {
  private connection: Redis | undefined;
  private last = '0';
  private outcomeIn = false;

  constructor(
    private readonly redis: Redis,
    private readonly key: string,
  ) {}

  async next(settled: Promise<'settled'>): Promise<ResponseStreamEntry[]> {
    try {
      return await this.read(settled);
    } catch (error) {
      throw new SkiffError('Unavailable', 'could not read the response stream of the call from Redis', { cause: error });
    }
  }

  private async read(settled: Promise<'settled'>): Promise<ResponseStreamEntry[]> {
    while (!this.outcomeIn) {
      // As a 'blocking' connection (infra/queue/connections.ts): commands wait for the connection,
      // and no command timeout cuts a read that blocks on purpose; the call's own timeout bounds it.
      this.connection ??= this.redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, commandTimeout: undefined });
      const read = readResponseStream(this.connection, this.key, this.last, READ_BLOCK_MS);
      const won = await Promise.race([read, settled]);
      if (won === 'settled') {
        // The blocked read is dropped with its connection; what it would have read is read again below.
        this.outcomeIn = true;
        this.closeConnection();
        break;
      }
      if (won !== null) {
        this.last = won.last;
        return won.entries;
      }
    }
    const rest = await readResponseStream(this.redis, this.key, this.last);
    if (rest === null) return [];
    this.last = rest.last;
    return rest.entries;
  }

  close(): void {
    this.closeConnection();
    void dropResponseStream(this.redis, this.key).catch(() => undefined); // it expires anyway
  }

  private closeConnection(): void {
    this.connection?.disconnect();
    this.connection = undefined;
  }
}
