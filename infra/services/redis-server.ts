/** Starts a private Redis server (Debian's redis-server) on loopback with its data under `dir`. */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startProcess, waitFor, type OwnedProcess } from './process.js';

export interface LocalRedis {
  url: string;
  process: OwnedProcess;
  stop(): Promise<void>;
}

export async function startRedis(options: { dir: string; port: number; persist: boolean }): Promise<LocalRedis> {
  await mkdir(options.dir, { recursive: true });
  const proc = startProcess(
    'redis-server',
    [
      '--bind', '127.0.0.1', '--port', String(options.port), '--dir', options.dir,
      '--save', options.persist ? '60 1' : '', '--appendonly', 'no', '--daemonize', 'no', '--protected-mode', 'yes',
      '--logfile', join(options.dir, 'redis.log'),
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const url = `redis://127.0.0.1:${options.port}`;
  await waitFor('redis-server', async () => {
    if (proc.child.exitCode !== null) throw new Error(`redis-server exited ${proc.child.exitCode}; see ${options.dir}/redis.log`);
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined); // connect() rejects with the same error; waitFor retries
    try {
      await client.connect();
      await client.ping();
    } finally {
      client.disconnect();
    }
  });
  return { url, process: proc, stop: () => proc.stop('SIGTERM') };
}
