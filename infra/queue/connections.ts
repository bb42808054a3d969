/**
 * Every Redis connection Skiff makes, by role. A role fixes how the connection behaves while Redis
 * is unreachable, after BullMQ's production guide: whoever answers a caller fails fast, whoever
 * consumes jobs waits for Redis and carries on where it was.
 *
 * - `producer`: a gateway's command connection (it queues calls, counts calls per second, reads
 *   replies, pings for /healthz). No offline queue: while disconnected a command fails at once;
 *   connected, it fails after `commandTimeoutMs`; a command in flight when the connection drops
 *   is sent again once on the first reconnect, else fails. The caller is answered 503, not held.
 * - `consumer`: the command connection of a process that runs jobs (scheduler, worker):
 *   heartbeats, placements, replies, retries. Its commands run inside job processors, where
 *   failing would turn an outage into lost or failed calls, so they wait in the offline queue and
 *   are retried until Redis answers (`maxRetriesPerRequest: null`, no command timeout).
 * - `blocking`: a BullMQ Worker's connection (BZPOPMIN and the like). As `consumer`, and BullMQ
 *   requires `maxRetriesPerRequest: null`; a command timeout would cut its blocking reads short.
 * - `subscriber`: pub/sub. Waits for Redis like `consumer`; ioredis subscribes again to every
 *   channel after a reconnect.
 *
 * Every role reconnects forever, after a capped exponential backoff with jitter, and logs its
 * errors through an {@link OutageLog}: one line when an outage starts, a summary at most every
 * 30 s while it lasts, one when the connection is back.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { RedisClientConfig } from '../config.js';
import type { Logger } from '../log.js';
import { OutageLog } from '../outage-log.js';

export type RedisRole = 'producer' | 'consumer' | 'blocking' | 'subscriber';

/** First reconnect delay; doubled per attempt up to the configured cap. */
const FIRST_RECONNECT_MS = 50;

/**
 * Milliseconds before reconnect attempt `attempt` (1, 2, ...): 50, 100, 200 ... up to `maxMs`,
 * each within ±20 % (`random` in [0, 1)) so that many clients do not reconnect in step.
 */
export function reconnectDelay(attempt: number, maxMs: number, random: () => number = Math.random): number {
  const base = Math.min(maxMs, FIRST_RECONNECT_MS * 2 ** Math.min(Math.max(attempt - 1, 0), 20));
  return Math.max(1, Math.round(base * (0.8 + 0.4 * random())));
}

/** The ioredis options of a role (pure: tests read them without connecting). */
export function redisOptions(role: RedisRole, config: RedisClientConfig, name?: string): RedisOptions {
  const common: RedisOptions = {
    connectTimeout: config.connectTimeoutMs,
    retryStrategy: (attempt: number) => reconnectDelay(attempt, config.reconnectMaxDelayMs),
    // A connection half-open after a host or network failure is found by TCP keep-alive probes.
    keepAlive: 10_000,
    // Not on a subscriber: ioredis names the connection (CLIENT SETNAME) on every connect, and
    // a reconnecting subscriber that has already subscribed again refuses that command (seen as
    // an uncaught "Connection in subscriber mode" error that crashed a gateway).
    ...(name === undefined || role === 'subscriber' ? {} : { connectionName: name }),
  };
  switch (role) {
    case 'producer':
      return { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: config.commandTimeoutMs };
    case 'consumer':
    case 'blocking':
      return { ...common, enableOfflineQueue: true, maxRetriesPerRequest: null };
    case 'subscriber':
      // No ready check: its INFO could meet the connection already in subscriber mode and reject
      // uncaught ("Connection in subscriber mode", seen in CI); SUBSCRIBE works while Redis loads.
      return { ...common, enableOfflineQueue: true, maxRetriesPerRequest: null, enableReadyCheck: false };
  }
}

/** A pino logger, or fastify's request logger. */
export interface ConnectionLog {
  child(bindings: Record<string, unknown>): Pick<Logger, 'warn' | 'info'>;
}

export interface OpenRedisOptions {
  log: ConnectionLog;
  /** Names the connection in its log lines and in Redis' CLIENT LIST (`skiff:<component>:<role>`). */
  component: string;
}

/** A Redis client for `role`, connecting now, with its errors logged (rate-limited). */
export function openRedis(url: string, role: RedisRole, config: RedisClientConfig, options: OpenRedisOptions): Redis {
  const name = `skiff:${options.component}:${role}`;
  const client = new Redis(url, redisOptions(role, config, name));
  const outage = new OutageLog(options.log.child({ redis: name }), 'redis connection');
  client.on('error', (error: Error) => outage.error(error));
  // Redis gone without a socket error (killed: the kernel closes its end) shows as a reconnect.
  client.on('reconnecting', () => {
    if (!outage.down) outage.error(new Error('connection lost'));
  });
  client.on('ready', () => outage.recovered());
  return client;
}

/**
 * Resolves once `client` is connected and ready. A `producer` refuses commands until then (it
 * has no offline queue), so whoever starts with one waits here first. Rejects if the client is
 * closed meanwhile.
 */
export function whenReady(client: Redis): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  if (client.status === 'end') return Promise.reject(new Error('the Redis connection is closed'));
  return new Promise((resolve, reject) => {
    const ready = (): void => {
      client.off('end', ended);
      resolve();
    };
    const ended = (): void => {
      client.off('ready', ready);
      reject(new Error('the Redis connection was closed before it was ready'));
    };
    client.once('ready', ready);
    client.once('end', ended);
  });
}

/**
 * Closes `client`: QUIT when connected (replies to what was sent still arrive), else at once. A
 * producer cannot send QUIT while disconnected and a waiting client's QUIT would wait for Redis,
 * so a client that is not ready is disconnected.
 */
export async function closeRedis(client: Redis): Promise<void> {
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  try {
    await client.quit();
  } catch {
    client.disconnect();
  }
}
