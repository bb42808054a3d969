/**
 * How a synchronous call's outcome gets back to the gateway waiting for it. A small outcome is
 * the pub/sub message itself (one round trip, the hot path). A large one would sit whole in the
 * gateway subscriber's output buffer, and past Redis's pubsub limit Redis drops that subscriber,
 * with every call it waits for: so it is written to a key with a short life, and the message only
 * points to it; the gateway takes the key (GETDEL) when the pointer arrives.
 */
import type { Redis } from 'ioredis';
import type { InvocationOutcome } from './jobs.js';
import type { KeySpace } from './names.js';

/** Outcomes up to this many bytes of JSON travel in the message itself. */
export const INLINE_REPLY_MAX_BYTES = 64 * 1024;
/** A stored outcome nobody took (its caller gave up) is gone after this. */
export const STORED_REPLY_TTL_MS = 60_000;

/** The message for an outcome that waits in `keys.reply(id)`. */
export interface StoredReply {
  id: string;
  stored: true;
}

export type ReplyMessage = InvocationOutcome | StoredReply;

export function isStoredReply(message: ReplyMessage): message is StoredReply {
  return (message as Partial<StoredReply>).stored === true;
}

/** Sends `outcome` to the gateway listening on `channel`; the size of its JSON in bytes. */
export async function publishOutcome(redis: Redis, keys: KeySpace, channel: string, outcome: InvocationOutcome): Promise<number> {
  const json = JSON.stringify(outcome);
  const bytes = Buffer.byteLength(json);
  if (bytes <= INLINE_REPLY_MAX_BYTES) {
    await redis.publish(channel, json);
    return bytes;
  }
  const pointer: StoredReply = { id: outcome.id, stored: true };
  // One round trip; MULTI runs the SET before the PUBLISH, so the key is there when the pointer lands.
  const results = await redis.multi().set(keys.reply(outcome.id), json, 'PX', STORED_REPLY_TTL_MS).publish(channel, JSON.stringify(pointer)).exec();
  const failed = results?.find(([error]) => error !== null)?.[0];
  if (results === null || failed) throw new Error('could not store a large outcome for its gateway', { cause: failed ?? undefined });
  return bytes;
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
