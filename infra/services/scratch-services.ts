/**
 * The throwaway services a test run or a bench run stands on: Redis, PostgreSQL and an image
 * registry on free loopback ports, their data under `root`, nothing kept, and the runtime images
 * published to the registry. A failure part way stops what was started.
 */
import { join } from 'node:path';
import { publishRuntimeImages, type PublishedBase, type RuntimeImages } from '../images/base-images.js';
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
  /** Runtimes that could not be built here, and why. */
  unavailable: RuntimeImages['unavailable'];
  stop(): Promise<void>;
}

/** `root` must be reachable by the postgres user (PostgreSQL runs as it) and by containers' users. */
/** `nodeDir`: where fetched Node.js releases are kept across runs (SKIFF_NODE_DIR). */
export async function startScratchServices(root: string, nodeDir: string, log: Logger, progress?: (message: string) => void): Promise<ScratchServices> {
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
    const { published, unavailable } = await publishRuntimeImages(
      new RegistryClient({ url: registry.url }),
      { imagesDir: join(root, 'images'), nodeDir },
      log,
      progress,
    );
    return { redisUrl: redis.url, databaseUrl: postgres.url, registryUrl: registry.url, published, unavailable, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
