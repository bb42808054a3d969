/**
 * Builds the `provided` base root file system: a minimal userland (Debian's static busybox, with a
 * link per applet, so `#!/bin/sh` bootstraps with `wget`, `sed` and the usual tools work) and Skiff's
 * Runtime API relay (runtime/provided/relay.c), compiled here with the machine's gcc and linked
 * statically, so the image holds no interpreter and no shared library. The relay is the container's
 * process: it speaks the worker protocol and serves the Lambda Runtime API to the function's own
 * runtime (docs/RUNTIMES.md). Nothing is downloaded.
 *
 * The directory is keyed by a digest of its inputs (busybox's path, size and time, the compiler's
 * version, the relay's source), like the other images (rootfs-builder.ts).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, realpathSync } from 'node:fs';
import { mkdir, readFile, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { copyPreservingPath, ensureImage, hashFileStats, type BaseImage } from './rootfs-builder.js';

const run = promisify(execFile);

export const PROVIDED_RUNTIME = 'provided';
/** Debian's `busybox-static`: one static binary, every applet in it. */
export const BUSYBOX_BINARY = '/bin/busybox';
export const C_COMPILER = 'gcc';
/** The relay's source (it is compiled when the image is built): runtime/provided in the checkout, beside dist/. */
export const PROVIDED_RUNTIME_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'runtime', 'provided');
/** Where the relay is in the image; with no arguments it runs `$LAMBDA_TASK_ROOT/bootstrap`. */
export const RELAY_PATH = '/opt/skiff/runtime/provided/relay';
export const PROVIDED_COMMAND = [RELAY_PATH];

/** Bumped when what the builder puts in the image changes without its inputs changing. */
const LAYOUT_VERSION = 1;

export interface ProvidedImageInputs {
  busyboxBinary: string;
  /** Directory holding relay.c ({@link PROVIDED_RUNTIME_DIR}). */
  runtimeDir: string;
  imagesDir: string;
}

/** Whether this machine can build the image: a static busybox and a C compiler with a static libc. */
export async function providedAvailable(): Promise<{ ok: true } | { ok: false; reason: string }> {
  if (!existsSync(BUSYBOX_BINARY)) return { ok: false, reason: `${BUSYBOX_BINARY} not found (Debian package busybox-static)` };
  try {
    await run(C_COMPILER, ['--version']);
  } catch {
    return { ok: false, reason: `${C_COMPILER} not found (Debian packages gcc and libc6-dev)` };
  }
  return { ok: true };
}

export async function ensureProvidedImage(inputs: ProvidedImageInputs): Promise<BaseImage> {
  const busybox = realpathSync(inputs.busyboxBinary);
  const source = join(inputs.runtimeDir, 'relay.c');
  const sourceText = await readFile(source);
  const compiler = (await run(C_COMPILER, ['--version'])).stdout.split('\n')[0] ?? '';
  const hash = createHash('sha256');
  hash.update(`layout ${LAYOUT_VERSION}\n${compiler}\n`);
  await hashFileStats(hash, [busybox]);
  hash.update(sourceText);
  const digest = hash.digest('hex').slice(0, 16);

  return ensureImage(inputs.imagesDir, PROVIDED_RUNTIME, digest, async (target) => {
    await copyPreservingPath(busybox, target);
    const { stdout } = await run(busybox, ['--list']);
    const bin = join(target, 'usr/bin');
    await mkdir(bin, { recursive: true });
    for (const applet of stdout.split('\n').filter((name) => /^[\w.[-]+$/.test(name))) {
      const link = join(bin, applet);
      if (!existsSync(link)) await symlink(busybox, link);
    }
    const relay = join(target, RELAY_PATH);
    await mkdir(dirname(relay), { recursive: true });
    try {
      await run(C_COMPILER, ['-std=gnu11', '-Os', '-static', '-s', '-Wall', '-Wextra', '-Werror', '-o', relay, source]);
    } catch (error) {
      const stderr = (error as { stderr?: string }).stderr ?? '';
      throw new Error(`compiling the Runtime API relay (${source}) failed: ${stderr.trim().slice(0, 2000)}`, { cause: error });
    }
  });
}
