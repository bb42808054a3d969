/**
 * The bytes of a streamed call (a function URL of a `RESPONSE_STREAM` function) on their way from
 * the worker running it to the gateway waiting for it: a Redis stream per call,
 * `keys.responseStream(id)`, which only streamed calls make (a buffered call's outcome travels as
 * before, replies.ts). Entries, in order: one `head` (the content type), `data` entries, one `end`.
 * The worker writes `end` before it publishes the call's outcome, so a gateway that has the
 * outcome finds every entry already there. Bounded: the worker stops a stream past its limit
 * (SKIFF_STREAM_LIMIT_BYTES), writes coalesce while one is in flight (entries are few however small
 * the writes), and every write renews the key's short life, so a stream its gateway gave up on is
 * gone soon after its last write; the gateway deletes it once read.
 */
import type { Redis } from 'ioredis';

/** A stream nobody reads is gone this long after its last write. */
export const RESPONSE_STREAM_TTL_MS = 60_000;

export type ResponseStreamEntry = { kind: 'head'; contentType: string } | { kind: 'data'; data: Buffer } | { kind: 'end' };

/** Writes one call's stream: `write` never waits (writes queue and coalesce); `end` waits for all. */
export class ResponseStreamWriter {
  private queued: Buffer[] = [];
  private head: string | undefined;
  private flushing: Promise<void> | undefined;
  private failure: Error | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly key: string,
  ) {}

  /** `contentType` comes with the stream's first write. */
  write(data: Buffer, contentType?: string): void {
    if (contentType !== undefined) this.head = contentType;
    if (data.length > 0) this.queued.push(data);
    this.flushing ??= this.flush().finally(() => (this.flushing = undefined));
  }

  /** Writes `end` after everything written; rejects if any write to Redis failed. */
  async end(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.failure) throw this.failure;
    await this.redis.multi().xadd(this.key, '*', 'e', '1').pexpire(this.key, RESPONSE_STREAM_TTL_MS).exec();
  }

  private async flush(): Promise<void> {
    while (!this.failure && (this.head !== undefined || this.queued.length > 0)) {
      const batch = this.redis.multi();
      if (this.head !== undefined) batch.xadd(this.key, '*', 'h', this.head);
      if (this.queued.length > 0) batch.xadd(this.key, '*', 'd', Buffer.concat(this.queued));
      this.head = undefined;
      this.queued = [];
      batch.pexpire(this.key, RESPONSE_STREAM_TTL_MS);
      try {
        const results = await batch.exec();
        const failed = results?.find(([error]) => error !== null)?.[0];
        if (results === null || failed) throw failed ?? new Error('the transaction was discarded');
      } catch (error) {
        this.failure = new Error(`could not write the response stream ${this.key} to Redis`, { cause: error });
      }
    }
  }
}

/**
 * The entries after `after` ('0' for all), waiting up to `blockMs` for one when given (on a
 * connection of its own: a blocking read holds its connection); null when none came.
 */
export async function readResponseStream(
  redis: Redis,
  key: string,
  after: string,
  blockMs?: number,
): Promise<{ last: string; entries: ResponseStreamEntry[] } | null> {
  const reply =
    blockMs === undefined
      ? await redis.xreadBuffer('COUNT', 256, 'STREAMS', key, after)
      : await redis.xreadBuffer('COUNT', 256, 'BLOCK', blockMs, 'STREAMS', key, after);
  const items = reply?.[0]?.[1];
  if (!items || items.length === 0) return null;
  const entries: ResponseStreamEntry[] = [];
  for (const [, fields] of items) {
    const [name, value] = fields;
    const field = name?.toString();
    if (field === 'h' && value) entries.push({ kind: 'head', contentType: value.toString() });
    else if (field === 'd' && value) entries.push({ kind: 'data', data: value });
    else if (field === 'e') entries.push({ kind: 'end' });
  }
  const lastItem = items[items.length - 1];
  return { last: lastItem ? lastItem[0].toString() : after, entries };
}

export async function dropResponseStream(redis: Redis, key: string): Promise<void> {
  await redis.del(key);
}
