/**
 * Starts a private Redis server (Debian's redis-server) on loopback with its data under `dir`.
 *
 * A persistent one (the bring-up's) keeps an append-only file, fsynced every second, besides RDB
 * snapshots: a crash loses at most about a second of writes, not a minute. Every one refuses
 * writes when full (`maxmemory-policy noeviction`) rather than evicting queue keys. Both are what
 * BullMQ's production guide asks for, and what infra/queue/redis-check.ts warns about. One may be
 * started as a replica of another (a primary with replicas behind Sentinel: ./redis-sentinel.ts).
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { assertPortFree, GaveUp, startProcess, waitFor, type OwnedProcess } from './process.js';

export interface LocalRedis {
  url: string;
  process: OwnedProcess;
  stop(): Promise<void>;
}

export interface RedisServerOptions {
  dir: string;
  port: number;
  /** An append-only file (fsync every second) and RDB snapshots; off for throw-away test servers. */
  persist: boolean;
  /** In a process group of its own: a Ctrl-C at the terminal reaches only the owner, which stops it in order. */
  detached?: boolean;
  /** Aborts the wait for the server to answer (the server is then killed). */
  signal?: AbortSignal;
  /** Starts it as a replica of this primary (`--replicaof`; Sentinel may change that later). */
  replicaOf?: { host: string; port: number };
}

/** The append-only file's manifest, under Redis' defaults (`appenddirname`, `appendfilename`). */
const AOF_MANIFEST = join('appendonlydir', 'appendonly.aof.manifest');

export async function startRedis(options: RedisServerOptions): Promise<LocalRedis> {
  await mkdir(options.dir, { recursive: true });
  await assertPortFree(options.port);
  // Data kept by an earlier Redis without an append-only file is in dump.rdb alone. Starting with
  // `appendonly yes` would load the (missing, so empty) AOF and ignore it: start without, then
  // switch the AOF on at run time, which writes it from the data loaded (Redis' own upgrade path).
  const upgrade = options.persist && existsSync(join(options.dir, 'dump.rdb')) && !existsSync(join(options.dir, AOF_MANIFEST));
  const persistence = options.persist
    ? ['--save', '60 1', '--appendonly', upgrade ? 'no' : 'yes', '--appendfsync', 'everysec']
    : ['--save', '', '--appendonly', 'no'];
  const proc = startProcess(
    'redis-server',
    [
      '--bind',
      '127.0.0.1',
      '--port',
      String(options.port),
      '--dir',
      options.dir,
      ...persistence,
      '--maxmemory-policy',
      'noeviction',
      '--daemonize',
      'no',
      '--protected-mode',
      'yes',
      '--logfile',
      join(options.dir, 'redis.log'),
      ...(options.replicaOf ? ['--replicaof', options.replicaOf.host, String(options.replicaOf.port)] : []),
    ],
    { stdio: ['ignore', 'ignore', 'inherit'], detached: options.detached ?? false },
  );
  const url = `redis://127.0.0.1:${options.port}`;
  try {
    await waitFor(
      'redis-server',
      async () => {
        if (proc.hasExited()) throw new GaveUp(`it exited (${proc.child.exitCode ?? proc.child.signalCode}); see ${options.dir}/redis.log`);
        // This server, not another one on the port (a probe answered by it would be a false start).
        const info = await withClient(url, (client) => client.info('server'));
        const pid = /^process_id:(\d+)/m.exec(info)?.[1];
        if (Number(pid) !== proc.child.pid) throw new Error(`another redis-server (pid ${pid}) answers on the port`);
      },
      30000,
      100,
      { signal: options.signal },
    );
    if (upgrade) await switchOnAof(url, options);
  } catch (error) {
    await proc.stop('SIGKILL');
    throw error;
  }
  return { url, process: proc, stop: () => proc.stop('SIGTERM') };
}

/** `CONFIG SET appendonly yes`, then waits for the rewrite that writes the AOF's base to end. */
async function switchOnAof(url: string, options: RedisServerOptions): Promise<void> {
  await withClient(url, (client) => client.config('SET', 'appendonly', 'yes'));
  await waitFor(
    'redis append-only file',
    async () => {
      const info = await withClient(url, (client) => client.info('persistence'));
      const field = (name: string): string | undefined => new RegExp(`^${name}:(\\S+)`, 'm').exec(info)?.[1];
      if (field('aof_last_bgrewrite_status') === 'err') throw new GaveUp(`the AOF rewrite failed; see ${options.dir}/redis.log`);
      if (field('aof_enabled') !== '1' || field('aof_rewrite_in_progress') !== '0' || field('aof_rewrite_scheduled') !== '0') {
        throw new Error('the AOF is still being written');
      }
    },
    120000,
    100,
    { signal: options.signal },
  );
}

/** Runs `use` on a connection of its own to `url` (one attempt, no retries), closed afterwards. */
export async function withClient<T>(url: string, use: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => undefined); // the command rejects with the same error; callers retry
  try {
    await client.connect();
    return await use(client);
  } finally {
    client.disconnect();
  }
}
