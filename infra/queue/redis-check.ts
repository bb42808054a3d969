/**
 * At start, every Skiff component checks that the Redis it is pointed at keeps what it is given:
 * an append-only file (a restart or crash otherwise loses the calls queued since the last
 * snapshot) and `maxmemory-policy noeviction` (any other policy may evict queue keys when Redis
 * fills up). BullMQ's production guide asks for both. A missing setting is a warning, not a
 * refusal: a throw-away Redis is fine for trying Skiff out. A managed Redis that refuses CONFIG
 * is named as unchecked. Behind Sentinel, the primary the sentinels name is checked (each replica
 * needs the same settings, for when it is promoted: docs/OPERATIONS.md).
 */
import { Redis } from 'ioredis';
import type { RedisSentinelConfig } from '../config.js';
import type { Logger } from '../log.js';
import { sentinelTarget } from './connections.js';

/** A setting and the values that keep accepted calls. */
const WANTED: ReadonlyArray<{ setting: string; ok: (value: string, all: Map<string, string>) => boolean; want: string }> = [
  { setting: 'appendonly', ok: (v) => v === 'yes', want: 'yes' },
  // Without fsync of its own the AOF is as old as the kernel's writeback (up to ~30 s).
  { setting: 'appendfsync', ok: (v, all) => all.get('appendonly') !== 'yes' || v !== 'no', want: 'everysec' },
  { setting: 'maxmemory-policy', ok: (v) => v === 'noeviction', want: 'noeviction' },
];

export interface RedisSettingsCheck {
  /** False when the settings could not be read (CONFIG refused, no answer). */
  checked: boolean;
  /** Settings read that differ from what Skiff needs. */
  lacking: Array<{ setting: string; value: string; want: string }>;
  /** Why the settings could not be read. */
  reason?: string;
}

export interface RedisCheckOptions {
  /** Longest wait for each step (default 5000 ms). */
  timeoutMs?: number;
  /** Set: check the primary these sentinels name (with a URL `target`; `config.redisClient.sentinel`). */
  sentinel?: RedisSentinelConfig | undefined;
}

/**
 * Reads the settings with CONFIG GET and logs one warning line if any is lacking or they could not
 * be read. Never throws and never waits longer than about `timeoutMs` (a step). `target` is a URL
 * (a connection of its own is made and closed, through the sentinels if `sentinel` is set) or a
 * client to use as it is. `options` may be the timeout alone.
 */
export async function checkRedisSettings(target: string | Redis, log: Logger, options: number | RedisCheckOptions = {}): Promise<RedisSettingsCheck> {
  const { timeoutMs = 5000, sentinel } = typeof options === 'number' ? { timeoutMs: options } : options;
  const own = typeof target === 'string';
  const client = own
    ? new Redis(target, {
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        connectTimeout: timeoutMs,
        commandTimeout: timeoutMs,
        // Named as Skiff's other connections are in CLIENT LIST (infra/queue/connections.ts).
        connectionName: `skiff:${String(log.bindings().component ?? 'skiff')}:settings-check`,
        // One round over the sentinels, each given the step's time; none answering is "no answer".
        ...(sentinel ? { ...sentinelTarget(sentinel), sentinelRetryStrategy: () => null, sentinelCommandTimeout: timeoutMs } : {}),
      })
    : target;
  if (own) client.on('error', () => undefined); // every command rejects with it
  const where = own ? (sentinel ? sentinelWhere(sentinel) : redactedUrl(target)) : clientWhere(client);
  let result: RedisSettingsCheck;
  try {
    if (own) await withTimeout(client.connect(), timeoutMs);
    const all = new Map<string, string>();
    // One setting per CONFIG GET: Redis before 7 takes a single pattern.
    for (const { setting } of WANTED) {
      const [, value] = (await withTimeout(client.config('GET', setting), timeoutMs)) as string[];
      if (value !== undefined) all.set(setting, value);
    }
    const unknown = WANTED.filter(({ setting }) => !all.has(setting)).map(({ setting }) => setting);
    const lacking = WANTED.flatMap(({ setting, ok, want }) => {
      const value = all.get(setting);
      return value !== undefined && !ok(value, all) ? [{ setting, value, want }] : [];
    });
    result = unknown.length > 0 ? { checked: false, lacking, reason: `CONFIG GET did not show ${unknown.join(', ')}` } : { checked: true, lacking };
  } catch (error) {
    const message = (error as Error).message;
    // Refused is an answer of the server; anything else (no connection, no sentinel) is none.
    const refused = (error as Error).name === 'ReplyError' && /unknown command|NOPERM|no permissions|not allowed|disabled/i.test(message);
    result = { checked: false, lacking: [], reason: refused ? `CONFIG GET refused: ${message}` : `no answer: ${message}` };
  } finally {
    if (own) client.disconnect();
  }
  report(result, where, log);
  return result;
}

function report(result: RedisSettingsCheck, where: string, log: Logger): void {
  const wanted = WANTED.map(({ setting, want }) => `${setting} ${want}`).join(', ');
  if (result.lacking.length > 0) {
    const settings = Object.fromEntries(result.lacking.map(({ setting, value }) => [setting, value]));
    log.warn(
      { redis: where, settings, ...(result.reason ? { unchecked: result.reason } : {}) },
      `Redis lacks ${result.lacking.map(({ setting, want }) => `${setting} ${want}`).join(', ')}: accepted calls may be lost when it restarts or fills up (docs/OPERATIONS.md)`,
    );
  } else if (!result.checked) {
    log.warn({ redis: where, reason: result.reason }, `could not check the Redis settings ${wanted}; make sure they are set (docs/OPERATIONS.md)`);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** How a log line names Redis behind Sentinel. */
function sentinelWhere(sentinel: RedisSentinelConfig): string {
  return `primary ${sentinel.name} of sentinels ${sentinel.sentinels.map(({ host, port }) => `${host}:${port}`).join(',')}`;
}

function clientWhere(client: Redis): string {
  const { sentinels, name } = client.options;
  if (sentinels && name) return sentinelWhere({ name, sentinels: sentinels.map((s) => ({ host: s.host ?? '?', port: s.port ?? 26379 })), password: undefined });
  return `${client.options.host ?? '?'}:${client.options.port ?? '?'}`;
}

/** The URL without its password. */
function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}
