/**
 * Zips a function's directory for deploy, node_modules included, `.git` left out.
 *
 * The archive is reproducible: entries in sorted order with a fixed timestamp, so unchanged code
 * zips to the same bytes (and the gateway's code sha256 stays the same). Symlinks that stay
 * inside the directory are kept as symlinks (npm's `node_modules/.bin`); the gateway refuses any
 * other kind, so those are followed and what they point at is zipped in their place.
 */
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, posix } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import yazl from 'yazl';

declare module 'yazl' {
  interface Options {
    forceDosTimestamp: boolean;
  }
  interface ZipFile {
    addReadStreamLazy(
      metadataPath: string,
      options: Partial<ReadStreamOptions>,
      getReadStream: (callback: (error: Error | null, stream?: Readable) => void) => void,
    ): void;
  }
}

/** Directory names never zipped. */
const SKIPPED = new Set(['.git']);

/** DOS time has no time zone, and no year before 1980. */
const FIXED_MTIME = new Date(1980, 0, 1);

const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

type PackEntry =
  | { kind: 'file'; name: string; source: string; size: number; mode: number }
  | { kind: 'dir'; name: string }
  | { kind: 'symlink'; name: string; target: string };

export interface PackProgress {
  files: number;
  totalFiles: number;
  bytes: number;
  totalBytes: number;
}

export interface Packed {
  zip: Buffer;
  files: number;
  /** Bytes of file content zipped. */
  bytes: number;
  /** Things left out, with the reason, for the user. */
  warnings: string[];
}

/** A problem with the directory itself (missing, unreadable): the user's to fix. */
export class PackError extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'PackError';
  }
}

export async function packDirectory(dir: string, onProgress: (progress: PackProgress) => void = () => undefined): Promise<Packed> {
  const warnings: string[] = [];
  let entries: PackEntry[];
  try {
    entries = await listTree(dir, warnings);
  } catch (error) {
    if (error instanceof PackError) throw error;
    throw new PackError(`reading ${dir}: ${(error as Error).message}`, error);
  }
  const files = entries.filter((e): e is Extract<PackEntry, { kind: 'file' }> => e.kind === 'file');
  const progress: PackProgress = { files: 0, totalFiles: files.length, bytes: 0, totalBytes: files.reduce((sum, f) => sum + f.size, 0) };
  onProgress({ ...progress });
  const zip = await writeZip(entries, (file, chunkBytes, finished) => {
    progress.bytes += chunkBytes;
    if (finished) progress.files++;
    onProgress({ ...progress });
  });
  return { zip, files: progress.files, bytes: progress.bytes, warnings };
}

/** Every entry of the tree, depth first in sorted order (names in the archive use `/`). */
async function listTree(root: string, warnings: string[]): Promise<PackEntry[]> {
  const rootStat = await stat(root).catch((error: unknown) => {
    throw new PackError(`${root}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such directory' : (error as Error).message}`, error);
  });
  if (!rootStat.isDirectory()) throw new PackError(`${root} is not a directory`);
  const out: PackEntry[] = [];

  // `base` is the archive name of the directory this physical tree starts at ('' for the root,
  // else a symlinked directory that was followed): a kept symlink must resolve below it, where
  // the archive looks like the disk.
  const walk = async (source: string, prefix: string, base: string, ancestors: ReadonlySet<string>): Promise<number> => {
    const dirents = await readdir(source, { withFileTypes: true });
    dirents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    let count = 0;
    for (const dirent of dirents) {
      if (SKIPPED.has(dirent.name)) continue;
      const path = join(source, dirent.name);
      const name = prefix ? `${prefix}/${dirent.name}` : dirent.name;
      const info = await lstat(path);
      if (info.isSymbolicLink()) {
        const target = await readlink(path);
        if (staysInside(name, target, base)) {
          out.push({ kind: 'symlink', name, target });
          count++;
          continue;
        }
        const followed = await stat(path).catch(() => undefined);
        if (!followed) {
          warnings.push(`${name}: left out, a broken symlink to ${target}`);
        } else if (followed.isFile()) {
          out.push({ kind: 'file', name, source: path, size: followed.size, mode: followed.mode });
          count++;
        } else if (followed.isDirectory()) {
          const real = await realpath(path);
          if (ancestors.has(real)) {
            warnings.push(`${name}: left out, a symlink to ${target} that loops back to a directory containing it`);
            continue;
          }
          const inner = await walk(path, name, name, new Set([...ancestors, real]));
          if (inner === 0) out.push({ kind: 'dir', name });
          count++;
        } else {
          warnings.push(`${name}: left out, a symlink to something that is neither a file nor a directory`);
        }
      } else if (info.isDirectory()) {
        const inner = await walk(path, name, base, new Set([...ancestors, await realpath(path)]));
        if (inner === 0) out.push({ kind: 'dir', name });
        count++;
      } else if (info.isFile()) {
        out.push({ kind: 'file', name, source: path, size: info.size, mode: info.mode });
        count++;
      } else {
        warnings.push(`${name}: left out, not a file, directory or symlink`);
      }
    }
    return count;
  };
  await walk(root, '', '', new Set([await realpath(root)]));
  return out;
}

/** A relative target that, read against the archive, lands below `base`. */
function staysInside(name: string, target: string, base: string): boolean {
  if (isAbsolute(target) || target.includes('\\') || target.includes('\0')) return false;
  const resolved = posix.normalize(posix.join(posix.dirname(name), target));
  if (resolved === '..' || resolved.startsWith('../')) return false;
  return base === '' || resolved === base || resolved.startsWith(`${base}/`);
}

type FileProgress = (file: string, chunkBytes: number, finished: boolean) => void;

function writeZip(entries: readonly PackEntry[], onProgress: FileProgress): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const zip = new yazl.ZipFile();
    let current = '';
    const fail = (error: Error): void => reject(new PackError(`zipping ${current || 'the directory'}: ${error.message}`, error));
    zip.on('error', fail);
    const common = { mtime: FIXED_MTIME, forceDosTimestamp: true };
    try {
      for (const entry of entries) {
        if (entry.kind === 'dir') {
          zip.addEmptyDirectory(entry.name, { ...common, mode: S_IFDIR | 0o755 });
        } else if (entry.kind === 'symlink') {
          zip.addBuffer(Buffer.from(entry.target), entry.name, { ...common, mode: S_IFLNK | 0o777, compress: false });
        } else {
          const { name, source, size } = entry;
          zip.addReadStreamLazy(name, { ...common, mode: S_IFREG | (entry.mode & 0o777), size }, (callback) => {
            current = name;
            const counter = new Transform({
              transform(chunk: Buffer, _encoding, done) {
                onProgress(name, chunk.length, false);
                done(null, chunk);
              },
              flush(done) {
                onProgress(name, 0, true);
                done();
              },
            });
            const stream = createReadStream(source);
            stream.on('error', (error) => zip.emit('error', error));
            callback(null, stream.pipe(counter));
          });
        }
      }
    } catch (error) {
      // yazl refuses some names outright (a backslash, say).
      fail(error as Error);
      return;
    }
    const chunks: Buffer[] = [];
    zip.outputStream.on('data', (chunk: Buffer) => chunks.push(chunk));
    zip.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
    zip.outputStream.on('error', fail);
    zip.end();
  });
}
