/**
 * Images: how long a worker with an empty cache takes to pull a function's image (manifest,
 * config, every layer: downloaded, verified, unpacked), beside the bare download of the same blobs
 * from the same registry (the floor); then what a second function of the same runtime costs —
 * time and disk — on a worker that has the first.
 */
import { execFile } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { RegistryClient } from '../infra/registry/client.js';
import { createLogger } from '../infra/log.js';
import { ImageCache } from '../worker/images/image-cache.js';
import { LayerStore } from '../worker/images/layer-store.js';
import { Launcher } from '../worker/process/launcher.js';
import { deploy, noop } from './http.js';
import type { Platform } from './harness.js';
import { percentiles, round, type Percentiles } from './stats.js';

const run = promisify(execFile);

export interface ImageFigures {
  /** Pull of a function image into an empty cache. */
  coldPullMs: Percentiles;
  /** Fetching the same blobs with nothing else done (the registry and loopback floor). */
  downloadOnlyMs: Percentiles;
  pulledMiB: number;
  /** Unpacked runtime layers on disk, once per host. */
  baseLayersMiB: number;
  /** A second function of the same runtime on a worker that has the first. */
  additionalPullMs: number;
  additionalDiskKiB: number;
}

export async function imageFigures(platform: Platform, scratch: string, repeats: number): Promise<ImageFigures> {
  const registry = new RegistryClient(platform.config.registry);
  await deploy(platform, { name: 'image-a', source: noop('image-a') });
  await deploy(platform, { name: 'image-b', source: noop('image-b') });
  const imageOf = async (name: string): Promise<string> =>
    ((await (await fetch(`${platform.url}/v1/functions/${name}`, { headers: platform.auth })).json()) as { image: string }).image;
  const [a, b] = [await imageOf('image-a'), await imageOf('image-b')];
  const [repository, digest] = a.split('@') as [string, string];
  const manifest = (await registry.getManifest(repository, digest)).manifest;
  const blobs = [manifest.config, ...manifest.layers];

  const cold: number[] = [];
  const download: number[] = [];
  let baseLayersMiB = 0;
  let additionalPullMs = 0;
  let additionalDiskKiB = 0;
  const launcher = new Launcher();
  try {
    for (let i = 0; i < repeats; i++) {
      const dir = join(scratch, `image-bench-${i}`);
      await mkdir(dir, { recursive: true });
      try {
        const started = performance.now();
        for (const blob of blobs) await registry.pullBlob(repository, blob.digest, join(dir, `blob-${blob.digest.slice(7, 19)}`));
        download.push(performance.now() - started);

        const cache = new ImageCache({
          registry,
          layers: new LayerStore(join(dir, 'layers'), launcher),
          dir: join(dir, 'cache'),
          budgetBytes: Number.MAX_SAFE_INTEGER,
          log: createLogger('bench', 'warn'),
        });
        const t0 = performance.now();
        await cache.image(a);
        cold.push(performance.now() - t0);
        if (i === 0) {
          const before = await diskKiB(join(dir, 'layers'));
          baseLayersMiB =
            (await cache.layers()).filter((l) => manifest.layers.slice(0, -1).some((m) => m.digest === l.digest)).reduce((sum, l) => sum + l.bytes, 0) /
            1024 /
            1024;
          const t1 = performance.now();
          await cache.image(b);
          additionalPullMs = performance.now() - t1;
          additionalDiskKiB = (await diskKiB(join(dir, 'layers'))) - before;
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
  } finally {
    await launcher.stop();
  }
  return {
    coldPullMs: percentiles(cold),
    downloadOnlyMs: percentiles(download),
    pulledMiB: round(blobs.reduce((sum, blob) => sum + blob.size, 0) / 1024 / 1024, 1),
    baseLayersMiB: round(baseLayersMiB, 1),
    additionalPullMs: round(additionalPullMs, 1),
    additionalDiskKiB,
  };
}

/** Disk allocated below `dir` (blocks, not apparent sizes), in KiB. */
async function diskKiB(dir: string): Promise<number> {
  const { stdout } = await run('du', ['-sk', dir]);
  return Number(stdout.split('\t')[0]);
}
