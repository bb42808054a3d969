/**
 * A deploy's image. From a zip: the runtime's current base image (infra/images/base-images.ts)
 * plus one layer holding the code at /var/task (for Python, its vendored packages with it),
 * pushed to `skiff/functions/<name>`. The base layers are mounted from the runtime's repository
 * (no bytes move) and the code layer is reproducible, so the same zip deployed twice makes the same
 * layer. From a reference: an image someone built (buildah, docker) on a Skiff runtime image,
 * resolved to its digest now, so a tag moved later does not change what the version runs. For
 * runtime `provided`, an image whose entrypoint is a Runtime API client gets the relay in front of
 * that entrypoint (and the provided base's layer beneath, if built on another runtime's image).
 *
 * Either way the version records `skiff/functions/<name>@sha256:...` (or the reference's own
 * repository) by digest, in Skiff's registry: workers pull exactly that.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { invalidRequest, isSkiffError, SkiffError } from '../../infra/errors.js';
import type { RegistryClient } from '../../infra/registry/client.js';
import { parseReference } from '../../infra/registry/reference.js';
import { layerFromDirectory } from '../../infra/images/oci/layer.js';
import { MediaType, sha256Digest, type ImageConfig, type ImageManifest } from '../../infra/images/oci/types.js';
import { CURRENT_TAG, RUNTIME_LABEL, functionRepository, runtimeRepository } from '../../infra/images/names.js';
import { extractZip, type ZipLimits } from '../code/zip-archive.js';
import { RUNTIMES } from '../../infra/functions/version.js';
import { PROVIDED_RUNTIME, RELAY_PATH } from '../../infra/images/provided-rootfs.js';

/** Where the runtime images keep Skiff's own bootstraps. */
const SKIFF_RUNTIME_DIR = '/opt/skiff/runtime/';

export interface BuiltImage {
  /** `<repository>@sha256:...`, without a registry host. */
  reference: string;
  digest: string;
  /** Digest of the layer that holds the code. */
  codeLayer: string;
  codeLayerBytes: number;
}

/** Where the image of a function version comes from. */
export class FunctionImages {
  /** Runtime base images by manifest digest: manifest and config, read once. */
  private readonly bases = new Map<string, { manifest: ImageManifest; config: ImageConfig }>();

  constructor(
    private readonly registry: RegistryClient,
    private readonly limits: ZipLimits,
  ) {}

  /** Builds and pushes the image of a zip deploy (the zip was checked by inspectZip first). */
  async fromZip(name: string, runtime: string, zip: Buffer): Promise<BuiltImage> {
    const base = await this.base(runtime);
    const dir = await mkdtemp(join(tmpdir(), 'skiff-code-'));
    try {
      await extractZip(zip, join(dir, 'code'), this.limits);
      const layer = await layerFromDirectory(join(dir, 'code'), { prefix: 'var/task' });
      const repository = functionRepository(name);
      for (const descriptor of base.manifest.layers) {
        if (!(await this.registry.mountBlob(repository, descriptor.digest, runtimeRepository(runtime)))) {
          throw new SkiffError(
            'RegistryUnavailable',
            `the registry did not share layer ${descriptor.digest} of ${runtimeRepository(runtime)} with ${repository}`,
          );
        }
      }
      await this.registry.pushBlob(repository, layer.digest, layer.blob);
      const config: ImageConfig = {
        ...base.config,
        rootfs: { type: 'layers', diff_ids: [...base.config.rootfs.diff_ids, layer.diffId] },
        history: [...(base.config.history ?? []), { created: '1970-01-01T00:00:00Z', created_by: `skiff deploy ${name} (code at /var/task)` }],
      };
      const configBytes = Buffer.from(JSON.stringify(config));
      const configDigest = sha256Digest(configBytes);
      await this.registry.pushBlob(repository, configDigest, configBytes);
      const manifest: ImageManifest = {
        schemaVersion: 2,
        mediaType: MediaType.manifest,
        config: { mediaType: MediaType.config, digest: configDigest, size: configBytes.length },
        layers: [...base.manifest.layers, { mediaType: MediaType.layerGzip, digest: layer.digest, size: layer.size }],
      };
      // Pushed by digest: a version names its image by digest, and a tag would only move.
      const digest = await this.registry.putManifest(repository, sha256Digest(JSON.stringify(manifest)), manifest, MediaType.manifest);
      return { reference: `${repository}@${digest}`, digest, codeLayer: layer.digest, codeLayerBytes: layer.size };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Resolves an image reference to a digest in Skiff's registry and checks it follows the
   * contract: built on a Skiff runtime image (its config names the runtime), its top layer
   * holding the function under /var/task.
   */
  async fromReference(reference: string, runtime: string, name: string): Promise<BuiltImage> {
    const ref = parseReference(reference, this.registry.host);
    if (ref.host !== this.registry.host) {
      throw invalidRequest(
        'image',
        `image ${reference} is in registry ${ref.host}; Skiff runs images from its registry ${this.registry.host}: push it there (e.g. skopeo copy)`,
      );
    }
    const tagOrDigest = ref.digest ?? ref.tag ?? 'latest';
    let pulled;
    try {
      pulled = await this.registry.getManifest(ref.repository, tagOrDigest);
    } catch (error) {
      if (isSkiffError(error, 'ImageNotFound')) throw invalidRequest('image', `image ${reference} is not in the registry`, error);
      throw error;
    }
    const config = JSON.parse((await this.registry.getBlob(ref.repository, pulled.manifest.config.digest)).toString('utf8')) as ImageConfig;
    const built = config.config?.Labels?.[RUNTIME_LABEL];
    // A Runtime API client (an image's entrypoint) may be built on any Skiff runtime image.
    const providedClient = runtime === PROVIDED_RUNTIME && built !== undefined && (RUNTIMES as readonly string[]).includes(built);
    if (built !== runtime && !providedClient) {
      throw invalidRequest(
        'image',
        `image ${reference} was ${built ? `built for ${built}` : 'not built on a Skiff runtime image'}; deploy it with runtime "${built ?? '...'}" or build it FROM ${runtimeRepository(runtime)}:${CURRENT_TAG}`,
      );
    }
    const top = pulled.manifest.layers.at(-1);
    if (!top || pulled.manifest.layers.length < 2) {
      throw invalidRequest('image', `image ${reference} has no layer of its own above the runtime image: add the function's files under /var/task`);
    }
    if (providedClient) {
      const command = [...(config.config?.Entrypoint ?? []), ...(config.config?.Cmd ?? [])];
      if (built !== PROVIDED_RUNTIME && command.some((arg) => arg.startsWith(SKIFF_RUNTIME_DIR))) {
        throw invalidRequest(
          'image',
          `image ${reference} starts the ${built} bootstrap; for runtime "provided" set its ENTRYPOINT to the Runtime API client that serves the function`,
        );
      }
      if (built !== PROVIDED_RUNTIME || command[0] !== RELAY_PATH) return this.asProvided(name, ref.repository, pulled.manifest, config, built);
    }
    return { reference: `${ref.repository}@${pulled.digest}`, digest: pulled.digest, codeLayer: top.digest, codeLayerBytes: top.size };
  }

  /**
   * The image of a `provided` function whose entrypoint is its own Runtime API client: the same
   * layers (below them the provided base, which holds the relay, when the image was built on
   * another runtime's), with the relay as entrypoint and the image's command as what it starts.
   * Pushed to `skiff/functions/<name>` by digest; the layers are mounted, not copied.
   */
  private async asProvided(name: string, from: string, manifest: ImageManifest, config: ImageConfig, built: string): Promise<BuiltImage> {
    const repository = functionRepository(name);
    const below = built === PROVIDED_RUNTIME ? undefined : await this.base(PROVIDED_RUNTIME);
    const mounts: Array<[string, string]> = [
      ...(below?.manifest.layers ?? []).map((l): [string, string] => [l.digest, runtimeRepository(PROVIDED_RUNTIME)]),
      ...manifest.layers.map((l): [string, string] => [l.digest, from]),
    ];
    for (const [digest, source] of mounts) {
      if (!(await this.registry.mountBlob(repository, digest, source))) {
        throw new SkiffError('RegistryUnavailable', `the registry did not share layer ${digest} of ${source} with ${repository}`);
      }
    }
    const command = [...(config.config?.Entrypoint ?? []), ...(config.config?.Cmd ?? [])];
    const composed: ImageConfig = {
      ...config,
      config: { ...config.config, Entrypoint: [RELAY_PATH, ...command], Cmd: [], Labels: { ...config.config?.Labels, [RUNTIME_LABEL]: PROVIDED_RUNTIME } },
      rootfs: { type: 'layers', diff_ids: [...(below?.config.rootfs.diff_ids ?? []), ...config.rootfs.diff_ids] },
      history: [
        ...(config.history ?? []),
        { created: '1970-01-01T00:00:00Z', created_by: `skiff deploy ${name} (runtime provided: the relay starts ${command.join(' ')})` },
      ],
    };
    const configBytes = Buffer.from(JSON.stringify(composed));
    const configDigest = sha256Digest(configBytes);
    await this.registry.pushBlob(repository, configDigest, configBytes);
    const out: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.manifest,
      config: { mediaType: MediaType.config, digest: configDigest, size: configBytes.length },
      layers: [...(below?.manifest.layers ?? []), ...manifest.layers],
    };
    const digest = await this.registry.putManifest(repository, sha256Digest(JSON.stringify(out)), out, MediaType.manifest);
    const top = manifest.layers.at(-1) as ImageManifest['layers'][number];
    return { reference: `${repository}@${digest}`, digest, codeLayer: top.digest, codeLayerBytes: top.size };
  }

  /** The runtime's current base image, read once per change of its digest. */
  private async base(runtime: string): Promise<{ manifest: ImageManifest; config: ImageConfig }> {
    const repository = runtimeRepository(runtime);
    let current;
    try {
      current = await this.registry.getManifest(repository, CURRENT_TAG);
    } catch (error) {
      if (isSkiffError(error, 'ImageNotFound')) {
        throw new SkiffError('Unavailable', `the ${runtime} base image is not in the registry (${repository}:${CURRENT_TAG}); the bring-up publishes it`, {
          cause: error,
        });
      }
      throw error;
    }
    const cached = this.bases.get(current.digest);
    if (cached) return cached;
    const config = JSON.parse((await this.registry.getBlob(repository, current.manifest.config.digest)).toString('utf8')) as ImageConfig;
    const base = { manifest: current.manifest, config };
    this.bases.set(current.digest, base);
    return base;
  }
}
