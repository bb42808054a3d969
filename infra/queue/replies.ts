/**
 * How a synchronous call's outcome gets back to the gateway waiting for it: the one owner of the
 * reply format, both sides. Each gateway reads a Redis stream of its own (`keys.replies(id)`, the
 * jobs' `replyTo`); whoever answers a call appends one entry to it: one plain XADD, the hot path
 * (see {@link sendOutcome} for why it is not a MULTI). A stream, unlike a pub/sub channel, keeps
 * what was written while the gateway's connection was down: the gateway reads on from the last
 * entry it saw once it is back, so a call that ran is answered with its result, not timed out.
 *
 * A large outcome is not put in the stream whole (up to {@link REPLY_STREAM_MAX_LEN} entries of it
 * would sit in Redis' memory): it is written to a key with a short life, and the entry only points
 * to it; the gateway takes the key (GETDEL) when the pointer arrives.
 *
 * The stream lives while its gateway does: the gateway makes it at start, keeps renewing its TTL
 * ({@link REPLY_STREAM_TTL_MS}) and deletes it at stop. An answer appends only to a stream that
 * exists (NOMKSTREAM), so it leaves the TTL to the gateway; if the stream is missing (Redis
 * restarted without it, say: the gateway reads on all the same; or its gateway stopped) the answer
 * makes it with the same TTL in a second round trip, so a late answer for a gateway that is gone
 * leaves a stream that expires.
 */
import type { Redis } from 'ioredis';
import type { InvocationOutcome } from './jobs.js';
import type { KeySpace } from './names.js';
import { whenReady } from './connections.js';

/** Outcomes up to this many bytes of JSON travel in the stream entry itself. */
export const INLINE_REPLY_MAX_BYTES = 64 * 1024;
/** A stored outcome nobody took (its caller gave up) is gone after this. */
export const STORED_REPLY_TTL_MS = 60_000;
/** A reply stream keeps about this many entries (MAXLEN ~): read ones are not deleted one by one. */
export const REPLY_STREAM_MAX_LEN = 10_000;
/** A reply stream whose gateway stopped renewing it is gone after this. */
export const REPLY_STREAM_TTL_MS = 60_000;
/** How often a gateway renews its stream's TTL. */
export const REPLY_STREAM_RENEW_MS = 5_000;
/** The field of an entry holding a reply message; the gateway's own opening entry has another. */
const REPLY_FIELD = 'reply';
const OPEN_FIELD = 'open';
/** Longest a read blocks; a read returns as soon as anything arrives. */
const READ_BLOCK_MS = 5_000;
const READ_COUNT = 512;
/** Pause before reading again after a failed read (the connection is closed, say). */
const READ_RETRY_MS = 100;

/** The message for an outcome that waits in `keys.reply(id)`. */
export interface StoredReply {
  id: string;
  stored: true;
}

export type ReplyMessage = InvocationOutcome | StoredReply;

export function isStoredReply(message: ReplyMessage): message is StoredReply {
  return (message as Partial<StoredReply>).stored === true;
}

const appendArgs = (json: string): [string, number, string, string, string] => ['~', REPLY_STREAM_MAX_LEN, '*', REPLY_FIELD, json];

/**
 * Sends `outcome` to the gateway reading the stream `replyTo`; the size of its JSON in bytes.
 *
 * A small outcome, the hot path, is one plain command: XADD NOMKSTREAM. Not a MULTI (nor any
 * ioredis pipeline) of XADD and PEXPIRE: the worker's connection is one BullMQ shares, with its 64
 * Lua scripts defined as commands, and ioredis copies every one of them onto each new pipeline
 * object; with the transaction's four commands and their promises that is about twice the CPU of
 * the plain XADD, on every call's path, and it was the main part of why the reply stream's warm
 * call was slower than pub/sub in `npm run bench -- --tenancy` (1.7 ms, 2.9 with the MULTI). The
 * TTL is the gateway's to renew; only when the stream is missing does an answer make it, with its
 * TTL (a second round trip, rare).
 */
export async function sendOutcome(redis: Redis, keys: KeySpace, replyTo: string, outcome: InvocationOutcome): Promise<number> {
  const json = JSON.stringify(outcome);
  const bytes = Buffer.byteLength(json);
  if (bytes <= INLINE_REPLY_MAX_BYTES) {
    if ((await redis.xadd(replyTo, 'NOMKSTREAM', 'MAXLEN', ...appendArgs(json))) === null) await makeStreamWith(redis, replyTo, [], json);
    return bytes;
  }
  // A large outcome waits in a key, and the entry points to it (rare, so one MULTI for both): MULTI
  // runs the SET before the XADD, so the key is there when the pointer is read.
  const pointer: StoredReply = { id: outcome.id, stored: true };
  await makeStreamWith(redis, replyTo, [['set', keys.reply(outcome.id), json, 'PX', STORED_REPLY_TTL_MS]], JSON.stringify(pointer));
  return bytes;
}

/** Runs `first`, then appends `entry` to `replyTo` (making the stream if missing) and sets its TTL: one MULTI. */
async function makeStreamWith(redis: Redis, replyTo: string, first: Array<[string, ...Array<string | number>]>, entry: string): Promise<void> {
  const results = await redis.multi([...first, ['xadd', replyTo, 'MAXLEN', ...appendArgs(entry)], ['pexpire', replyTo, REPLY_STREAM_TTL_MS]]).exec();
  const failed = results?.find(([error]) => error !== null)?.[0];
  if (results === null || failed) throw new Error('could not send an outcome to its gateway', { cause: failed ?? undefined });
}

/** The outcome a stored reply points to; undefined if it expired first. Takes the key with it. */
export async function takeStoredOutcome(redis: Redis, keys: KeySpace, reply: StoredReply): Promise<InvocationOutcome | undefined> {
  const json = await redis.getdel(keys.reply(reply.id));
  return json === null ? undefined : (JSON.parse(json) as InvocationOutcome);
}

/** Frees a stored outcome nobody will read (its caller gave up). */
export async function dropStoredOutcome(redis: Redis, keys: KeySpace, reply: StoredReply): Promise<void> {
  await redis.del(keys.reply(reply.id));
}

export interface ReplyReaderOptions {
  /** The stream to read (`keys.replies(gatewayId)`). */
  key: string;
  /** The reader's own connection, a `blocking` one (infra/queue/connections.ts): it waits in
   *  XREAD BLOCK, which a command timeout would cut short, and it waits for Redis while it is away
   *  (the read in flight is sent again after a reconnect). Closed by {@link ReplyReader.stop}. */
  connection: Redis;
  /** A command connection, for making the stream, renewing its TTL and deleting it. */
  redis: Redis;
  /** Each reply message, in the order they were written. */
  onReply(message: ReplyMessage): void;
  /** A read or a renewal failed; the reader carries on. */
  onError(error: Error): void;
}

/**
 * Reads a gateway's reply stream in a loop, from where it started on (the entry it made at
 * {@link start}), always on from the last entry read: a reconnect, however long, loses nothing
 * Redis still holds. One reader per stream.
 */
export class ReplyReader {
  private lastId = '$';
  private stopping = false;
  private loop: Promise<void> | undefined;
  private renewal: NodeJS.Timeout | undefined;

  constructor(private readonly o: ReplyReaderOptions) {}

  /**
   * Makes the stream and starts reading it once the reader's connection is up; every reply
   * written after this resolves is read, and `ready()` is true from then on while connected.
   */
  async start(): Promise<void> {
    await whenReady(this.o.connection);
    this.lastId = await this.open();
    this.renewal = setInterval(() => void this.renew().catch((error: unknown) => this.o.onError(error as Error)), REPLY_STREAM_RENEW_MS);
    this.renewal.unref();
    this.loop = this.read();
  }

  /** Whether replies can reach the reader now: its connection is ready. */
  ready(): boolean {
    return this.loop !== undefined && !this.stopping && this.o.connection.status === 'ready';
  }

  /** Stops reading, closes the reader's connection (a blocked read ends at once) and deletes the stream. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.renewal);
    this.o.connection.disconnect();
    await this.loop;
    if (this.loop !== undefined) await this.o.redis.del(this.o.key);
  }

  /** Makes the stream (an opening entry, which is not a reply) with its TTL; the entry's id. */
  private async open(): Promise<string> {
    const results = await this.o.redis
      .multi()
      .xadd(this.o.key, 'MAXLEN', '~', REPLY_STREAM_MAX_LEN, '*', OPEN_FIELD, '1')
      .pexpire(this.o.key, REPLY_STREAM_TTL_MS)
      .exec();
    const failed = results?.find(([error]) => error !== null)?.[0];
    if (results === null || failed) throw new Error('could not make the reply stream', { cause: failed ?? undefined });
    return results[0]?.[1] as string;
  }

  /** Renews the TTL (a stream Redis lost is made again by the next answer). */
  private async renew(): Promise<void> {
    // While Redis is away the command connection fails fast: the next turn renews it.
    if (this.stopping || this.o.redis.status !== 'ready') return;
    await this.o.redis.pexpire(this.o.key, REPLY_STREAM_TTL_MS);
  }

  private async read(): Promise<void> {
    while (!this.stopping) {
      let batch: Array<[string, Array<[string, string[]]>]> | null;
      try {
        batch = (await this.o.connection.xread('COUNT', READ_COUNT, 'BLOCK', READ_BLOCK_MS, 'STREAMS', this.o.key, this.lastId)) as typeof batch;
      } catch (error) {
        if (this.stopping) return;
        this.o.onError(error as Error);
        await new Promise((resolve) => setTimeout(resolve, READ_RETRY_MS));
        continue;
      }
      for (const [id, fields] of batch?.[0]?.[1] ?? []) {
        this.lastId = id;
        const json = fieldValue(fields, REPLY_FIELD);
        if (json === undefined) continue; // the opening entry
        try {
          this.o.onReply(JSON.parse(json) as ReplyMessage);
        } catch (error) {
          this.o.onError(new Error(`could not handle reply entry ${id}`, { cause: error }));
        }
      }
    }
  }
}

/** The value of `name` in an entry's flat [field, value, ...] list. */
function fieldValue(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}
