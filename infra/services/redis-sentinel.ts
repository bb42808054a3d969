/**
 * Private Redis Sentinel deployments on loopback (Debian's redis-sentinel): a primary, replicas
 * (`--replicaof`) and sentinels watching them, each under a directory of its own, on ports the
 * caller picks. For tests of failover (test/e2e/sentinel.test.ts, test/unit/connections-sentinel
 * .test.ts): they kill and reconfigure these servers, never the scratch Redis other tests share.
 *
 * A sentinel keeps its state (epoch, the primary it follows, the replicas and sentinels it found)
 * by rewriting its config file, so one started again on the same directory carries on from it.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assertPortFree, freePort, GaveUp, startProcess, waitFor, type OwnedProcess } from './process.js';
import { startRedis, withClient, type LocalRedis } from './redis-server.js';

export interface Address {
  host: string;
  port: number;
}

export interface LocalSentinel extends Address {
  url: string;
  process: OwnedProcess;
  stop(): Promise<void>;
}

export interface SentinelOptions {
  dir: string;
  port: number;
  /** The primary to watch (the sentinel's config, once started, says which one it follows). */
  primary: Address;
  /** Name of the primary (`sentinel monitor <name>`). */
  name: string;
  /** Sentinels that must agree the primary is down before one fails over. */
  quorum: number;
  /** A primary that does not answer for this long is down (in this sentinel's view). */
  downAfterMs: number;
  /** Bounds each failover step; a failed failover is tried again after twice this. */
  failoverTimeoutMs: number;
  signal?: AbortSignal;
}

/** Starts a sentinel; on a directory that has its config already, as that config says. */
export async function startSentinel(options: SentinelOptions): Promise<LocalSentinel> {
  await mkdir(options.dir, { recursive: true });
  await assertPortFree(options.port);
  const config = join(options.dir, 'sentinel.conf');
  if (!existsSync(config)) {
    const { name } = options;
    await writeFile(
      config,
      [
        `port ${options.port}`,
        'bind 127.0.0.1',
        'daemonize no',
        `dir ${options.dir}`,
        `logfile ${join(options.dir, 'sentinel.log')}`,
        `sentinel monitor ${name} ${options.primary.host} ${options.primary.port} ${options.quorum}`,
        `sentinel down-after-milliseconds ${name} ${options.downAfterMs}`,
        `sentinel failover-timeout ${name} ${options.failoverTimeoutMs}`,
        `sentinel parallel-syncs ${name} 1`,
        '',
      ].join('\n'),
    );
  }
  const proc = startProcess('redis-sentinel', [config], { stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `redis://127.0.0.1:${options.port}`;
  try {
    await waitFor(
      'redis-sentinel',
      async () => {
        if (proc.hasExited()) {
          // Not spawned at all: most likely not installed (Debian package redis-sentinel; infra/system/prepare.sh).
          const how = await proc.exited.then(
            (code) => `it exited (${code ?? proc.child.signalCode}); see ${options.dir}/sentinel.log`,
            (error: Error) => `it could not be started: ${error.message}`,
          );
          throw new GaveUp(how);
        }
        const info = await withClient(url, (client) => client.info('server'));
        const pid = /^process_id:(\d+)/m.exec(info)?.[1];
        if (Number(pid) !== proc.child.pid) throw new Error(`another server (pid ${pid}) answers on the port`);
        if (!/^redis_mode:sentinel/m.test(info)) throw new GaveUp('it answers, but not as a sentinel');
      },
      30000,
      100,
      { signal: options.signal },
    );
  } catch (error) {
    await proc.stop('SIGKILL');
    throw error;
  }
  return { host: '127.0.0.1', port: options.port, url, process: proc, stop: () => proc.stop('SIGTERM') };
}

/** The address `sentinel` names as the primary of `name`, or undefined if it names none. */
export async function primaryAddress(sentinel: LocalSentinel, name: string): Promise<Address | undefined> {
  const reply = await withClient(sentinel.url, (client) => client.call('SENTINEL', 'get-master-addr-by-name', name));
  if (!Array.isArray(reply) || reply.length < 2) return undefined;
  return { host: String(reply[0]), port: Number(reply[1]) };
}

export interface SentinelSetOptions {
  dir: string;
  /** Replicas of the primary (default 1). */
  replicas?: number;
  /** Sentinels (default 3, quorum a majority). */
  sentinels?: number;
  name?: string;
  downAfterMs?: number;
  failoverTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface LocalSentinelSet {
  name: string;
  /** The servers as started: `primary` is the one started as primary, not necessarily the primary now. */
  primary: LocalRedis;
  replicas: LocalRedis[];
  sentinels: LocalSentinel[];
  /**
   * What points Skiff at this set. REDIS_URL's host and port are not used with sentinels: this one
   * names no server, so that a connection that bypassed the sentinels would fail.
   */
  env: { REDIS_URL: string; SKIFF_REDIS_SENTINELS: string; SKIFF_REDIS_SENTINEL_NAME: string };
  /** The primary most sentinels name now, or undefined while no majority of them agrees. */
  currentPrimary(): Promise<Address | undefined>;
  /**
   * Resolves once every running sentinel sees `replicas` replicas in sync and every other sentinel,
   * and quorum and majority can be reached: a failover can happen now.
   */
  readyToFailOver(replicas: number): Promise<void>;
  /** Makes `stop` stop `server` too (one started later, say the old primary started again). */
  adopt(server: { stop(): Promise<void> }): void;
  /** Stops every server of the set still running (a sentinel first, so that none fails over meanwhile). */
  stop(): Promise<void>;
}

/**
 * Starts a primary, its replicas and sentinels on free loopback ports, and resolves once every
 * replica is in sync and every sentinel has found every replica and every other sentinel (so a
 * failover can happen from the first moment on). On failure, stops whatever it started.
 */
export async function startSentinelSet(options: SentinelSetOptions): Promise<LocalSentinelSet> {
  const name = options.name ?? 'mymaster';
  const sentinelCount = options.sentinels ?? 3;
  const started: Array<{ stop(): Promise<void> }> = [];
  const stopAll = async (): Promise<void> => {
    for (const server of [...started].reverse()) await server.stop();
  };
  try {
    const primary = await startRedis({ dir: join(options.dir, 'primary'), port: await freePort(), persist: false, ...signalOf(options) });
    started.push(primary);
    const primaryAt = { host: '127.0.0.1', port: Number(new URL(primary.url).port) };
    const replicas: LocalRedis[] = [];
    for (let i = 0; i < (options.replicas ?? 1); i++) {
      const replica = await startRedis({
        dir: join(options.dir, `replica-${i + 1}`),
        port: await freePort(),
        persist: false,
        replicaOf: primaryAt,
        ...signalOf(options),
      });
      started.push(replica);
      replicas.push(replica);
    }
    for (const replica of replicas) {
      await waitFor(
        'redis replica in sync',
        async () => {
          const info = await withClient(replica.url, (client) => client.info('replication'));
          if (!/^master_link_status:up/m.test(info)) throw new Error('its link to the primary is not up');
        },
        60000,
        100,
        signalOf(options),
      );
    }
    const sentinels: LocalSentinel[] = [];
    for (let i = 0; i < sentinelCount; i++) {
      const sentinel = await startSentinel({
        dir: join(options.dir, `sentinel-${i + 1}`),
        port: await freePort(),
        primary: primaryAt,
        name,
        quorum: Math.floor(sentinelCount / 2) + 1,
        downAfterMs: options.downAfterMs ?? 1000,
        failoverTimeoutMs: options.failoverTimeoutMs ?? 3000,
        ...signalOf(options),
      });
      started.push(sentinel);
      sentinels.push(sentinel);
    }
    const readyToFailOver = async (wanted: number): Promise<void> => {
      // Replicas are found through the primary's INFO, sentinels through each other's hellos.
      for (const sentinel of sentinels.filter((s) => !s.process.hasExited())) {
        await waitFor(
          'redis-sentinel ready to fail over',
          async () => {
            await withClient(sentinel.url, async (client) => {
              const found = (await client.call('SENTINEL', 'replicas', name)) as string[][];
              const up = found.map(fields).filter((r) => !/disconnected|s_down|o_down/.test(r.flags ?? '') && r['master-link-status'] === 'ok');
              if (up.length < wanted) throw new Error(`it sees ${up.length} of ${wanted} replicas in sync`);
              const others = (await client.call('SENTINEL', 'sentinels', name)) as string[][];
              if (others.length < sentinelCount - 1) throw new Error(`it knows ${others.length} of ${sentinelCount - 1} other sentinels`);
              await client.call('SENTINEL', 'ckquorum', name); // rejects while quorum or majority cannot be reached
            });
          },
          60000,
          200,
          signalOf(options),
        );
      }
    };
    await readyToFailOver(replicas.length);
    return {
      name,
      primary,
      replicas,
      sentinels,
      readyToFailOver,
      adopt(server) {
        started.splice(started.length - sentinels.length, 0, server);
      },
      env: {
        REDIS_URL: 'redis://127.0.0.1:1',
        SKIFF_REDIS_SENTINELS: sentinels.map((s) => `${s.host}:${s.port}`).join(','),
        SKIFF_REDIS_SENTINEL_NAME: name,
      },
      async currentPrimary() {
        const named = await Promise.all(sentinels.map((s) => (s.process.hasExited() ? undefined : primaryAddress(s, name).catch(() => undefined))));
        const votes = new Map<string, { address: Address; count: number }>();
        for (const address of named) {
          if (!address) continue;
          const key = `${address.host}:${address.port}`;
          votes.set(key, { address, count: (votes.get(key)?.count ?? 0) + 1 });
        }
        const top = [...votes.values()].sort((a, b) => b.count - a.count)[0];
        return top && top.count > sentinelCount / 2 ? top.address : undefined;
      },
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}

function signalOf(options: { signal?: AbortSignal | undefined }): { signal?: AbortSignal } {
  return options.signal ? { signal: options.signal } : {};
}

/** A SENTINEL reply's flat [field, value, ...] list as an object. */
function fields(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] ?? ''] = flat[i + 1] ?? '';
  return out;
}
