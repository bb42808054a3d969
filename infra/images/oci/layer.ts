/**
 * Reproducible OCI image layers (gzip tar): the same content always gives the same bytes, so the
 * same digest, whoever builds it and whenever. What makes a layer vary is left out of it: entries
 * in a fixed order (sorted, depth first), uid/gid 0 with no names, one fixed mtime, no atime or
 * ctime, and a gzip header with neither a time nor a file name (Node's gzip writes neither).
 *
 * File contents are streamed into the packer (large files in pieces, small ones read a few files
 * ahead), so a large directory is held in memory once, compressed, as the blob.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readFile as readFileCallback } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { constants as zlib, createGzip } from 'node:zlib';
import tar from 'tar-stream';
import type { Headers } from 'tar-stream';
import type { Writable } from 'node:stream';
import { invalidRequest } from '../../errors.js';
import { MediaType, sha256Digest } from './types.js';

export interface BuiltLayer {
  /** The layer as pushed to a registry: a gzip tar. */
  blob: Buffer;
  /** `sha256:` of `blob`: the layer's descriptor digest. */
  digest: string;
  /** `sha256:` of the uncompressed tar: the image config's `rootfs.diff_ids` entry. */
  diffId: string;
  size: number;
  mediaType: typeof MediaType.layerGzip;
}

export interface LayerOptions {
  /** Path inside the image the content goes under (e.g. `var/task`); its parents become directories. */
  prefix?: string;
  /** The mtime of every entry. Default: the epoch. */
  mtime?: Date;
  /** gzip level, 0-9. Default: zlib's default (6). */
  gzipLevel?: number;
}

export interface LayerFile {
  /** Path inside the layer (below `prefix`), `/`-separated. */
  path: string;
  data: Buffer | string;
  /** Default 0o644. */
  mode?: number;
}

const EPOCH = new Date(0);
/** Directories made for the prefix and for parents `layerFromFiles` was not given. */
const PARENT_MODE = 0o755;
/** Files up to this size are read whole (one read beats a stream's setup for small files). */
const READ_WHOLE_MAX = 256 * 1024;
const GZIP_BATCH = 256 * 1024;
/**
 * Entries of the walk looked at before the one being packed; their small files are read
 * meanwhile. Reading thousands of small files one after the other is otherwise most of the time
 * a layer takes, each read being several round trips to the thread pool.
 */
const READ_AHEAD = 32;

/**
 * The layer of everything below `dir` (not `dir` itself): directories, regular files, symlinks
 * (target kept verbatim) and hard links (files sharing an inode are stored once, then as links
 * to the first path in order). Sockets, fifos and devices are left out. Modes keep their special
 * bits but lose group and other write.
 */
export async function layerFromDirectory(dir: string, options: LayerOptions = {}): Promise<BuiltLayer> {
  const prefix = layerPrefix(options.prefix);
  return buildLayer(options, async (out) => {
    for (const parent of prefixDirectories(prefix)) await out.directory(parent, PARENT_MODE);
    /** `dev:ino` of each multiply-linked file → the path it was first stored at. */
    const firstPaths = new Map<string, string>();
    for await (const { item: entry, started: content } of readAhead(walk(dir, prefix), readSmallFile, READ_AHEAD)) {
      const { path, abs, stats } = entry;
      const mode = stats.mode & 0o7777 & ~0o022;
      if (stats.isDirectory()) {
        await out.directory(path, mode);
      } else if (stats.isSymbolicLink()) {
        await out.entry({ name: path, type: 'symlink', linkname: await readlink(abs), mode: 0o777 });
      } else if (stats.isFile()) {
        const inode = `${stats.dev}:${stats.ino}`;
        const first = stats.nlink > 1 ? firstPaths.get(inode) : undefined;
        if (first !== undefined) {
          await out.entry({ name: path, type: 'link', linkname: first, mode });
          continue;
        }
        if (stats.nlink > 1) firstPaths.set(inode, path);
        await out.file(path, mode, abs, stats.size, content);
      }
    }
  });
}

/** A small layer of the given files (their parent directories are added, mode 0o755). */
export async function layerFromFiles(files: LayerFile[], options: LayerOptions = {}): Promise<BuiltLayer> {
  const prefix = layerPrefix(options.prefix);
  const entries = new Map<string, LayerFile | 'directory'>();
  for (const parent of prefixDirectories(prefix)) entries.set(parent, 'directory');
  for (const file of files) {
    const path = posix.join(prefix, relativePath(file.path, 'files'));
    if (entries.get(path) !== undefined) throw invalidRequest('files', `${file.path} is given twice, or is also a parent directory`);
    for (const parent of prefixDirectories(posix.dirname(path))) {
      if (typeof entries.get(parent) === 'object') throw invalidRequest('files', `${parent} is a file and the parent of another`);
      entries.set(parent, 'directory');
    }
    entries.set(path, file);
  }
  return buildLayer(options, async (out) => {
    for (const path of [...entries.keys()].sort(byComponents)) {
      const entry = entries.get(path);
      if (entry === 'directory') await out.directory(path, PARENT_MODE);
      else if (entry !== undefined) await out.data(path, entry.mode ?? 0o644, typeof entry.data === 'string' ? Buffer.from(entry.data) : entry.data);
    }
  });
}

/** What a layer's content is written through: entries get the fixed owner and time here. */
interface LayerWriter {
  directory(path: string, mode: number): Promise<void>;
  data(path: string, mode: number, data: Buffer): Promise<void>;
  /** `content`: the file, if already read. */
  file(path: string, mode: number, abs: string, size: number, content?: Promise<Buffer>): Promise<void>;
  entry(header: Headers): Promise<void>;
}

async function buildLayer(options: LayerOptions, write: (out: LayerWriter) => Promise<void>): Promise<BuiltLayer> {
  const mtime = options.mtime ?? EPOCH;
  const pack = tar.pack();
  const diff = createHash('sha256');
  const chunks: Buffer[] = [];
  const compressed = pipeline(
    async function* () {
      // The packer emits a header and a body per file: gzip gets them in batches, since each
      // write to it is a job on libuv's thread pool.
      let batch: Buffer[] = [];
      let batched = 0;
      for await (const chunk of pack) {
        diff.update(chunk);
        batch.push(chunk);
        batched += chunk.length;
        if (batched >= GZIP_BATCH) {
          yield Buffer.concat(batch);
          batch = [];
          batched = 0;
        }
      }
      if (batched > 0) yield Buffer.concat(batch);
    },
    createGzip({ level: options.gzipLevel ?? zlib.Z_DEFAULT_COMPRESSION }),
    async (gzip: AsyncIterable<Buffer>) => {
      for await (const chunk of gzip) chunks.push(chunk);
    },
  );
  // A failed compression must also stop the writer, which may be waiting for the packer to drain.
  compressed.catch((error: unknown) => pack.destroy(error as Error));

  const fixed = (header: Headers): Headers => ({ ...header, uid: 0, gid: 0, uname: '', gname: '', mtime });
  const entry = (header: Headers, data?: Buffer): Promise<void> =>
    new Promise((resolve, reject) => {
      const done = (error?: Error | null) => (error ? reject(error) : resolve());
      if (data === undefined) pack.entry(fixed(header), done);
      else pack.entry(fixed(header), data, done);
    });
  /** An entry whose content is written to `sink`; `done` settles once the packer has taken it all. */
  const openEntry = (header: Headers): { sink: Writable; done: Promise<void> } => {
    let settle: (error?: Error | null) => void = () => undefined;
    const done = new Promise<void>((resolve, reject) => {
      settle = (error) => (error ? reject(error) : resolve());
    });
    return { sink: pack.entry(fixed(header), (error) => settle(error)), done };
  };
  const writer: LayerWriter = {
    directory: (path, mode) => entry({ name: `${path}/`, type: 'directory', mode }),
    data: (path, mode, data) => entry({ name: path, type: 'file', mode, size: data.length }, data),
    entry: (header) => entry(header),
    async file(path, mode, abs, size, content) {
      if (content !== undefined || size <= READ_WHOLE_MAX) {
        const data = await (content ?? readWhole(abs));
        if (data.length !== size) throw changedWhilePacking(abs);
        return entry({ name: path, type: 'file', mode, size }, data);
      }
      const { sink, done } = openEntry({ name: path, type: 'file', mode, size });
      try {
        let read = 0;
        // `end` caps the read at the size in the header: a file growing meanwhile cannot overrun it.
        for await (const chunk of createReadStream(abs, { start: 0, end: size - 1, highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
          read += chunk.length;
          if (!sink.write(chunk)) await drained(sink);
        }
        if (read !== size) throw changedWhilePacking(abs);
      } catch (error) {
        sink.destroy(error as Error);
        await done.catch(() => undefined);
        throw error;
      }
      sink.end();
      return done;
    },
  };

  try {
    await write(writer);
    pack.finalize();
  } catch (error) {
    pack.destroy(error as Error);
    await compressed.catch(() => undefined);
    throw error;
  }
  await compressed;
  const blob = Buffer.concat(chunks);
  return {
    blob,
    digest: sha256Digest(blob),
    diffId: `sha256:${diff.digest('hex')}`,
    size: blob.length,
    mediaType: MediaType.layerGzip,
  };
}

/** Resolves when `stream` can take more, or is gone (its writer then learns why from its callback). */
export function drained(stream: NodeJS.EventEmitter & { destroyed: boolean }): Promise<void> {
  if (stream.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

function changedWhilePacking(abs: string): Error {
  return new Error(`${abs} changed size while it was being packed into a layer`);
}

interface WalkedEntry {
  /** Path in the layer. */
  path: string;
  abs: string;
  stats: Stats;
}

/** Everything below `dir`, depth first, each directory's names in sorted order. */
async function* walk(dir: string, under: string): AsyncGenerator<WalkedEntry> {
  const names = (await readdir(dir)).sort(byCodeUnits);
  // lstat in parallel: the walk of thousands of files is otherwise one round trip per file.
  const entries = await Promise.all(
    names.map(async (name) => {
      const abs = join(dir, name);
      return { path: under === '' ? name : `${under}/${name}`, abs, stats: await lstat(abs) };
    }),
  );
  for (const entry of entries) {
    yield entry;
    if (entry.stats.isDirectory()) yield* walk(entry.abs, entry.path);
  }
}

/** fs.readFile: in Node 20 its callback form reads thousands of small files markedly faster than the promise form. */
const readWhole = promisify(readFileCallback);

/** Reads a small regular file, for `readAhead`; a failure surfaces where the content is awaited. */
function readSmallFile({ abs, stats }: WalkedEntry): Promise<Buffer> | undefined {
  if (!stats.isFile() || stats.size > READ_WHOLE_MAX) return undefined;
  const content = readWhole(abs);
  // Handled here too: content read ahead of a failure elsewhere is never awaited.
  content.catch(() => undefined);
  return content;
}

/** The items of `source` in order, each with what `start` began for it up to `depth` items earlier. */
async function* readAhead<T, R>(source: AsyncIterable<T>, start: (item: T) => R, depth: number): AsyncGenerator<{ item: T; started: R }> {
  const window: { item: T; started: R }[] = [];
  const items = source[Symbol.asyncIterator]();
  let exhausted = false;
  for (;;) {
    while (!exhausted && window.length < depth) {
      const next = await items.next();
      if (next.done) exhausted = true;
      else window.push({ item: next.value, started: start(next.value) });
    }
    const head = window.shift();
    if (head === undefined) return;
    yield head;
  }
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Depth-first order of `/`-separated paths: the order `walk` yields them in. */
function byComponents(a: string, b: string): number {
  const left = a.split('/');
  const right = b.split('/');
  for (let i = 0; i < Math.min(left.length, right.length); i++) {
    const order = byCodeUnits(left[i] ?? '', right[i] ?? '');
    if (order !== 0) return order;
  }
  return left.length - right.length;
}

function layerPrefix(prefix: string | undefined): string {
  if (prefix === undefined || prefix.replace(/\//g, '') === '') return '';
  return relativePath(prefix, 'prefix');
}

/** `path` as a relative, normalized layer path; `..` and empty paths are refused. */
function relativePath(path: string, field: string): string {
  const normalized = posix.normalize(path.replace(/^\/+/, '')).replace(/\/+$/, '');
  if (normalized === '' || normalized === '.' || normalized === '..' || normalized.startsWith('../')) {
    throw invalidRequest(field, `${JSON.stringify(path)} is not a path inside a layer`);
  }
  return normalized;
}

/** `a/b/c` → `a`, `a/b`, `a/b/c`. */
function prefixDirectories(path: string): string[] {
  if (path === '' || path === '.') return [];
  const parts = path.split('/');
  return parts.map((_, i) => parts.slice(0, i + 1).join('/'));
}
