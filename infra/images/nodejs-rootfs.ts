/**
 * Builds the `nodejs20` base root file system from this machine's own Node.js binary: the binary,
 * the shared libraries it links (found with ldd), a few files in /etc, empty mount points, and the
 * Skiff bootstrap. Nothing is downloaded, so the bring-up works offline, and the result is a few
 * files that every container of the runtime shares as one read-only overlay lower layer.
 *
 * The directory is keyed by a digest of its inputs, so a changed bootstrap or Node.js makes a new
 * image and never mutates one that running containers use (rootfs-builder.ts).
 */
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { cp, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyPreservingPath, ensureImage, hashFileStats, listFiles, sharedLibraries, type BaseImage } from './rootfs-builder.js';

export type { BaseImage } from './rootfs-builder.js';

export interface NodeImageInputs {
  /** The Node.js binary to package (the host's, normally process.execPath). */
  nodeBinary: string;
  /** Compiled runtime/ directory (holds nodejs/bootstrap.js and protocol/). */
  runtimeDir: string;
  /** Where images live: `<imagesDir>/nodejs20/<digest>/rootfs`. */
  imagesDir: string;
}

export const NODE_RUNTIME = 'nodejs20';
/** How a nodejs20 container starts: the bootstrap (one V8 platform thread: containers are many, cores few). */
export const NODE_COMMAND = ['/usr/bin/node', '--v8-pool-size=1', '/opt/skiff/runtime/nodejs/bootstrap.js'];
/** Compiled runtime/ directory (bootstraps and protocol) beside this module's build. */
export const NODE_RUNTIME_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'runtime');

const notSourceMap = (path: string, isDirectory: boolean): boolean => isDirectory || !path.endsWith('.map');

export async function ensureNodeImage(inputs: NodeImageInputs): Promise<BaseImage> {
  const nodeBinary = realpathSync(inputs.nodeBinary);
  const libraries = await sharedLibraries(nodeBinary);
  const digest = await inputsDigest(nodeBinary, libraries, inputs.runtimeDir);
  return ensureImage(inputs.imagesDir, 'nodejs20', digest, async (target) => {
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
