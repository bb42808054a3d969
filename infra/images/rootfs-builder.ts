/**
 * What every base root file system shares, whatever its runtime (nodejs-rootfs.ts,
 * python-rootfs.ts): host files copied at their own paths with the shared libraries they link
 * (found with ldd), a few files in /etc, empty mount points, and a content-addressed directory that
 * is built beside its final name and renamed into place once complete, so an image that running
 * containers use is never mutated and a half-built one is never used.
 */
import { execFile } from 'node:child_process';
import { processAlive } from '../services/process.js';
import { existsSync, realpathSync } from 'node:fs';
import { cp, lstat, mkdir, readdir, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Hash } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface BaseImage {
  runtime: string;
  /** Directory used as the overlay lower layer. */
  rootfs: string;
  digest: string;
}

/** Directories that must exist in the image because the container mounts something on them. */
export const MOUNT_POINTS = ['proc', 'dev', 'sys', 'tmp', 'var/task', 'run/skiff', 'opt/skiff'];

/**
 * `<imagesDir>/<runtime>/<digest>/rootfs`, built by `fill` if it is not there yet. `fill` gets an
 * empty root with the mount points, the host's top-level links and /etc already in place.
 */
export async function ensureImage(imagesDir: string, runtime: string, digest: string, fill: (target: string) => Promise<void>): Promise<BaseImage> {
  const imageDir = join(imagesDir, runtime, digest);
  const rootfs = join(imageDir, 'rootfs');
  if (existsSync(join(imageDir, 'ready'))) return { runtime, rootfs, digest };

  const building = `${imageDir}.building-${process.pid}`;
  await removeStaleBuilds(dirname(imageDir), digest);
  const target = join(building, 'rootfs');
  await mkdir(target, { recursive: true });
  for (const dir of MOUNT_POINTS) await mkdir(join(target, dir), { recursive: true });
  await copyHostTopLevelLinks(target);
  await fill(target);
  await writeEtc(target);
  await writeFile(join(building, 'ready'), `${new Date().toISOString()}\n`);
  await mkdir(dirname(imageDir), { recursive: true });
  try {
    await rename(building, imageDir);
  } catch (error) {
    // Another process built the same image first: its copy is identical, and may be in use.
    if (!existsSync(join(imageDir, 'ready'))) throw error;
    await rm(building, { recursive: true, force: true });
  }
  return { runtime, rootfs, digest };
}

/** A build that died halfway leaves a `.building-<pid>` directory; once its process is gone, remove it. */
async function removeStaleBuilds(runtimeDir: string, digest: string): Promise<void> {
  if (!existsSync(runtimeDir)) return;
  for (const name of await readdir(runtimeDir)) {
    if (!name.startsWith(`${digest}.building-`)) continue;
    const pid = Number(name.slice(`${digest}.building-`.length));
    if (!processAlive(pid)) await rm(join(runtimeDir, name), { recursive: true, force: true });
  }
}

/** The shared libraries the binaries link, by the paths ldd prints (the dynamic loader included). */
export async function sharedLibraries(...binaries: string[]): Promise<string[]> {
  // One ldd for all of them: it prints a `file:` header line per binary, which the pattern skips.
  const { stdout } = await run('ldd', binaries, { maxBuffer: 16 * 1024 * 1024 });
  const libs = new Set<string>();
  for (const line of stdout.split('\n')) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    const match = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (match?.[1]) libs.add(match[1]);
  }
  return [...libs];
}

/** Adds each file's path, size and modification time: cheap, and changes when a package is upgraded. */
export async function hashFileStats(hash: Hash, files: readonly string[]): Promise<void> {
  for (const file of files) {
    const info = await stat(file);
    hash.update(`${file}:${info.size}:${info.mtimeMs}\n`);
  }
}

/** Every regular file below `dir`, sorted, for which `keep` holds (a directory it refuses is not entered). */
export async function listFiles(dir: string, keep: (path: string, isDirectory: boolean) => boolean = () => true): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (!keep(path, entry.isDirectory())) continue;
    if (entry.isDirectory()) out.push(...(await listFiles(path, keep)));
    else out.push(path);
  }
  return out.sort();
}

/** On merged-/usr systems /lib and /lib64 are links into /usr; the image mirrors them. */
async function copyHostTopLevelLinks(target: string): Promise<void> {
  for (const name of ['lib', 'lib64', 'bin', 'sbin']) {
    const host = `/${name}`;
    const info = await lstat(host).catch(() => undefined);
    if (!info?.isSymbolicLink()) continue;
    const link = await readlink(host);
    await symlink(link, join(target, name));
    // The link's target must exist in the image for paths through the link to resolve.
    await mkdir(join(target, link.startsWith('/') ? link : `/${link}`), { recursive: true });
  }
}

/** Copies a file to the same (link-resolved) path inside the image, plus the path it was named by. */
export async function copyPreservingPath(file: string, target: string): Promise<void> {
  const real = realpathSync(file);
  const dest = join(target, real);
  await mkdir(dirname(dest), { recursive: true });
  await cp(real, dest, { dereference: true });
  // ld.so looks libraries up by the name ldd printed; when that name differs from the real path
  // outside a linked top-level directory, add a link with that name.
  const named = join(target, file);
  if (named !== dest && !existsSync(named)) {
    await mkdir(dirname(named), { recursive: true });
    await symlink(real, named);
  }
}

async function writeEtc(target: string): Promise<void> {
  const etc = join(target, 'etc');
  await mkdir(etc, { recursive: true });
  await writeFile(
    join(etc, 'passwd'),
    'root:x:0:0:root:/root:/sbin/nologin\nsbx:x:1000:1000:sandbox:/tmp:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n',
  );
  await writeFile(join(etc, 'group'), 'root:x:0:\nsbx:x:1000:\nnogroup:x:65534:\n');
  await writeFile(join(etc, 'hosts'), '127.0.0.1 localhost\n::1 localhost\n');
  await writeFile(join(etc, 'nsswitch.conf'), 'passwd: files\ngroup: files\nhosts: files dns\n');
  await writeFile(join(etc, 'resolv.conf'), '');
  if (existsSync(CA_BUNDLE)) {
    await mkdir(join(etc, 'ssl/certs'), { recursive: true });
    await cp(CA_BUNDLE, join(etc, 'ssl/certs/ca-certificates.crt'));
  }
}

/** Debian's CA certificates, copied to the same path in every image when the host has them. */
export const CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
