/**
 * The private services a bench run stands on, as `npm test` starts them: Redis, PostgreSQL and the
 * image registry with the runtime images (infra/services/scratch-services.ts), their data in a
 * fresh state directory.
 */
import { chmod, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../config.js';
import { createLogger } from '../log.js';
import { startScratchServices, type ScratchServices } from '../services/scratch-services.js';

export interface BenchServices extends ScratchServices {
  /** State of the run: databases, images, platforms. */
  root: string;
}

export async function startBenchServices(): Promise<BenchServices> {
  const root = await mkdtemp(join(tmpdir(), 'skiff-bench-'));
  // PostgreSQL (as the postgres user) and the containers' id-mapped users must reach below it.
  await chmod(root, 0o755);
  return { root, ...(await startScratchServices(root, loadConfig().nodeDir, createLogger('bench', 'warn'))) };
}
