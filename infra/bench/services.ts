/**
 * The private services a bench run stands on, as `npm test` starts them (infra/test/run-tests.ts):
 * Redis, PostgreSQL and the image registry on free loopback ports, with their data in a fresh
 * state directory, and the runtime base images published to the registry.
 */
import { chmod, mkdtemp } from 'node:fs/promises';
import { freePort } from '../services/process.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPostgres } from '../services/postgres-server.js';
import { startRedis } from '../services/redis-server.js';
import { startRegistry } from '../services/registry-server.js';
import { publishRuntimeImages } from '../images/base-images.js';
import { RegistryClient } from '../registry/client.js';
import { createLogger } from '../log.js';

export interface BenchServices {
  /** State of the run: databases, images, platforms. */
  root: string;
  redisUrl: string;
  databaseUrl: string;
  registryUrl: string;
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
  const registry = await startRegistry({ dir: join(root, 'registry'), port: await freePort() }).catch(async (error: unknown) => {
    await postgres.stop();
    await redis.stop();
    throw error;
  });
  await publishRuntimeImages(new RegistryClient({ url: registry.url }), join(root, 'images'), createLogger('bench', 'warn'));
  return {
    root,
    redisUrl: redis.url,
    databaseUrl: postgres.url,
    registryUrl: registry.url,
    async stop() {
      await registry.stop();
      await postgres.stop();
      await redis.stop();
    },
  };
}
