/**
 * The worker's images: a function version names its image by digest; on a miss the worker pulls
 * the manifest, the config and each layer it does not have, verifies every digest (the registry
 * client does), and unpacks each layer once into the host's shared LayerStore. Containers then
 * stack those read-only layers with overlayfs. Manifests and configs are kept on disk by digest,
 * so a restarted worker with its cache intact asks the registry for nothing.
 *
 * Concurrent requests for one image, and for one layer, share one pull. Layers no container uses
 * are removed, least recently used first, when the cache is over its disk budget.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SkiffError } from '../../infra/errors.js';
import type { Logger } from '../../infra/log.js';
import type { RegistryClient } from '../../infra/registry/client.js';
import { parseReference } from '../../infra/registry/reference.js';
import { digestHex, GZIP_LAYER_TYPES, isDigest, type ImageConfig, type ImageManifest } from '../../infra/images/oci/types.js';
import { RUNTIME_LABEL } from '../../infra/images/names.js';
import type { LayerStore } from './layer-store.js';
import { mountPointsAndSources } from '../sandbox/mounts.js';

/** An image ready to run: every layer unpacked on this host. */
export interface LocalImage {
  /** Digest of the image manifest. */
  digest: string;
  runtime: string | undefined;
  /** Entrypoint + Cmd of the image config: how its container starts. */
  command: string[];
  /** Layer digests, bottom first. */
  layers: string[];
}

export interface PullObserver {
  /** A pull that fetched something: how long it took and how many bytes came over the network. */
  pulled(seconds: number, bytes: number): void;
}

export class ImageCache {
  private readonly images = new Map<string, Promise<LocalImage>>();
  /** The images of `images` that are done. */
  private readonly loaded = new Map<string, LocalImage>();
  private readonly layerPulls = new Map<string, Promise<void>>();
  /** Last use of each layer by this worker (ms since epoch), for least-recently-used removal. */
  private readonly lastUsed = new Map<string, number>();

  constructor(
    private readonly o: {
      registry: RegistryClient;
      layers: LayerStore;
      /** Where manifests, configs and downloads in progress are kept. */
      dir: string;
      budgetBytes: number;
      log: Logger;
      observer?: PullObserver;
    },
  ) {}

  /** The image `reference` names (`repository@sha256:...` or with a tag), pulled if missing. */
  image(reference: string): Promise<LocalImage> {
    let pending = this.images.get(reference);
    if (!pending) {
      pending = this.load(reference);
      this.images.set(reference, pending);
      // A failed pull is not remembered: the next call tries again.
      pending.then(
        (image) => this.loaded.set(reference, image),
        () => this.images.delete(reference),
      );
    }
    return pending.then((image) => {
      const now = Date.now();
      for (const layer of image.layers) this.lastUsed.set(layer, now);
      return image;
    });
  }

  /** Images loaded and ready, as of now (for the heartbeat). */
  ready(): Array<{ reference: string; digest: string; runtime: string | undefined }> {
    return [...this.loaded.entries()].map(([reference, image]) => ({ reference, digest: image.digest, runtime: image.runtime }));
  }

  /** The unpacked tree of a layer, for overlayfs. */
  layerPath(digest: string): string {
    return this.o.layers.path(digest);
  }

  /** Every layer unpacked on this host, with its size. */
  layers(): Promise<Array<{ digest: string; bytes: number }>> {
    return this.o.layers.list();
  }

  async bytes(): Promise<number> {
    return (await this.o.layers.list()).reduce((sum, layer) => sum + layer.bytes, 0);
  }

  /**
   * Removes layers no container uses while the cache is over its budget, least recently used
   * first. In use means: named by a mount on this host (an overlay's lowerdir or a code bind);
   * that holds across workers sharing the store. Returns the removed digests.
   */
  async collect(): Promise<string[]> {
    const layers = await this.o.layers.list();
    let total = layers.reduce((sum, layer) => sum + layer.bytes, 0);
    if (total <= this.o.budgetBytes) return [];
    const inUse = await this.layersInUse();
    const removable = layers
      .filter((layer) => !inUse.has(layer.digest) && !this.layerPulls.has(layer.digest))
      .sort((a, b) => (this.lastUsed.get(a.digest) ?? 0) - (this.lastUsed.get(b.digest) ?? 0));
    const removed: string[] = [];
    for (const layer of removable) {
      if (total <= this.o.budgetBytes) break;
      await this.o.layers.remove(layer.digest);
      this.lastUsed.delete(layer.digest);
      total -= layer.bytes;
      removed.push(layer.digest);
      // An image one of whose layers is gone must be checked again before its next use (one
      // still loading too: it may have found the layer before it went).
      for (const [reference, pending] of this.images) {
        const image = await pending.catch(() => undefined); // a failed load was its caller's to report, and holds no layer
        if (image?.layers.includes(layer.digest)) {
          this.images.delete(reference);
          this.loaded.delete(reference);
        }
      }
    }
    if (removed.length > 0) this.o.log.info({ removed, bytes: total, budget: this.o.budgetBytes }, 'removed unused image layers');
    return removed;
  }

  private async layersInUse(): Promise<Set<string>> {
    const used = new Set<string>();
    const root = `${this.o.layers.root}/`;
    for (const { point, source } of await mountPointsAndSources()) {
      for (const text of [point, source]) {
        let at = text.indexOf(root);
        while (at >= 0) {
          const hex = text.slice(at + root.length, at + root.length + 64);
          if (/^[a-f0-9]{64}$/.test(hex)) used.add(`sha256:${hex}`);
          at = text.indexOf(root, at + 1);
        }
      }
    }
    return used;
  }

  private async load(reference: string): Promise<LocalImage> {
    if (!reference) throw new SkiffError('ImageNotFound', 'this function version has no image (deployed before images existed): deploy it again');
    const ref = parseReference(reference, this.o.registry.host);
    const started = performance.now();
    let fetchedBytes = 0;
    const manifest = await this.manifest(ref.repository, ref.digest ?? ref.tag ?? 'latest', (n) => (fetchedBytes += n));
    const config = await this.config(ref.repository, manifest.manifest, (n) => (fetchedBytes += n));
    const layers = manifest.manifest.layers;
    for (const layer of layers) {
      if (!GZIP_LAYER_TYPES.includes(layer.mediaType)) {
        throw new SkiffError('ImageCorrupt', `image ${reference} has a layer of type ${layer.mediaType}; Skiff unpacks gzip tar layers`);
      }
    }
    await Promise.all(layers.map((layer) => this.layer(ref.repository, layer.digest, layer.size, (n) => (fetchedBytes += n))));
    if (fetchedBytes > 0) {
      const seconds = (performance.now() - started) / 1000;
      this.o.observer?.pulled(seconds, fetchedBytes);
      this.o.log.info({ image: reference, bytes: fetchedBytes, ms: Math.round(seconds * 1000) }, 'pulled image');
    }
    const command = [...(config.config?.Entrypoint ?? []), ...(config.config?.Cmd ?? [])];
    if (command.length === 0) throw new SkiffError('ImageCorrupt', `image ${reference} has no entrypoint: build it FROM a Skiff runtime image`);
    return {
      digest: manifest.digest,
      runtime: config.config?.Labels?.[RUNTIME_LABEL],
      command,
      layers: layers.map((layer) => layer.digest),
    };
  }

  /** The manifest by digest from disk, or from the registry (then kept). */
  private async manifest(repository: string, reference: string, count: (bytes: number) => void): Promise<{ digest: string; manifest: ImageManifest }> {
    if (isDigest(reference)) {
      const file = join(this.o.dir, 'manifests', digestHex(reference));
      if (existsSync(file)) return { digest: reference, manifest: JSON.parse(await readFile(file, 'utf8')) as ImageManifest };
    }
    const pulled = await this.o.registry.getManifest(repository, reference);
    count(pulled.bytes.length);
    await this.keep(join(this.o.dir, 'manifests', digestHex(pulled.digest)), pulled.bytes);
    return { digest: pulled.digest, manifest: pulled.manifest };
  }

  private async config(repository: string, manifest: ImageManifest, count: (bytes: number) => void): Promise<ImageConfig> {
    const file = join(this.o.dir, 'configs', digestHex(manifest.config.digest));
    if (existsSync(file)) return JSON.parse(await readFile(file, 'utf8')) as ImageConfig;
    const bytes = await this.o.registry.getBlob(repository, manifest.config.digest);
    count(bytes.length);
    await this.keep(file, bytes);
    return JSON.parse(bytes.toString('utf8')) as ImageConfig;
  }

  /** Makes sure one layer is unpacked on this host; one download per layer at a time. */
  private layer(repository: string, digest: string, size: number, count: (bytes: number) => void): Promise<void> {
    if (this.o.layers.has(digest)) return Promise.resolve();
    let pending = this.layerPulls.get(digest);
    if (!pending) {
      pending = (async () => {
        const downloads = join(this.o.dir, 'downloads');
        await mkdir(downloads, { recursive: true });
        const blob = join(downloads, `${digestHex(digest)}.${process.pid}.tar.gz`);
        try {
          count(await this.o.registry.pullBlob(repository, digest, blob));
          await this.o.layers.unpack(digest, blob);
        } finally {
          await rm(blob, { force: true });
        }
        this.o.log.debug({ layer: digest, bytes: size }, 'layer unpacked');
      })().finally(() => this.layerPulls.delete(digest));
      this.layerPulls.set(digest, pending);
    }
    return pending;
  }

  private async keep(file: string, bytes: Buffer): Promise<void> {
    await mkdir(join(file, '..'), { recursive: true });
    const partial = `${file}.${process.pid}`;
    await writeFile(partial, bytes);
    await rename(partial, file);
  }
}
