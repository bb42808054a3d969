/** Pushes images as a user's builder would (buildah, docker): a Skiff runtime image plus one layer under /var/task. */
import { RegistryClient, type RegistryClientOptions } from '../../infra/registry/client.js';
import { layerFromFiles, type LayerFile } from '../../infra/images/oci/layer.js';
import { MediaType, sha256Digest, type ImageConfig, type ImageManifest } from '../../infra/images/oci/types.js';
import { runtimeRepository } from '../../infra/images/names.js';

/** `repository:tag` built on `runtime`'s current image, with `files` under /var/task and, if given, its own entrypoint. */
export async function pushRuntimeImage(
  registryOptions: RegistryClientOptions,
  image: { repository: string; tag: string; runtime: string; files: LayerFile[]; entrypoint?: string[] },
): Promise<{ digest: string; codeLayer: string }> {
  const registry = new RegistryClient(registryOptions);
  const from = runtimeRepository(image.runtime);
  const base = await registry.getManifest(from, 'current');
  const baseConfig = JSON.parse((await registry.getBlob(from, base.manifest.config.digest)).toString()) as ImageConfig;
  for (const layer of base.manifest.layers) await registry.mountBlob(image.repository, layer.digest, from);
  const layer = await layerFromFiles(image.files, { prefix: 'var/task' });
  await registry.pushBlob(image.repository, layer.digest, layer.blob);
  const config: ImageConfig = {
    ...baseConfig,
    ...(image.entrypoint ? { config: { ...baseConfig.config, Entrypoint: image.entrypoint } } : {}),
    rootfs: { type: 'layers', diff_ids: [...baseConfig.rootfs.diff_ids, layer.diffId] },
  };
  const configBytes = Buffer.from(JSON.stringify(config));
  await registry.pushBlob(image.repository, sha256Digest(configBytes), configBytes);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.manifest,
    config: { mediaType: MediaType.config, digest: sha256Digest(configBytes), size: configBytes.length },
    layers: [...base.manifest.layers, { mediaType: MediaType.layerGzip, digest: layer.digest, size: layer.size }],
  };
  return { digest: await registry.putManifest(image.repository, image.tag, manifest, MediaType.manifest), codeLayer: layer.digest };
}
