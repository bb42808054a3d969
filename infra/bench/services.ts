/**
 * The private services a bench run stands on, as `npm test` starts them (infra/test/run-tests.ts):
 * Redis and PostgreSQL on free loopback ports, with their data in a fresh state directory.
 */
import { chmod, mkdtemp } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPostgres } from '../services/postgres-server.js';
import { startRedis } from '../services/redis-server.js';

export interface BenchServices {
  /** State of the run: databases, images, platforms. */
  root: string;
  redisUrl: string;
  databaseUrl: string;
  stop(): Promise<void>;
}

export async function startBenchServices(): Promise<BenchServices> {
  const root = await mkdtemp(join(tmpdir(), 'skiff-bench-'));
  // PostgreSQL (as the postgres user) and the containers' id-mapped users must reach below it.
  await chmod(root, 0o755);
  const redis = await startRedis({ dir: join(root, 'redis'), port: await freePort(), persist: false });
  const postgres = await startPostgres({ dir: join(root, 'postgres'), port: await freePort(), database: 'skiff', user: 'skiff', durable: false }).catch(
    async (error: unknown) => {
      await redis.stop();
      throw error;
    },
  );
  return {
    root,
    redisUrl: redis.url,
    databaseUrl: postgres.url,
    async stop() {
      await postgres.stop();
      await redis.stop();
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}
