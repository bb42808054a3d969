/**
 * Runtime base images as OCI images in the registry. Each runtime's root file system is built from
 * this machine's packages or a pinned, checked Node.js release (nodejs-rootfs.ts, python-rootfs.ts), packed into one reproducible layer,
 * and pushed as `skiff/runtime/<runtime>` tagged `inputs-<digest of what it was built from>` and
 * `current`. Function images are built on `current` (gateway/images/function-images.ts); workers
 * pull whatever layers a function's image names.
 *
 * The packed layer is kept beside the root file system, so publishing again (every bring-up, every
 * test run) costs a tag lookup, not a compression of ~100 MB.
 */
import { existsSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { isSkiffError } from '../errors.js';
import type { Runtime } from '../functions/version.js';
import type { Logger } from '../log.js';
import type { RegistryClient } from '../registry/client.js';
import { layerFromDirectory } from './oci/layer.js';
import { MediaType, sha256Digest, hostPlatform, type ImageConfig, type ImageManifest } from './oci/types.js';
import { CURRENT_TAG, RUNTIME_LABEL, runtimeRepository } from './names.js';
import { NODE_RELEASES } from './node-releases.js';
import { ensureNodeImage, nodeBinaryFor, nodeCommand, NODE_RUNTIME_DIR } from './nodejs-rootfs.js';
import { ensurePythonImage, pythonAvailable, PYTHON_BINARY, PYTHON_COMMAND, PYTHON_RUNTIME, PYTHON_RUNTIME_DIR } from './python-rootfs.js';
import { BUSYBOX_BINARY, ensureProvidedImage, providedAvailable, PROVIDED_COMMAND, PROVIDED_RUNTIME, PROVIDED_RUNTIME_DIR } from './provided-rootfs.js';

export interface BaseRootfs {
  runtime: string;
  /** The built root file system (rootfs-builder.ts). */
  rootfs: string;
  /** Digest of the inputs it was built from. */
  inputsDigest: string;
  /** The bootstrap command: the image's entrypoint. */
  command: string[];
}

export interface PublishedBase {
  runtime: string;
  repository: string;
  /** Digest of the image manifest. */
  digest: string;
}

interface PackedLayer {
  digest: string;
  diffId: string;
  size: number;
}

export interface PublishOptions {
  /** Built root file systems: `<imagesDir>/<runtime>/<digest>/rootfs` (SKIFF_IMAGES_DIR). */
  imagesDir: string;
  /** Fetched Node.js releases (SKIFF_NODE_DIR, node-dist.ts). */
  nodeDir: string;
  /** Only these runtimes (default: every one). */
  runtimes?: readonly Runtime[];
}

export interface RuntimeImages {
  published: PublishedBase[];
  /** Runtimes this machine could not build, and why (the others are published all the same). */
  unavailable: Array<{ runtime: string; reason: string }>;
}

/**
 * Builds (when missing) and publishes every runtime this machine can offer. A runtime that cannot
 * be built (its Node.js release could not be fetched, no python3.11) is left out with its reason;
 * the others are published all the same. `progress` hears the slow steps (fetching a release).
 */
export async function publishRuntimeImages(
  client: RegistryClient,
  dirs: PublishOptions,
  log: Logger,
  progress: (message: string) => void = (message) => log.info(message),
): Promise<RuntimeImages> {
  const bases: BaseRootfs[] = [];
  const unavailable: RuntimeImages['unavailable'] = [];
  const wanted = (runtime: Runtime): boolean => dirs.runtimes === undefined || dirs.runtimes.includes(runtime);
  for (const release of NODE_RELEASES.filter((r) => wanted(r.runtime))) {
    try {
      const nodeBinary = await nodeBinaryFor(release, dirs.nodeDir, progress);
      const node = await ensureNodeImage({ runtime: release.runtime, nodeBinary, runtimeDir: NODE_RUNTIME_DIR, imagesDir: dirs.imagesDir });
      bases.push({ runtime: release.runtime, rootfs: node.rootfs, inputsDigest: node.digest, command: nodeCommand(release.runtime) });
    } catch (error) {
      const reason = (error as Error).message;
      log.error({ err: error, runtime: release.runtime }, `no ${release.runtime} base image: ${reason}`);
      unavailable.push({ runtime: release.runtime, reason });
    }
  }
  if (wanted(PYTHON_RUNTIME) && (await pythonAvailable())) {
    const python = await ensurePythonImage({ pythonBinary: PYTHON_BINARY, runtimeDir: PYTHON_RUNTIME_DIR, imagesDir: dirs.imagesDir });
    bases.push({ runtime: PYTHON_RUNTIME, rootfs: python.rootfs, inputsDigest: python.digest, command: PYTHON_COMMAND });
  } else if (wanted(PYTHON_RUNTIME)) {
    log.warn({ runtime: PYTHON_RUNTIME, binary: PYTHON_BINARY }, `${PYTHON_BINARY} not found: no ${PYTHON_RUNTIME} base image`);
    unavailable.push({ runtime: PYTHON_RUNTIME, reason: `${PYTHON_BINARY} not found` });
  }
  const provided = wanted(PROVIDED_RUNTIME) ? await providedAvailable() : undefined;
  if (provided?.ok) {
    const image = await ensureProvidedImage({ busyboxBinary: BUSYBOX_BINARY, runtimeDir: PROVIDED_RUNTIME_DIR, imagesDir: dirs.imagesDir });
    bases.push({ runtime: PROVIDED_RUNTIME, rootfs: image.rootfs, inputsDigest: image.digest, command: PROVIDED_COMMAND });
  } else if (provided) {
    log.warn({ runtime: PROVIDED_RUNTIME }, `${provided.reason}: no ${PROVIDED_RUNTIME} base image`);
    unavailable.push({ runtime: PROVIDED_RUNTIME, reason: provided.reason });
  }
  const published: PublishedBase[] = [];
  for (const base of bases) published.push(await publishBaseImage(client, base, log));
  return { published, unavailable };
}

/** Pushes one runtime's base image unless the registry already has it, and points `current` at it. */
export async function publishBaseImage(client: RegistryClient, base: BaseRootfs, log: Logger): Promise<PublishedBase> {
  const repository = runtimeRepository(base.runtime);
  const tag = `inputs-${base.inputsDigest}`;
  const existing = await client.getManifest(repository, tag).catch((error: unknown) => {
    if (isSkiffError(error, 'ImageNotFound')) return undefined;
    throw error;
  });
  if (existing) {
    await client.putManifest(repository, CURRENT_TAG, existing.manifest, existing.mediaType);
    return { runtime: base.runtime, repository, digest: existing.digest };
  }

  const started = performance.now();
  const layer = await packedLayer(base.rootfs, log, base.runtime);
  await client.pushBlob(repository, layer.digest, layerFile(base.rootfs));
  const config: ImageConfig = {
    ...hostPlatform(),
    created: '1970-01-01T00:00:00Z',
    config: {
      Entrypoint: base.command,
      Env: ['PATH=/usr/local/bin:/usr/bin:/bin'],
      WorkingDir: '/var/task',
      Labels: { [RUNTIME_LABEL]: base.runtime },
    },
    rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    history: [{ created: '1970-01-01T00:00:00Z', created_by: `skiff ${base.runtime} base (${base.inputsDigest})` }],
  };
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDigest = sha256Digest(configBytes);
  await client.pushBlob(repository, configDigest, configBytes);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.manifest,
    config: { mediaType: MediaType.config, digest: configDigest, size: configBytes.length },
    layers: [{ mediaType: MediaType.layerGzip, digest: layer.digest, size: layer.size }],
  };
  const digest = await client.putManifest(repository, tag, manifest, MediaType.manifest);
  await client.putManifest(repository, CURRENT_TAG, manifest, MediaType.manifest);
  log.info({ runtime: base.runtime, digest, layerBytes: layer.size, ms: Math.round(performance.now() - started) }, `published the ${base.runtime} base image`);
  return { runtime: base.runtime, repository, digest };
}

const layerFile = (rootfs: string): string => join(dirname(rootfs), 'layer.tar.gz');

/** The root file system packed as a layer, once: kept as layer.tar.gz + layer.json beside it. */
async function packedLayer(rootfs: string, log: Logger, runtime: string): Promise<PackedLayer> {
  const meta = join(dirname(rootfs), 'layer.json');
  if (existsSync(meta) && existsSync(layerFile(rootfs))) return JSON.parse(await readFile(meta, 'utf8')) as PackedLayer;
  log.info({ runtime }, `packing the ${runtime} base layer`);
  const layer = await layerFromDirectory(rootfs);
  const partial = `${layerFile(rootfs)}.${process.pid}`;
  await writeFile(partial, layer.blob);
  await rename(partial, layerFile(rootfs));
  const packed: PackedLayer = { digest: layer.digest, diffId: layer.diffId, size: layer.size };
  await writeFile(`${meta}.${process.pid}`, JSON.stringify(packed));
  await rename(`${meta}.${process.pid}`, meta);
  return packed;
}
