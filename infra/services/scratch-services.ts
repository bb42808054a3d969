/**
 * The throwaway services a test run or a bench run stands on: Redis, PostgreSQL and an image
 * registry on free loopback ports, their data under `root`, nothing kept, and the runtime images
 * published to the registry. A failure part way stops what was started.
 */
import { join } from 'node:path';
import { publishRuntimeImages, type PublishedBase } from '../images/base-images.js';
import type { Logger } from '../log.js';
import { RegistryClient } from '../registry/client.js';
import { startPostgres } from './postgres-server.js';
import { freePort } from './process.js';
import { startRedis } from './redis-server.js';
import { startRegistry } from './registry-server.js';

export interface ScratchServices {
  redisUrl: string;
  databaseUrl: string;
  registryUrl: string;
  /** The runtime images in the registry. */
  published: PublishedBase[];
  stop(): Promise<void>;
}

/** `root` must be reachable by the postgres user (PostgreSQL runs as it) and by containers' users. */
export async function startScratchServices(root: string, log: Logger): Promise<ScratchServices> {
  const stops: Array<() => Promise<void>> = [];
  const stop = async (): Promise<void> => {
    for (const step of stops.reverse()) await step();
  };
  try {
    const redis = await startRedis({ dir: join(root, 'redis'), port: await freePort(), persist: false });
    stops.push(() => redis.stop());
    const postgres = await startPostgres({ dir: join(root, 'postgres'), port: await freePort(), database: 'skiff', user: 'skiff', durable: false });
    stops.push(() => postgres.stop());
    const registry = await startRegistry({ dir: join(root, 'registry'), port: await freePort() });
    stops.push(() => registry.stop());
    const published = await publishRuntimeImages(new RegistryClient({ url: registry.url }), join(root, 'images'), log);
    return { redisUrl: redis.url, databaseUrl: postgres.url, registryUrl: registry.url, published, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
