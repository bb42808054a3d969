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
 * - `blocking`: a connection that blocks on reads: a BullMQ Worker's (BZPOPMIN and the like), a
 *   gateway's reply stream reader (XREAD BLOCK). As `consumer`, and BullMQ
 *   requires `maxRetriesPerRequest: null`; a command timeout would cut its blocking reads short.
 * - `subscriber`: pub/sub. Waits for Redis like `consumer`; ioredis subscribes again to every
 *   channel after a reconnect.
 *
 * Every role reconnects forever, after a capped exponential backoff with jitter, and logs its
 * errors through an {@link OutageLog}: one line when an outage starts, a summary at most every
 * 30 s while it lasts, one when the connection is back.
 *
 * Behind Sentinel (`config.sentinel`), every connection, on every (re)connect, asks the sentinels
 * for the primary's address and checks that the server it reaches is a primary (the subscriber,
 * which sends no INFO, takes the sentinels' word); REDIS_URL gives only the password, user and
 * database. A connection leaves a server that is no longer the primary when the server closes
 * it (the primary died; or Sentinel demoted it, and Sentinel kills the clients of a server it
 * turns into a replica) or when the server answers that it is a replica (`READONLY` to a write,
 * `UNBLOCKED` to a blocked read): the connection is then closed and made again to the primary
 * the sentinels name, and the command sent again there (a producer's fails: its caller is
 * answered 503). So a BullMQ Worker does not stay blocked on an old primary
 * (BullMQ issues 3088, 4378): its blocking read (BZPOPMIN for at most 10 s, 5 s while no job is
 * delayed, under a watchdog of BullMQ's a second longer) is sent again to the new primary.
 *
 * ioredis' failover detector (`failoverDetector`: every connection also subscribes to
 * `+switch-master` on each sentinel) is off. In ioredis 5.9 it closes the connector whenever a
 * sentinel announces a failover, and one closed while it is asking the sentinels for the primary
 * ends the client for good (status `end`, never reconnected: the trap of BullMQ issue 4378);
 * that happened to 3 to 6 of 60 clients when the primary was SIGKILLed, measured. QUIT also
 * leaves its subscriptions open (ioredis issue 1362). Without it, a primary that hangs without
 * closing its connections (frozen, or cut off by a partition) is left only once Sentinel demotes
 * it (when it is reachable again: Sentinel then closes its clients) or TCP keep-alive gives up.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { RedisClientConfig, RedisSentinelConfig } from '../config.js';
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

/**
 * A reply of a server that is not (or no longer) the primary: a write to a replica, or a blocked
 * read that a primary turned replica gave up. Such a server never ran the command.
 */
const NOT_PRIMARY = /^(READONLY|UNBLOCKED)\b/;

/**
 * What ioredis does with an error reply (`reconnectOnError`): a reply of a server that is not the
 * primary closes the connection, to be made again (to the primary the sentinels name), and sends
 * the command again once connected (2), or, for a producer, fails it (1: it has no offline queue
 * to wait in); any other error is the command's (false). A transaction refused so fails as a
 * whole (EXECABORT: the server discarded all of it), not sent again.
 */
export function onErrorReply(role: RedisRole): (error: Error) => boolean | 1 | 2 {
  return (error) => (NOT_PRIMARY.test(error.message) ? (role === 'producer' ? 1 : 2) : false);
}

/**
 * Where connections go behind Sentinel: the primary named `name` by the sentinels (tried in
 * order), checked to be a primary on connect. Options for ioredis, added to REDIS_URL's.
 */
export function sentinelTarget(sentinel: RedisSentinelConfig): RedisOptions {
  return {
    sentinels: sentinel.sentinels.map(({ host, port }) => ({ host, port })),
    name: sentinel.name,
    role: 'master',
    ...(sentinel.password === undefined ? {} : { sentinelPassword: sentinel.password }),
  };
}

/** The ioredis options of a role (pure: tests read them without connecting). */
export function redisOptions(role: RedisRole, config: RedisClientConfig, name?: string): RedisOptions {
  const retry = (attempt: number): number => reconnectDelay(attempt, config.reconnectMaxDelayMs);
  const sentinel: RedisOptions = config.sentinel
    ? {
        ...sentinelTarget(config.sentinel),
        // No sentinel answers: asked again after the same backoff as a reconnect, forever.
        sentinelRetryStrategy: retry,
        // A sentinel that does not answer is passed over after this long.
        sentinelCommandTimeout: config.commandTimeoutMs,
        // Off: it can end a client for good (see the header).
        failoverDetector: false,
      }
    : {};
  const common: RedisOptions = {
    ...sentinel,
    connectTimeout: config.connectTimeoutMs,
    retryStrategy: retry,
    // Behind Sentinel only: there a replica fails the role check on connect, while without it a
    // REDIS_URL naming a replica would be connected to again and again, as fast as it refuses.
    ...(config.sentinel ? { reconnectOnError: onErrorReply(role) } : {}),
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
