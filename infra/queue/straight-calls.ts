/**
 * The warm hop's queue: a Redis stream per worker node (`keys.straightCalls(id)`) that gateways
 * append the calls they send straight to the node's warm instances to (one XADD), and that the
 * node reads in batches through a consumer group (XREADGROUP), acknowledging and deleting each
 * entry once the call is answered. Lighter than a BullMQ job per call (no Lua scripts, no job
 * hash, no lock renewals), and as safe for what matters: an entry read but not acknowledged is in
 * the group's pending list, so a node that dies leaves its started calls visible to whoever takes
 * its calls back (infra/fleet/recovery.ts), and entries never read are handed to the shared queue.
 *
 * The node makes the stream (with its group) when it starts and deletes it when it stops or is
 * taken out of the fleet; a gateway appends only to a stream that exists (NOMKSTREAM), and sends
 * the call through a scheduler when it does not, so nothing is appended where no one reads.
 */
import type { Redis } from 'ioredis';
import type { InvocationJob } from './jobs.js';
import type { KeySpace } from './names.js';

/** The one consumer group of a node's stream. */
const GROUP = 'node';
const FIELD = 'call';
/** A stream keeps about this many entries at most (MAXLEN ~): a bound if a node stops acknowledging. */
const MAX_LEN = 100_000;
/** Entries taken at once when taking calls back. */
const SWEEP_COUNT = 500;

/** A straight call as the shared queue takes it, for a scheduler to place: no longer marked `warm`. */
export function toPlace(job: InvocationJob): InvocationJob {
  const { warm: _straight, ...call } = job;
  return call;
}

/** One call read off a node's stream. */
export interface StraightCall {
  /** The stream entry's id, to acknowledge it by. */
  entryId: string;
  job: InvocationJob;
}

type StreamReply = Array<[string, Array<[string, string[]] | [string, null]>]> | null;

/**
 * Appends `job` to the stream of node `nodeId`; false if the node has no stream (it stopped, or
 * was taken out of the fleet): the caller then sends the call through a scheduler.
 */
export async function sendStraight(redis: Redis, keys: KeySpace, nodeId: string, job: InvocationJob): Promise<boolean> {
  const id = await redis.xadd(keys.straightCalls(nodeId), 'NOMKSTREAM', 'MAXLEN', '~', MAX_LEN, '*', FIELD, JSON.stringify(job));
  return id !== null;
}

/** Makes the node's stream and its group, if missing (at start, and after Redis lost them). */
export async function openStraightCalls(redis: Redis, keys: KeySpace, nodeId: string): Promise<void> {
  try {
    await redis.xgroup('CREATE', keys.straightCalls(nodeId), GROUP, '0', 'MKSTREAM');
  } catch (error) {
    if (!/BUSYGROUP/.test((error as Error).message)) throw error;
  }
}

/**
 * Closes the node's stream to gateways before its calls are taken back: renamed away in one
 * command, so an append from then on fails (and its gateway goes through a scheduler) instead of
 * landing between the last look at the stream and its deletion, where it would be lost. The
 * stream under its new name (returned; undefined if there was none) holds what is left, group
 * and pending list included, for {@link takeUnread} and {@link pendingCalls}; delete it after.
 */
export async function closeForTakeBack(redis: Redis, keys: KeySpace, nodeId: string): Promise<string | undefined> {
  const closed = `${keys.straightCalls(nodeId)}:closed:${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    await redis.rename(keys.straightCalls(nodeId), closed);
  } catch (error) {
    if (/no such key/i.test((error as Error).message)) return undefined;
    throw error;
  }
  return closed;
}

/**
 * Reads up to `count` calls never read before, waiting up to `blockMs` for one; on the node's own
 * consumer name. `connection` must be one that may block (a `blocking` role).
 */
export async function readStraight(
  connection: Redis,
  keys: KeySpace,
  nodeId: string,
  consumer: string,
  count: number,
  blockMs: number,
): Promise<StraightCall[]> {
  const reply = (await connection.xreadgroup(
    'GROUP',
    GROUP,
    consumer,
    'COUNT',
    count,
    'BLOCK',
    blockMs,
    'STREAMS',
    keys.straightCalls(nodeId),
    '>',
  )) as StreamReply;
  return entries(reply);
}

/** The call of entry `entryId` is answered: it leaves the pending list and the stream (sent together: one round trip). */
export async function finishStraight(
  redis: Redis,
  keys: KeySpace,
  nodeId: string,
  entryIds: readonly string[],
  key = keys.straightCalls(nodeId),
): Promise<void> {
  if (entryIds.length === 0) return;
  await Promise.all([redis.xack(key, GROUP, ...entryIds), redis.xdel(key, ...entryIds)]);
}

/**
 * Calls on the stream no one has read yet, taken off it for someone else to run (each read once: as
 * consumer `recovery`). `key`: the stream, if not the node's open one (a closed one).
 */
export async function takeUnread(redis: Redis, keys: KeySpace, nodeId: string, key = keys.straightCalls(nodeId)): Promise<StraightCall[]> {
  const taken: StraightCall[] = [];
  for (;;) {
    let batch: StraightCall[];
    try {
      const reply = (await redis.xreadgroup('GROUP', GROUP, 'recovery', 'COUNT', SWEEP_COUNT, 'STREAMS', key, '>')) as StreamReply;
      batch = entries(reply);
    } catch (error) {
      if (/NOGROUP/.test((error as Error).message)) return taken; // no stream: nothing to take
      throw error;
    }
    taken.push(...batch);
    if (batch.length < SWEEP_COUNT) return taken;
  }
}

/** Calls read from the stream and not yet answered (its pending list), with their jobs. `key` as for {@link takeUnread}. */
export async function pendingCalls(redis: Redis, keys: KeySpace, nodeId: string, key = keys.straightCalls(nodeId)): Promise<StraightCall[]> {
  const found: StraightCall[] = [];
  let start = '-';
  for (;;) {
    let pending: Array<[string, string, number, number]>;
    try {
      pending = (await redis.xpending(key, GROUP, start, '+', SWEEP_COUNT)) as Array<[string, string, number, number]>;
    } catch (error) {
      if (/NOGROUP/.test((error as Error).message)) return found;
      throw error;
    }
    for (const [entryId] of pending) {
      const [entry] = (await redis.xrange(key, entryId, entryId)) as Array<[string, string[]]>;
      const job = entry ? jobOf(entry[1]) : undefined;
      if (job) found.push({ entryId, job });
      else await redis.xack(key, GROUP, entryId); // trimmed or deleted: nothing to take back
    }
    if (pending.length < SWEEP_COUNT) return found;
    start = `(${pending[pending.length - 1]?.[0] ?? '0'}`;
  }
}

/**
 * Whether `error` says the node's stream or group is gone (Redis lost it, or a failover took the
 * node's calls back while it was away): make them again. A read blocked when the stream is
 * deleted ends `UNBLOCKED the stream key no longer exists`.
 */
export function isMissingGroup(error: unknown): boolean {
  return /NOGROUP|stream key no longer exists/.test((error as Error | undefined)?.message ?? '');
}

function entries(reply: StreamReply): StraightCall[] {
  const calls: StraightCall[] = [];
  for (const [entryId, fields] of reply?.[0]?.[1] ?? []) {
    const job = fields === null ? undefined : jobOf(fields);
    if (job) calls.push({ entryId, job });
  }
  return calls;
}

function jobOf(fields: string[]): InvocationJob | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === FIELD) return JSON.parse(fields[i + 1] as string) as InvocationJob;
  return undefined;
}
