/**
 * The mounts a sandbox needs on the host, made with util-linux `mount`/`umount`:
 *  - its root: overlayfs with the runtime image as the shared read-only lower and a private upper;
 *  - its task directory: a shared mount point, so that the code bound onto it later (when a pooled
 *    sandbox is specialized) propagates into the container, which holds it as an rslave mount.
 * The commands run in the launcher each caller passes (the worker's, worker/process/launcher.ts:
 * the worker never forks for them); reading the mount table needs none.
 */
import { readFile } from 'node:fs/promises';
import { commandFailed, commandNotRun } from '../../infra/host-error.js';
import type { CommandRunner } from '../process/command-runner.js';

/** Runs `mount` or `umount`; a failure is a HostError of kind `mount` with the command's stderr. */
async function mountCommand(launcher: CommandRunner, binary: 'mount' | 'umount', args: string[]): Promise<void> {
  const command = `${binary} ${args.join(' ')}`;
  const result = await launcher.run(binary, args).catch((cause: unknown) => {
    throw commandNotRun('mount', command, cause);
  });
  if (result.code === 0) return;
  throw commandFailed('mount', command, result);
}

export function mountOverlay(launcher: CommandRunner, lower: string, upper: string, work: string, target: string): Promise<void> {
  return mountCommand(launcher, 'mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, target]);
}

/** Makes `dir` a mount point of its own in a shared peer group. */
export function makeSharedMountPoint(launcher: CommandRunner, dir: string): Promise<void> {
  return mountCommand(launcher, 'mount', ['--bind', '--make-shared', dir, dir]);
}

/**
 * Binds `source` onto `target`, read-only (util-linux binds, then remounts the new mount read-only).
 * A mount propagated into a container takes its flags when the bind is made, before that remount:
 * so what is bound into a running container must come from a source that is read-only itself
 * (a bind made by this function), whose flag every bind of it carries.
 */
export function bindReadOnly(launcher: CommandRunner, source: string, target: string): Promise<void> {
  return mountCommand(launcher, 'mount', ['--bind', '-o', 'ro', source, target]);
}

/** Unmounts every mount at or below each of `targets`, deepest first. */
export async function unmountTree(launcher: CommandRunner, ...targets: string[]): Promise<void> {
  const mounted = await mountPointsUnder(targets);
  if (mounted.length === 0) return;
  // Stacked mounts on one point are listed once per mount; umount takes the top one each time.
  await mountCommand(launcher, 'umount', mounted);
}

/** Mount points at or below any of `roots`, deepest (and most recent) first. */
export async function mountPointsUnder(roots: string[]): Promise<string[]> {
  const points = (await mountPointsAndSources()).map((m) => m.point).filter((point) => roots.some((root) => point === root || point.startsWith(`${root}/`)));
  return points.reverse().sort((a, b) => b.split('/').length - a.split('/').length);
}

/**
 * Every mount of this mount namespace: its mount point, and what it is made from (a bind's source
 * path within its file system, and the super options, which hold an overlay's lowerdir).
 */
export async function mountPointsAndSources(): Promise<Array<{ point: string; source: string }>> {
  const table = await readFile('/proc/self/mountinfo', 'utf8');
  const out: Array<{ point: string; source: string }> = [];
  for (const line of table.split('\n')) {
    const fields = line.split(' ');
    const point = fields[4];
    if (point === undefined) continue;
    const dash = fields.indexOf('-');
    out.push({ point: unescapeMountPath(point), source: unescapeMountPath(`${fields[3] ?? ''} ${dash >= 0 ? fields.slice(dash + 1).join(' ') : ''}`) });
  }
  return out;
}

function unescapeMountPath(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}
