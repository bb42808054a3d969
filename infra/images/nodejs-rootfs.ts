/**
 * Builds a Node.js runtime's base root file system (`nodejs20`, `nodejs22`, `nodejs24`) from one
 * Node.js binary: the host's own when its major version is the runtime's, else the official
 * release fetched for it (node-dist.ts). The image holds the binary, the shared libraries it links
 * (found with ldd), a few files in /etc, empty mount points, and the Skiff bootstrap — the same
 * bootstrap for every Node.js runtime, told its runtime's name by the image's command. The result
 * is a few files that every container of the runtime shares as one read-only overlay lower layer.
 *
 * The directory is keyed by a digest of its inputs, so a changed bootstrap or Node.js makes a new
 * image and never mutates one that running containers use (rootfs-builder.ts).
 */
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { cp, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureNodeRelease } from './node-dist.js';
import { NODE_RELEASES, nodeMajor, type NodeRelease } from './node-releases.js';
import { copyPreservingPath, ensureImage, hashFileStats, listFiles, sharedLibraries, type BaseImage } from './rootfs-builder.js';

export type { BaseImage } from './rootfs-builder.js';

export interface NodeImageInputs {
  /** `nodejs20`, `nodejs22`, ... */
  runtime: string;
  /** The Node.js binary to package. */
  nodeBinary: string;
  /** Compiled runtime/ directory (holds nodejs/bootstrap.js and protocol/). */
  runtimeDir: string;
  /** Where images live: `<imagesDir>/<runtime>/<digest>/rootfs`. */
  imagesDir: string;
}

/** The Node.js runtimes, oldest first (each is pinned in node-releases.ts). */
export const NODE_RUNTIMES = NODE_RELEASES.map((release) => release.runtime);
/**
 * How a Node.js container starts: the bootstrap, with its runtime's name (one V8 platform thread:
 * containers are many, cores few). Images made before the name was passed start without it, and
 * the bootstrap then says `nodejs20`, which they all were.
 */
export const nodeCommand = (runtime: string): string[] => ['/usr/bin/node', '--v8-pool-size=1', '/opt/skiff/runtime/nodejs/bootstrap.js', runtime];
/** Compiled runtime/ directory (bootstraps and protocol) beside this module's build. */
export const NODE_RUNTIME_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'runtime');

const notSourceMap = (path: string, isDirectory: boolean): boolean => isDirectory || !path.endsWith('.map');

/**
 * The binary `release`'s runtime is built from: this process's own Node.js when it is of that major
 * version (nothing fetched), else the pinned official release under `nodeDir`.
 */
export async function nodeBinaryFor(release: NodeRelease, nodeDir: string, progress: (message: string) => void): Promise<string> {
  if (Number(process.versions.node.split('.')[0]) === nodeMajor(release.runtime)) return process.execPath;
  return ensureNodeRelease(nodeDir, release, progress);
}

export async function ensureNodeImage(inputs: NodeImageInputs): Promise<BaseImage> {
  const nodeBinary = realpathSync(inputs.nodeBinary);
  const libraries = await sharedLibraries(nodeBinary);
  const digest = await inputsDigest(nodeBinary, libraries, inputs.runtimeDir);
  return ensureImage(inputs.imagesDir, inputs.runtime, digest, async (target) => {
    for (const file of [nodeBinary, ...libraries]) await copyPreservingPath(file, target);
    await mkdir(join(target, 'usr/bin'), { recursive: true });
    if (nodeBinary !== '/usr/bin/node') await symlink(nodeBinary, join(target, 'usr/bin/node'));
    await cp(inputs.runtimeDir, join(target, 'opt/skiff/runtime'), {
      recursive: true,
      filter: (src) => !src.endsWith('.map'),
    });
    await writeFile(join(target, 'opt/skiff/package.json'), '{"type":"module"}\n');
  });
}

async function inputsDigest(nodeBinary: string, libraries: string[], runtimeDir: string): Promise<string> {
  const hash = createHash('sha256');
  await hashFileStats(hash, [nodeBinary, ...libraries]);
  for (const file of await listFiles(runtimeDir, notSourceMap)) {
    hash.update(`${relative(runtimeDir, file)}\n`);
    hash.update(await readFile(file));
  }
  return hash.digest('hex').slice(0, 16);
}
