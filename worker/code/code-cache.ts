/**
 * A function version's files on this worker: its image pulled (ImageCache), and the image's top
 * layer — the function's own, holding /var/task — made a read-only mount point of this worker,
 * which every instance of the version binds at /var/task. The layers beneath are the container's
 * root (the runtime image), shared by every function built on it.
 *
 * The mount point is per worker (several workers on one host share the layers, not their mounts),
 * and read-only at its source, so the binds made from it are read-only inside containers too.
 * Code mounts of versions this worker has not used for a while are released, so that their layers
 * can be collected.
 */
import { existsSync } from 'node:fs';
import { mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SkiffError } from '../../infra/errors.js';
import { isErrnoError } from '../../infra/host-error.js';
import { digestHex } from '../../infra/images/oci/types.js';
import type { FunctionVersion } from '../../infra/functions/version.js';
import type { ImageCache, LocalImage } from '../images/image-cache.js';
import type { CommandRunner } from '../process/command-runner.js';
import { bindReadOnly, unmountTree } from '../sandbox/mounts.js';
import type { RuntimeImage } from '../sandbox/sandbox.js';

export interface PreparedCode {
  /** Read-only directory to bind at /var/task. */
  codeDir: string;
  image: LocalImage;
  /** The container's root: the image without its top layer. */
  root: RuntimeImage;
}

/** The root a container of `image` runs on: every layer but the top one (the function's). */
export function rootOf(image: LocalImage, images: Pick<ImageCache, 'layerPath'>, withTop = false): RuntimeImage {
  const layers = withTop ? image.layers : image.layers.slice(0, -1);
  return {
    runtime: image.runtime ?? 'unknown',
    layers,
    lowerDirs: layers.map((layer) => images.layerPath(layer)).reverse(),
    command: image.command,
  };
}

/**
 * What an instance needs of a version's code: the instance set's view of the code cache.
 *
 * Contract: `prepare` resolves with a read-only directory holding the version's /var/task, to
 * bind into a container, and the root the container runs on (the image without its top layer).
 * Preparing a version again returns the same directory while it is prepared. An image that cannot
 * be pulled or is not a Skiff image of `fn.runtime` rejects (ImageNotFound, ImageCorrupt, ...).
 */
export interface CodeSource {
  prepare(fn: FunctionVersion): Promise<Pick<PreparedCode, 'codeDir' | 'root'>>;
}

export class CodeCache implements CodeSource {
  private readonly mounts = new Map<string, Promise<string>>();
  private readonly lastUsed = new Map<string, number>();
  /** The image each mounted layer was prepared for (an image's top layer is its own). */
  private readonly imageOf = new Map<string, string>();

  constructor(
    private readonly images: ImageCache,
    /** Where this worker's code mount points are. */
    private readonly dir: string,
    /** Runs the mount commands: the worker's launcher. */
    private readonly launcher: CommandRunner,
  ) {}

  async prepare(fn: FunctionVersion): Promise<PreparedCode> {
    const { codeDir, image } = await this.prepareImage(fn.image);
    if (fn.runtime !== image.runtime) {
      throw new SkiffError('ImageCorrupt', `image ${fn.image} is a ${image.runtime ?? 'non-Skiff'} image, not ${fn.runtime}`);
    }
    return { codeDir, image, root: rootOf(image, this.images) };
  }

  /**
   * Pulls `reference` and mounts its code: what a call's cold start would do, done ahead of it
   * when a version is deployed (a prefetch), so its first call only binds the code.
   */
  async prepareImage(reference: string): Promise<{ codeDir: string; image: LocalImage }> {
    const image = await this.images.image(reference);
    const top = image.layers.at(-1);
    if (!top || image.layers.length < 2) throw new SkiffError('ImageCorrupt', `image ${reference} has no function layer above its runtime`);
    this.lastUsed.set(top, Date.now());
    this.imageOf.set(top, reference);
    let mounted = this.mounts.get(top);
    if (!mounted) {
      mounted = this.mount(top, reference);
      this.mounts.set(top, mounted);
      mounted.catch(() => this.mounts.delete(top)); // the failure is the caller's, below; the next call mounts again
    }
    return { codeDir: await mounted, image };
  }

  private async mount(layer: string, reference: string): Promise<string> {
    const source = join(this.images.layerPath(layer), 'var', 'task');
    if (!existsSync(source)) throw new SkiffError('ImageCorrupt', `the top layer of image ${reference} has no /var/task: the function's files go there`);
    const target = join(this.dir, digestHex(layer));
    await mkdir(target, { recursive: true });
    await bindReadOnly(this.launcher, source, target);
    return target;
  }

  /**
   * Unmounts code not prepared for `idleMs` whose image no live instance runs (`liveImages`). A
   * mount point that cannot be removed once unmounted does not stop the others: the failures are
   * thrown together at the end.
   */
  async releaseUnused(idleMs: number, liveImages: ReadonlySet<string>): Promise<void> {
    const left: unknown[] = [];
    for (const [layer, mounted] of this.mounts) {
      if (liveImages.has(this.imageOf.get(layer) ?? '') || Date.now() - (this.lastUsed.get(layer) ?? 0) < idleMs) continue;
      this.mounts.delete(layer);
      this.imageOf.delete(layer);
      // A mount that failed was reported to the call that prepared it: nothing to release.
      const target = await mounted.catch(() => undefined);
      if (target) {
        await unmountTree(this.launcher, target);
        await rmdir(target).catch((error: unknown) => {
          if (!isErrnoError(error) || error.code !== 'ENOENT') left.push(error);
        });
      }
    }
    if (left.length > 0) throw new AggregateError(left, `${left.length} code mount point(s) could not be removed`);
  }

  /** Unmounts every code mount point of this worker. */
  async close(): Promise<void> {
    await Promise.allSettled(this.mounts.values());
    this.mounts.clear();
    await unmountTree(this.launcher, this.dir);
  }
}
