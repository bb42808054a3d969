/**
 * Builds the `nodejs20` base root file system from this machine's own Node.js binary: the binary,
 * the shared libraries it links (found with ldd), a few files in /etc, empty mount points, and the
 * Skiff bootstrap. Nothing is downloaded, so the bring-up works offline, and the result is a few
 * files that every container of the runtime shares as one read-only overlay lower layer.
 *
 * The directory is keyed by a digest of its inputs, so a changed bootstrap or Node.js makes a new
 * image and never mutates one that running containers use.
 */
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cp, mkdir, readdir, readFile, readlink, rename, rm, stat, symlink, writeFile, lstat } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { existsSync, realpathSync } from 'node:fs';

const run = promisify(execFile);

export interface BaseImage {
  runtime: string;
  /** Directory used as the overlay lower layer. */
  rootfs: string;
  digest: string;
}

export interface NodeImageInputs {
  /** The Node.js binary to package (the host's, normally process.execPath). */
  nodeBinary: string;
  /** Compiled runtime/ directory (holds nodejs/bootstrap.js and protocol/). */
  runtimeDir: string;
  /** Where images live: `<imagesDir>/nodejs20/<digest>/rootfs`. */
  imagesDir: string;
}

/** Directories that must exist in the image because the container mounts something on them. */
const MOUNT_POINTS = ['proc', 'dev', 'sys', 'tmp', 'var/task', 'run/skiff', 'opt/skiff'];

export async function ensureNodeImage(inputs: NodeImageInputs): Promise<BaseImage> {
  const nodeBinary = realpathSync(inputs.nodeBinary);
  const libraries = await sharedLibraries(nodeBinary);
  const digest = await inputsDigest(nodeBinary, libraries, inputs.runtimeDir);
  const imageDir = join(inputs.imagesDir, 'nodejs20', digest);
  const rootfs = join(imageDir, 'rootfs');
  if (existsSync(join(imageDir, 'ready'))) return { runtime: 'nodejs20', rootfs, digest };

  const building = `${imageDir}.building-${process.pid}`;
  await removeStaleBuilds(dirname(imageDir), digest);
  const target = join(building, 'rootfs');
  await mkdir(target, { recursive: true });
  for (const dir of MOUNT_POINTS) await mkdir(join(target, dir), { recursive: true });
  await copyHostTopLevelLinks(target);
  for (const file of [nodeBinary, ...libraries]) await copyPreservingPath(file, target);
  await mkdir(join(target, 'usr/bin'), { recursive: true });
  if (nodeBinary !== '/usr/bin/node') await symlink(nodeBinary, join(target, 'usr/bin/node'));
  await writeEtc(target);
  await cp(inputs.runtimeDir, join(target, 'opt/skiff/runtime'), {
    recursive: true,
    filter: (src) => !src.endsWith('.map'),
  });
  await writeFile(join(target, 'opt/skiff/package.json'), '{"type":"module"}\n');
  await writeFile(join(building, 'ready'), `${new Date().toISOString()}\n`);
  await mkdir(dirname(imageDir), { recursive: true });
  try {
    await rename(building, imageDir);
  } catch (error) {
    // Another process built the same image first: its copy is identical, and may be in use.
    if (!existsSync(join(imageDir, 'ready'))) throw error;
    await rm(building, { recursive: true, force: true });
  }
  return { runtime: 'nodejs20', rootfs, digest };
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

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function sharedLibraries(binary: string): Promise<string[]> {
  const { stdout } = await run('ldd', [binary]);
  const libs = new Set<string>();
  for (const line of stdout.split('\n')) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    const match = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (match?.[1]) libs.add(match[1]);
  }
  return [...libs];
}

async function inputsDigest(nodeBinary: string, libraries: string[], runtimeDir: string): Promise<string> {
  const hash = createHash('sha256');
  for (const file of [nodeBinary, ...libraries]) {
    const info = await stat(file);
    hash.update(`${file}:${info.size}:${info.mtimeMs}\n`);
  }
  for (const file of await listFiles(runtimeDir)) {
    hash.update(`${relative(runtimeDir, file)}\n`);
    hash.update(await readFile(file));
  }
  return hash.digest('hex').slice(0, 16);
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(path)));
    else if (!entry.name.endsWith('.map')) out.push(path);
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
async function copyPreservingPath(file: string, target: string): Promise<void> {
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
  await writeFile(join(etc, 'passwd'), 'root:x:0:0:root:/root:/sbin/nologin\nsbx:x:1000:1000:sandbox:/tmp:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n');
  await writeFile(join(etc, 'group'), 'root:x:0:\nsbx:x:1000:\nnogroup:x:65534:\n');
  await writeFile(join(etc, 'hosts'), '127.0.0.1 localhost\n::1 localhost\n');
  await writeFile(join(etc, 'nsswitch.conf'), 'passwd: files\ngroup: files\nhosts: files dns\n');
  await writeFile(join(etc, 'resolv.conf'), '');
  if (existsSync('/etc/ssl/certs/ca-certificates.crt')) {
    await mkdir(join(etc, 'ssl/certs'), { recursive: true });
    await cp('/etc/ssl/certs/ca-certificates.crt', join(etc, 'ssl/certs/ca-certificates.crt'));
  }
}
