/**
 * Unpacks an OCI image layer (a gzip or plain tar) into a directory in overlayfs form, usable as
 * it is as an overlay lowerdir: the inverse of layer.ts, for untrusted layers. OCI whiteouts
 * become what overlayfs reads: `.wh.<name>` a 0/0 character device at `<name>` (mknod),
 * `.wh..wh..opq` the xattr `trusted.overlay.opaque=y` on its directory (setfattr). Those two are
 * host commands, run by the caller's `commands` (the worker's launcher); their failures are
 * `unpack` HostErrors.
 *
 * A layer is untrusted input even with a verified digest, so unpacking never follows a symlink:
 * entries are refused (ImageCorrupt) when their path is absolute, leaves the layer through `..`,
 * or goes through a symlink; a hard link must name a file this layer already holds. Files keep
 * their owner, mode (less setuid/setgid) and mtime. Sockets, fifos, devices and xattrs of the tar
 * are left out.
 *
 * Unpacking is bounded: a layer whose files (or whose tar, once gunzipped) pass `maxBytes`, or
 * with more entries than `maxEntries`, is refused as ImageCorrupt as soon as it passes it (a gzip
 * bomb costs at most the budget). Owners are kept only inside `0..idRange-1`; any other id
 * becomes 65534 (nobody). The worker passes a container's id range, and every sandbox's host ids
 * lie above it (worker/sandbox/id-ranges.ts), so no layer file is ever owned by some container's
 * user.
 *
 * What the caller cleans up: a refused or failed unpack leaves a partial tree in `target`, but
 * nothing is still being written into it once `unpackLayer` settles.
 */
import { createReadStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { link, lutimes, lchown, mkdir, open, rm, symlink, chmod, utimes } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import type { Extract, Headers } from 'tar-stream';
import { SkiffError, isSkiffError } from '../../errors.js';
import { commandFailed, commandNotRun, isErrnoError, isHostError, type CommandEnd } from '../../host-error.js';
import { drained } from './layer.js';

/** What runs the host commands of an unpack (the worker's launcher, worker/process/launcher.ts, fits). */
export interface UnpackCommands {
  /** Runs a command to its end and reports how it ended; rejects only when it could not be run. */
  run(command: string, args: string[]): Promise<CommandEnd>;
}

export interface UnpackOptions {
  /** Most bytes of files the layer may unpack to (its gunzipped tar may add its headers). */
  maxBytes: number;
  /** Most entries the layer may hold. */
  maxEntries: number;
  /** Owners kept: ids below this; any other becomes 65534. */
  idRange: number;
  /** Runs mknod and setfattr, for whiteouts. */
  commands: UnpackCommands;
}

/** Room per entry in the tar stream beyond its content: a header, padding, perhaps a long name. */
const TAR_BYTES_PER_ENTRY = 2048;
/** The id an owner outside the kept range becomes (the kernel's overflow id, `nobody`). */
const OVERFLOW_ID = 65534;

function corrupt(message: string, cause?: unknown): SkiffError {
  return new SkiffError('ImageCorrupt', message, cause === undefined ? {} : { cause });
}

function overBudget(blobFile: string, what: string): SkiffError {
  return corrupt(`layer ${blobFile} is refused: ${what}, past what a worker unpacks for one layer`);
}

/** A tar's uid or gid, kept only inside the id range. */
function keptId(id: number | undefined, idRange: number): number {
  if (id === undefined) return 0;
  return Number.isInteger(id) && id >= 0 && id < idRange ? id : OVERFLOW_ID;
}

/**
 * Unpacks the layer in `blobFile` into `target` (which must not exist, and is made); the apparent
 * size of its regular files, each hard-linked file counted once.
 */
export async function unpackLayer(blobFile: string, target: string, options: UnpackOptions): Promise<number> {
  await mkdir(target, { mode: 0o755 });
  const content = await layerContent(blobFile);
  const tree = new LayerTree(target, options, blobFile);
  const extract = tar.extract();
  /** Why the source failed (a corrupt gzip, a tar over budget), which the tar parser and the entry being read see only as their end. */
  let sourceError: unknown;
  const streamBudget = options.maxBytes + options.maxEntries * TAR_BYTES_PER_ENTRY;
  const feeding = feed(content, extract, streamBudget, blobFile, (error) => (sourceError = error));
  const entries = extract[Symbol.asyncIterator]();
  try {
    for (;;) {
      const next = await entries.next();
      if (next.done) break;
      const entry = next.value;
      await tree.add(entry.header, entry);
      for await (const _chunk of entry) {
        // Drains what `add` did not read: the body of a skipped entry.
      }
    }
  } catch (error) {
    throw readError(blobFile, sourceError ?? error);
  } finally {
    extract.destroy();
    await feeding;
    // Nothing may still be writing into `target` once this returns: a failed unpack removes it.
    await tree.idle();
  }
  await tree.finish();
  return tree.bytes;
}

/** The tar stream of a layer file: gunzipped if it starts with gzip's magic, else a plain tar. */
async function layerContent(blobFile: string): Promise<AsyncIterable<Buffer>> {
  const head = Buffer.alloc(512);
  const handle = await open(blobFile, 'r');
  let length;
  try {
    ({ bytesRead: length } = await handle.read(head, 0, head.length, 0));
  } finally {
    await handle.close();
  }
  const file = createReadStream(blobFile);
  if (length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
    // Errors of either stream end the iteration of the last.
    return pipeline(file, createGunzip(), () => undefined);
  }
  if (length === 512 && head.subarray(257, 262).toString('latin1') === 'ustar') return file;
  file.destroy();
  throw corrupt(`layer ${blobFile} is neither a gzip nor a tar`);
}

/**
 * Writes `source` into `extract`, ending it; a source that fails (corrupt gzip) or runs past
 * `maxBytes` (gunzipped) destroys it.
 */
async function feed(source: AsyncIterable<Buffer>, extract: Extract, maxBytes: number, blobFile: string, failed: (error: unknown) => void): Promise<void> {
  let bytes = 0;
  try {
    for await (const chunk of source) {
      if (extract.destroyed) return;
      bytes += chunk.length;
      if (bytes > maxBytes) throw overBudget(blobFile, `its tar is over ${maxBytes} bytes`);
      if (!extract.write(chunk)) await drained(extract);
    }
    extract.end();
  } catch (error) {
    failed(error);
    extract.destroy(error as Error);
  }
}

/**
 * What an error while unpacking means: ours (typed, or a bug), the system's (a failed read or
 * write) and the host's (a failed mknod) stand as they are; any other comes from gzip or the tar parser: the layer is corrupt.
 */
function readError(blobFile: string, error: unknown): unknown {
  const ours = isSkiffError(error) || isHostError(error) || error instanceof TypeError || error instanceof RangeError;
  if (ours || isErrnoError(error)) return error;
  return corrupt(`layer ${blobFile} is not a valid gzip tar: ${(error as Error).message}`, error);
}

type Kind = 'directory' | 'file' | 'symlink' | 'whiteout';

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';
/** Mode bits a layer's file keeps: no setuid or setgid, whatever the layer says. */
const MODE_KEPT = 0o7777 & ~0o6000;
/**
 * Files up to this size are read from the tar and written in the background, up to WRITERS at a
 * time: a layer is mostly small files, and each takes six round trips to the thread pool.
 */
const BUFFERED_FILE_MAX = 1024 * 1024;
const WRITERS = 16;

/**
 * A layer's tree as it is written. It knows the kind of everything it made (the tree starts
 * empty, so that is everything there is): a path is checked against it, not against the disk,
 * and nothing is ever written through a symlink.
 */
class LayerTree {
  /** `''` is the root. */
  private readonly kinds = new Map<string, Kind>([['', 'directory']]);
  /** Sizes of the regular files written (not hard links), for `bytes`. */
  private readonly sizes = new Map<string, number>();
  /** Small files being written, by path (see inBackground). */
  private readonly writing = new Map<string, Promise<void>>();
  /** The first failure of a file written in the background. */
  private failed: { error: unknown } | undefined;
  /** Set once all entries are written: adding an entry to a directory changes its mtime. */
  private readonly directoryTimes = new Map<string, Date>();
  bytes = 0;
  /** What the budget counts: every entry seen, and the bytes of every file written (replaced ones too). */
  private entries = 0;
  private written = 0;

  constructor(
    private readonly root: string,
    private readonly o: UnpackOptions,
    private readonly blobFile: string,
  ) {}

  async add(header: Headers, body: AsyncIterable<Buffer>): Promise<void> {
    this.throwIfFailed();
    if (++this.entries > this.o.maxEntries) throw overBudget(this.blobFile, `it has more than ${this.o.maxEntries} entries`);
    const path = layerPath(header.name);
    const name = posix.basename(path);
    const parent = parentOf(path);
    if (name.startsWith(WHITEOUT)) return this.whiteout(parent, name);
    const owner: Owner = { uid: keptId(header.uid, this.o.idRange), gid: keptId(header.gid, this.o.idRange) };
    const mtime = header.mtime ?? new Date(0);
    switch (header.type) {
      case 'directory':
        await this.directory(parent);
        if (this.kinds.get(path) !== 'directory') {
          await this.clear(path);
          await mkdir(this.abs(path));
          this.kinds.set(path, 'directory');
        }
        await lchown(this.abs(path), owner.uid, owner.gid);
        await chmod(this.abs(path), (header.mode ?? 0o755) & MODE_KEPT);
        this.directoryTimes.set(path, mtime);
        return;
      case 'file':
      case 'contiguous-file':
      case null:
      case undefined:
        await this.place(path, 'file');
        return this.file(path, header, owner, mtime, body);
      case 'symlink':
        if (!header.linkname) throw corrupt(`symlink ${path} has no target`);
        await this.place(path, 'symlink');
        await symlink(header.linkname, this.abs(path));
        await lchown(this.abs(path), owner.uid, owner.gid);
        await lutimes(this.abs(path), mtime, mtime);
        return;
      case 'link': {
        const target = layerPath(header.linkname ?? '');
        // The kind map holds only what this layer made, and no path below a symlink.
        if (this.kinds.get(target) !== 'file') throw corrupt(`hard link ${path} points to ${target}, which is not a file of this layer`);
        if (target === path) throw corrupt(`hard link ${path} points to itself`);
        await this.writing.get(target);
        this.throwIfFailed();
        await this.place(path, 'file');
        await link(this.abs(target), this.abs(path));
        return;
      }
      default:
        // Sockets, fifos and devices have no place in a function's image.
        return;
    }
  }

  /** Sets the directories' mtimes, now that nothing more is added to them. */
  async finish(): Promise<void> {
    await this.idle();
    this.throwIfFailed();
    for (const [path, mtime] of this.directoryTimes) {
      if (this.kinds.get(path) === 'directory') await utimes(this.abs(path), mtime, mtime);
    }
  }

  private async file(path: string, header: Headers, owner: Owner, mtime: Date, body: AsyncIterable<Buffer>): Promise<void> {
    // Checked before a byte is written: the tar says how large the file is.
    this.written += header.size ?? 0;
    if (this.written > this.o.maxBytes) throw overBudget(this.blobFile, `its files are over ${this.o.maxBytes} bytes`);
    const mode = (header.mode ?? 0o644) & MODE_KEPT;
    const abs = this.abs(path);
    let size: number;
    if ((header.size ?? 0) <= BUFFERED_FILE_MAX) {
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(chunk);
      const data = Buffer.concat(chunks);
      size = data.length;
      await this.inBackground(path, () => writeFileWhole(abs, data, owner, mode, mtime));
    } else {
      size = await writeFileStreamed(abs, body, owner, mode, mtime);
    }
    this.sizes.set(path, size);
    this.bytes += size;
  }

  /** Starts `write` (of the file at `path`) once fewer than WRITERS are running. */
  private async inBackground(path: string, write: () => Promise<void>): Promise<void> {
    while (this.writing.size >= WRITERS) await Promise.race(this.writing.values());
    this.throwIfFailed();
    const job: Promise<void> = write()
      .catch((error: unknown) => {
        this.failed ??= { error };
      })
      .then(() => {
        if (this.writing.get(path) === job) this.writing.delete(path);
      });
    this.writing.set(path, job);
  }

  /** Waits for the files being written; their failure is thrown by `throwIfFailed`. */
  async idle(): Promise<void> {
    while (this.writing.size > 0) await Promise.all(this.writing.values());
  }

  private throwIfFailed(): void {
    if (this.failed) throw this.failed.error;
  }

  /** `.wh..wh..opq` makes its directory opaque; `.wh.<name>` hides `<name>` of lower layers. */
  private async whiteout(parent: string, name: string): Promise<void> {
    await this.directory(parent);
    if (name === OPAQUE) {
      await this.command('setfattr', ['-h', '-n', 'trusted.overlay.opaque', '-v', 'y', this.abs(parent)]);
      return;
    }
    // Other `.wh..wh.` names are aufs' bookkeeping, not content.
    if (name.startsWith(WHITEOUT + WHITEOUT)) return;
    const hidden = name.slice(WHITEOUT.length);
    if (hidden === '' || hidden === '.' || hidden === '..') throw corrupt(`whiteout ${posix.join(parent, name)} names no file`);
    const path = parent === '' ? hidden : `${parent}/${hidden}`;
    await this.place(path, 'whiteout');
    await this.command('mknod', [this.abs(path), 'c', '0', '0']);
  }

  /** Makes `path` free for a new entry of `kind` below a real directory. */
  private async place(path: string, kind: Kind): Promise<void> {
    if (path === '') throw corrupt(`the root of a layer cannot be a ${kind}`);
    await this.directory(parentOf(path));
    await this.clear(path);
    this.kinds.set(path, kind);
  }

  /** Makes sure `path` is a directory, making it and its parents as needed; refuses to pass a symlink or a file. */
  private async directory(path: string): Promise<void> {
    if (path === '') return;
    let at = '';
    for (const part of path.split('/')) {
      at = at === '' ? part : `${at}/${part}`;
      const kind = this.kinds.get(at);
      if (kind === 'directory') continue;
      if (kind !== undefined) throw corrupt(`${path} goes through ${at}, a ${kind} of this layer`);
      await mkdir(this.abs(at), { mode: 0o755 });
      this.kinds.set(at, 'directory');
    }
  }

  /** Removes what this layer put at `path` (a later entry for a path replaces the earlier). */
  private async clear(path: string): Promise<void> {
    if (!this.kinds.has(path)) return;
    // A file being written at or below `path` must be done before it goes. Rare: a layer seldom
    // holds one path twice.
    await this.idle();
    this.throwIfFailed();
    await rm(this.abs(path), { recursive: true, force: true });
    const below = `${path}/`;
    for (const known of [...this.kinds.keys()]) {
      if (known !== path && !known.startsWith(below)) continue;
      this.kinds.delete(known);
      this.directoryTimes.delete(known);
      this.bytes -= this.sizes.get(known) ?? 0;
      this.sizes.delete(known);
    }
  }

  private abs(path: string): string {
    return path === '' ? this.root : join(this.root, path);
  }

  private async command(binary: 'mknod' | 'setfattr', args: string[]): Promise<void> {
    const command = [binary, ...args].join(' ');
    const end = await this.o.commands.run(binary, args).catch((cause: unknown) => {
      throw commandNotRun('unpack', command, cause);
    });
    if (end.code !== 0) throw commandFailed('unpack', command, end);
  }
}

interface Owner {
  uid: number;
  gid: number;
}

// `wx`: a new file, never an existing one or the target of a symlink.

async function writeFileWhole(abs: string, data: Buffer, owner: Owner, mode: number, mtime: Date): Promise<void> {
  const handle = await open(abs, 'wx', 0o600);
  try {
    await handle.writeFile(data);
    await settleFile(handle, owner, mode, mtime);
  } finally {
    await handle.close();
  }
}

/** Writes the file as its body comes; its size. */
async function writeFileStreamed(abs: string, body: AsyncIterable<Buffer>, owner: Owner, mode: number, mtime: Date): Promise<number> {
  const handle = await open(abs, 'wx', 0o600);
  let size = 0;
  try {
    for await (const chunk of body) {
      for (let offset = 0; offset < chunk.length;) offset += (await handle.write(chunk, offset)).bytesWritten;
      size += chunk.length;
    }
    await settleFile(handle, owner, mode, mtime);
  } finally {
    await handle.close();
  }
  return size;
}

/** Owner before mode: chown would clear setuid bits anyway, were they kept. */
async function settleFile(handle: FileHandle, owner: Owner, mode: number, mtime: Date): Promise<void> {
  await handle.chown(owner.uid, owner.gid);
  await handle.chmod(mode);
  await handle.utimes(mtime, mtime);
}

/** An entry's name as a normalized path inside the layer (`''` for its root). */
function layerPath(name: string): string {
  if (name.includes('\0')) throw corrupt(`entry ${JSON.stringify(name)} has a NUL in its name`);
  if (name.startsWith('/')) throw corrupt(`entry ${name} has an absolute path`);
  const path = posix.normalize(name).replace(/\/+$/, '');
  if (path === '..' || path.startsWith('../')) throw corrupt(`entry ${name} leaves the layer`);
  return path === '.' || path === '' ? '' : path;
}

function parentOf(path: string): string {
  const parent = posix.dirname(path);
  return parent === '.' ? '' : parent;
}
