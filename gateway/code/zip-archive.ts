/**
 * Function code arrives as a user-supplied zip: hostile until proven otherwise. This module is
 * the only place that reads one. `inspectZip` checks an archive at deploy time without writing
 * anything; `extractZip` unpacks a checked archive into a fresh directory.
 *
 * What is refused, and why:
 * - entry names that are absolute, climb with `..`, hold a backslash or a NUL: they would land
 *   outside the code directory (yauzl already refuses most of them; we add the rest);
 * - symlinks whose target is absolute or climbs out of the archive root, followed through other
 *   symlinks of the same archive (`a -> b/..` with `b -> ..` escapes even though `a`'s target
 *   looks harmless on its own);
 * - any entry below a symlink or a file entry: writing `a/x` after a symlink `a` would write
 *   through the link;
 * - more entries, or more unpacked bytes, than the limits allow (zip bombs). Declared sizes are
 *   checked up front, and the real bytes are counted while anything is streamed;
 * - encrypted entries, compression methods other than store/deflate, device nodes, fifos.
 *
 * Both functions read the archive twice at most; the buffer is in memory, so that is cheap, and it
 * lets every structural check see the whole archive before a single byte is written.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { chmod, lstat, mkdir, open, rename, rm, symlink } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { isUtf8 } from 'node:buffer';
import type { Readable } from 'node:stream';
import yauzl from 'yauzl';
import type { Entry, ZipFile } from 'yauzl';
import { SkiffError, isSkiffError } from '../../infra/errors.js';

export interface ZipLimits {
  /** Most entries (files, directories and symlinks) an archive may hold. */
  maxEntries: number;
  /** Most bytes an archive may unpack to, all entries together. */
  maxUnpackedBytes: number;
}

export interface ZipSummary {
  /** Hex SHA-256 of the zip bytes: identifies the code version. */
  sha256: string;
  entries: number;
  /** Declared unpacked size of all entries (checked against the real size on extraction). */
  unpackedBytes: number;
}

/** The deploy request field an archive problem is reported against. */
export type ZipErrorField = 'code.zip' | 'handler';

/**
 * A problem with the user's archive or handler: an InvalidRequest (HTTP 400) naming the field.
 * I/O failures on our side (disk full, destination taken) are plain Errors, never ZipErrors, so
 * they are not blamed on the user.
 */
export class ZipError extends SkiffError {
  declare readonly field: ZipErrorField;

  constructor(field: ZipErrorField, message: string, cause?: unknown) {
    super('InvalidRequest', message, cause === undefined ? { field } : { field, cause });
    this.name = 'ZipError';
  }
}

/** The runtime whose zip holds its own runtime: an executable `bootstrap` at the root, not a handler module. */
const PROVIDED_RUNTIME = 'provided';
const BOOTSTRAP = 'bootstrap';

/** A `provided` zip must hold `bootstrap` at its root, executable (or a link to a file that is). */
function requireBootstrap(plan: Plan): void {
  const entry = plan.entries.find((e) => e.path === BOOTSTRAP);
  if (entry?.kind === 'symlink') return; // its target's own mode counts; the runtime reports a bad one
  if (entry?.kind === 'file' && entry.mode === EXEC_FILE_MODE) return;
  throw new ZipError(
    'code.zip',
    entry?.kind === 'file'
      ? "runtime provided: the zip's bootstrap is not executable (zip it with its mode, e.g. chmod +x bootstrap before zipping)"
      : 'runtime provided: the zip has no file bootstrap at its root (the executable that serves the Runtime API)',
  );
}

/** Extensions the Node.js runtime may load a handler module from, in its order of preference. */
const HANDLER_EXTENSIONS = ['.js', '.mjs', '.cjs'] as const;
/** A Python module name segment (ASCII: what a zip path can portably hold). */
const PYTHON_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

// Unix file types, from the high 16 bits of an entry's external attributes (st_mode layout).
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/** Linux refuses symlink targets of PATH_MAX (4096) bytes or more. */
const MAX_SYMLINK_TARGET_BYTES = 4095;
/** Like the kernel's ELOOP limit: a longer chain of links is refused rather than followed. */
const MAX_SYMLINK_HOPS = 40;

const DIR_MODE = 0o755;
const FILE_MODE = 0o644;
const EXEC_FILE_MODE = 0o755;

/** What one zip entry becomes on disk, decided before anything is written. */
type PlannedEntry =
  | { kind: 'dir'; index: number; path: string }
  | { kind: 'file'; index: number; path: string; mode: number; size: number }
  | { kind: 'symlink'; index: number; path: string; target: string };

interface Plan {
  entryCount: number;
  declaredBytes: number;
  /** Entries in archive order; entries naming the root itself (`./`) are left out. */
  entries: PlannedEntry[];
}

/** `runtime` decides which files may hold the handler's module (see {@link handlerFiles}). */
export async function inspectZip(zip: Buffer, limits: ZipLimits, handler: string, runtime = 'nodejs20'): Promise<ZipSummary> {
  if (runtime === PROVIDED_RUNTIME) {
    const plan = await planArchive(zip, limits);
    requireBootstrap(plan);
    return summary(zip, plan);
  }
  // The handler is checked first: a bad one is the user's typo, no need to read the archive.
  const candidates = handlerFiles(handler, runtime);
  const plan = await planArchive(zip, limits);
  const files = new Set(plan.entries.filter((e) => e.kind === 'file').map((e) => e.path));
  if (!candidates.some((c) => files.has(c))) {
    throw new ZipError('handler', `handler ${JSON.stringify(handler)}: the zip has no file ${candidates.join(', ')} (paths are relative to the zip root)`);
  }
  return summary(zip, plan);
}

function summary(zip: Buffer, plan: Plan): ZipSummary {
  return {
    sha256: createHash('sha256').update(zip).digest('hex'),
    entries: plan.entryCount,
    unpackedBytes: plan.declaredBytes,
  };
}

/**
 * Unpacks `zip` into `destDir`, which must not exist. The tree is built in a sibling temporary
 * directory and renamed into place, so `destDir` either does not exist or is complete: a reader
 * never sees half a function. Directories are 0755 and files 0644 (0755 when the zip marks them
 * executable), whatever the umask, because the container reads them as an unprivileged uid.
 */
export async function extractZip(zip: Buffer, destDir: string, limits: ZipLimits): Promise<void> {
  const plan = await planArchive(zip, limits);
  if (await pathExists(destDir)) throw new Error(`extracting code: ${destDir} already exists`);
  await mkdir(dirname(destDir), { recursive: true, mode: DIR_MODE });

  const tmpDir = `${destDir}.tmp-${randomBytes(6).toString('hex')}`;
  await mkdir(tmpDir, { mode: DIR_MODE });
  try {
    await chmod(tmpDir, DIR_MODE);
    await writeTree(zip, tmpDir, plan, limits);
    // rename(2) fails if destDir has meanwhile become a non-empty directory (real code is never
    // overwritten); it would replace an empty one, a harmless race the check above narrows.
    await rename(tmpDir, destDir);
  } catch (err) {
    // The first error is the one worth reporting; a leftover `.tmp-` directory is harmless
    // and recognisable, so a failed clean-up must not hide it.
    await rm(tmpDir, { recursive: true, force: true }).catch(() => undefined);
    if (isSkiffError(err)) throw err;
    throw new Error(`extracting code into ${destDir} failed`, { cause: err });
  }
}

// ---------------------------------------------------------------------------------------------
// Pass 1: read the central directory (and symlink targets) and decide what every entry becomes.

async function planArchive(zip: Buffer, limits: ZipLimits): Promise<Plan> {
  const zipfile = await openZip(zip);
  try {
    if (zipfile.entryCount > limits.maxEntries) {
      throw new ZipError('code.zip', `the zip has ${zipfile.entryCount} entries, more than the limit of ${limits.maxEntries}`);
    }
    const budget = new ByteBudget(limits.maxUnpackedBytes);
    const entries: PlannedEntry[] = [];
    const next = entryReader(zipfile);
    let declaredBytes = 0;
    for (let index = 0; ; index++) {
      const entry = await next();
      if (entry === null) break;
      declaredBytes += entry.uncompressedSize;
      if (declaredBytes > limits.maxUnpackedBytes) {
        throw new ZipError(
          'code.zip',
          `the zip unpacks to more than the limit of ${limits.maxUnpackedBytes} bytes (at entry ${JSON.stringify(entry.fileName)})`,
        );
      }
      const planned = await planEntry(zipfile, entry, index, budget);
      if (planned !== null) entries.push(planned);
    }
    checkTree(entries);
    return { entryCount: zipfile.entryCount, declaredBytes, entries };
  } finally {
    zipfile.close();
  }
}

async function planEntry(zipfile: ZipFile, entry: Entry, index: number, budget: ByteBudget): Promise<PlannedEntry | null> {
  const name = entry.fileName;
  const path = normalizeEntryName(name);
  if (path === null) return null;
  if (entry.isEncrypted()) throw new ZipError('code.zip', `entry ${JSON.stringify(name)} is encrypted`);

  const mode = entry.externalFileAttributes >>> 16;
  const type = mode & S_IFMT;
  if (name.endsWith('/') || type === S_IFDIR) {
    if (type !== 0 && type !== S_IFDIR) throw new ZipError('code.zip', `entry ${JSON.stringify(name)} is named like a directory but is not one`);
    return { kind: 'dir', index, path };
  }
  // Compression is only checked for entries with content: directories are never opened.
  if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) {
    throw new ZipError('code.zip', `entry ${JSON.stringify(name)} uses unsupported compression method ${entry.compressionMethod} (only store and deflate)`);
  }
  if (type === S_IFLNK) {
    const target = await readSymlinkTarget(zipfile, entry, budget);
    checkSymlinkTarget(name, target);
    return { kind: 'symlink', index, path, target };
  }
  // Type 0 is what archivers that record no unix mode (e.g. on Windows) write for files.
  if (type !== 0 && type !== S_IFREG) {
    throw new ZipError(
      'code.zip',
      `entry ${JSON.stringify(name)} is a special file (mode ${mode.toString(8)}): only files, directories and symlinks are allowed`,
    );
  }
  return { kind: 'file', index, path, mode: (mode & 0o111) !== 0 ? EXEC_FILE_MODE : FILE_MODE, size: entry.uncompressedSize };
}

/**
 * The entry's path relative to the archive root, `a/b` form, or null for the root itself.
 * Throws for names that would leave the root. `.` and empty segments are dropped (some
 * archivers write `./a` or `a//b`), which also makes duplicate detection see `./a` and `a` as one.
 */
function normalizeEntryName(name: string): string | null {
  const quoted = JSON.stringify(name);
  if (name.includes('\0')) throw new ZipError('code.zip', `entry ${quoted} has a NUL character in its name`);
  if (name.includes('\\')) throw new ZipError('code.zip', `entry ${quoted} has a backslash in its name`);
  if (name.startsWith('/') || /^[a-zA-Z]:/.test(name)) throw new ZipError('code.zip', `entry ${quoted} has an absolute path`);
  const segments = name.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) throw new ZipError('code.zip', `entry ${quoted} climbs out of the archive with ".."`);
  return segments.length === 0 ? null : segments.join('/');
}

function checkSymlinkTarget(name: string, target: string): void {
  const where = `symlink ${JSON.stringify(name)} -> ${JSON.stringify(target)}`;
  if (target === '') throw new ZipError('code.zip', `${where} has an empty target`);
  if (target.includes('\0')) throw new ZipError('code.zip', `${where} has a NUL character in its target`);
  if (target.includes('\\')) throw new ZipError('code.zip', `${where} has a backslash in its target`);
  if (target.startsWith('/')) throw new ZipError('code.zip', `${where} points to an absolute path`);
}

/**
 * Structural checks over the whole plan (pure, so the order of entries in the archive cannot be
 * used to slip something past them): no path twice, nothing below a file or a symlink, and every
 * symlink resolving inside the root even when followed through the archive's other symlinks.
 */
function checkTree(entries: PlannedEntry[]): void {
  const byPath = new Map<string, PlannedEntry>();
  for (const entry of entries) {
    const seen = byPath.get(entry.path);
    if (seen !== undefined && !(seen.kind === 'dir' && entry.kind === 'dir')) {
      throw new ZipError('code.zip', `entry ${JSON.stringify(entry.path)} appears more than once in the zip`);
    }
    byPath.set(entry.path, entry);
  }
  const links = new Map<string, string>();
  for (const entry of entries) {
    if (entry.kind === 'symlink') links.set(entry.path, entry.target);
    const segments = entry.path.split('/');
    for (let i = 1; i < segments.length; i++) {
      const ancestor = byPath.get(segments.slice(0, i).join('/'));
      if (ancestor === undefined || ancestor.kind === 'dir') continue;
      const what = ancestor.kind === 'symlink' ? 'a symlink (writing through symlinks is not allowed)' : 'a file';
      throw new ZipError('code.zip', `entry ${JSON.stringify(entry.path)} is below ${JSON.stringify(ancestor.path)}, which is ${what}`);
    }
  }
  for (const [path, target] of links) {
    const problem = symlinkProblem(path, links);
    if (problem !== null) throw new ZipError('code.zip', `symlink ${JSON.stringify(path)} -> ${JSON.stringify(target)} ${problem}`);
  }
}

/**
 * Resolves the link at `linkPath` the way the kernel would, component by component, following
 * links of the same archive (the extracted tree holds nothing else), and says what is wrong if it
 * ever climbs above the root (null if nothing). Components that are not links are taken as
 * directories: a path through a file fails at open time with ENOTDIR, which is harmless.
 */
function symlinkProblem(linkPath: string, links: ReadonlyMap<string, string>): string | null {
  const resolved = linkPath.split('/').slice(0, -1);
  const pending = (links.get(linkPath) ?? '').split('/');
  let hops = 0;
  while (pending.length > 0) {
    const segment = pending.shift() as string;
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (resolved.length === 0) return 'points outside the archive';
      resolved.pop();
      continue;
    }
    resolved.push(segment);
    const target = links.get(resolved.join('/'));
    if (target === undefined) continue;
    if (target.startsWith('/')) return 'leads to an absolute symlink';
    if (++hops > MAX_SYMLINK_HOPS) return `goes through more than ${MAX_SYMLINK_HOPS} symlinks (a loop?)`;
    resolved.pop();
    pending.unshift(...target.split('/'));
  }
  return null;
}

async function readSymlinkTarget(zipfile: ZipFile, entry: Entry, budget: ByteBudget): Promise<string> {
  const name = JSON.stringify(entry.fileName);
  if (entry.uncompressedSize > MAX_SYMLINK_TARGET_BYTES) {
    throw new ZipError('code.zip', `symlink ${name} has a target longer than ${MAX_SYMLINK_TARGET_BYTES} bytes`);
  }
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of entryChunks(zipfile, entry)) {
    budget.take(chunk.length, entry.fileName);
    length += chunk.length;
    // Declared sizes are checked by yauzl too; this bound holds even if they lie.
    if (length > MAX_SYMLINK_TARGET_BYTES) throw new ZipError('code.zip', `symlink ${name} has a target longer than ${MAX_SYMLINK_TARGET_BYTES} bytes`);
    chunks.push(chunk);
  }
  const bytes = Buffer.concat(chunks);
  if (!isUtf8(bytes)) throw new ZipError('code.zip', `symlink ${name} has a target that is not UTF-8`);
  return bytes.toString('utf8');
}

// ---------------------------------------------------------------------------------------------
// Pass 2: write the planned tree.

async function writeTree(zip: Buffer, root: string, plan: Plan, limits: ZipLimits): Promise<void> {
  const verified = new Set<string>();
  for (const entry of plan.entries) {
    if (entry.kind === 'dir') await ensureDir(root, entry.path, verified);
  }

  const files = new Map<number, Extract<PlannedEntry, { kind: 'file' }>>();
  for (const entry of plan.entries) if (entry.kind === 'file') files.set(entry.index, entry);
  const budget = new ByteBudget(limits.maxUnpackedBytes);
  const zipfile = await openZip(zip);
  try {
    const next = entryReader(zipfile);
    for (let index = 0; ; index++) {
      const entry = await next();
      if (entry === null) break;
      const file = files.get(index);
      if (file === undefined) continue;
      // Same buffer, same order: a mismatch means a bug here, not a hostile zip.
      if (normalizeEntryName(entry.fileName) !== file.path) throw new Error(`zip entry ${index} changed between passes`);
      await writeFile(zipfile, entry, root, file, verified, budget);
    }
  } finally {
    zipfile.close();
  }

  // Links come last, so no entry of this archive can ever be written through one.
  for (const entry of plan.entries) {
    if (entry.kind !== 'symlink') continue;
    await ensureDir(root, posix.dirname(entry.path), verified);
    await symlink(entry.target, join(root, entry.path));
  }
}

async function writeFile(
  zipfile: ZipFile,
  entry: Entry,
  root: string,
  file: Extract<PlannedEntry, { kind: 'file' }>,
  verified: Set<string>,
  budget: ByteBudget,
): Promise<void> {
  await ensureDir(root, posix.dirname(file.path), verified);
  // O_EXCL|O_NOFOLLOW: never reuse or follow whatever is already at that path.
  const flags = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;
  const handle = await open(join(root, file.path), flags, file.mode);
  try {
    await handle.chmod(file.mode); // the umask may have taken bits away
    for await (const chunk of entryChunks(zipfile, entry)) {
      budget.take(chunk.length, entry.fileName);
      await handle.write(chunk);
    }
  } finally {
    await handle.close();
  }
}

/**
 * Makes `relDir` (relative to root) and its parents, checking each component with lstat: a
 * component that exists must be a real directory, never a symlink. Verified paths are cached.
 */
async function ensureDir(root: string, relDir: string, verified: Set<string>): Promise<void> {
  if (relDir === '.' || relDir === '') return;
  const segments = relDir.split('/');
  for (let i = 1; i <= segments.length; i++) {
    const rel = segments.slice(0, i).join('/');
    if (verified.has(rel)) continue;
    const abs = join(root, rel);
    const stat = await lstat(abs).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    });
    if (stat === null) {
      await mkdir(abs, { mode: DIR_MODE });
      await chmod(abs, DIR_MODE);
    } else if (!stat.isDirectory()) {
      throw new ZipError('code.zip', `entry path ${JSON.stringify(rel)} is not a directory in the extracted tree`);
    }
    verified.add(rel);
  }
}

// ---------------------------------------------------------------------------------------------
// yauzl, promisified.

function openZip(zip: Buffer): Promise<ZipFile> {
  return new Promise((resolve, reject) => {
    // strictFileNames: refuse backslashes instead of silently turning them into slashes.
    yauzl.fromBuffer(zip, { lazyEntries: true, strictFileNames: true, validateEntrySizes: true, decodeStrings: true }, (err, zipfile) => {
      if (err !== null) reject(new ZipError('code.zip', `not a valid zip archive: ${err.message}`, err));
      else resolve(zipfile);
    });
  });
}

/** Returns a function that reads the next entry, or null at the end. Errors are ZipErrors. */
function entryReader(zipfile: ZipFile): () => Promise<Entry | null> {
  let waiting: { resolve: (entry: Entry | null) => void; reject: (err: unknown) => void } | null = null;
  let failure: ZipError | null = null;
  const settle = (entry: Entry | null): void => {
    const w = waiting;
    waiting = null;
    w?.resolve(entry);
  };
  zipfile.on('entry', (entry: Entry) => settle(entry));
  zipfile.on('end', () => settle(null));
  // Always listening, so an error is never an unhandled 'error' event.
  zipfile.on('error', (err: Error) => {
    // yauzl's messages name the entry, e.g. "invalid relative path: ../evil".
    failure = new ZipError('code.zip', `invalid zip archive: ${err.message}`, err);
    waiting?.reject(failure);
  });
  return () =>
    new Promise((resolve, reject) => {
      if (failure !== null) return reject(failure);
      waiting = { resolve, reject };
      zipfile.readEntry();
    });
}

/**
 * The entry's uncompressed bytes. Errors of the archive (corrupt deflate data, sizes that differ
 * from the declared ones) become ZipErrors naming the entry; the consumer's own errors pass
 * through untouched, and stopping early destroys the stream.
 */
async function* entryChunks(zipfile: ZipFile, entry: Entry): AsyncGenerator<Buffer> {
  const name = JSON.stringify(entry.fileName);
  const stream = await new Promise<Readable>((resolve, reject) => {
    zipfile.openReadStream(entry, (err, s) => {
      if (err !== null) reject(new ZipError('code.zip', `cannot read entry ${name}: ${err.message}`, err));
      else resolve(s);
    });
  });
  const chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  try {
    for (;;) {
      let step: IteratorResult<Buffer>;
      try {
        step = await chunks.next();
      } catch (err) {
        throw new ZipError('code.zip', `entry ${name} is corrupt: ${err instanceof Error ? err.message : String(err)}`, err);
      }
      if (step.done === true) return;
      yield step.value;
    }
  } finally {
    stream.destroy();
  }
}

/** Counts real unpacked bytes against the limit, whatever the archive declared. */
class ByteBudget {
  private used = 0;

  constructor(private readonly max: number) {}

  take(bytes: number, entryName: string): void {
    this.used += bytes;
    if (this.used > this.max) {
      throw new ZipError('code.zip', `the zip unpacks to more than the limit of ${this.max} bytes (at entry ${JSON.stringify(entryName)})`);
    }
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * The files one of which must exist for the runtime to load `handler`, in its order of preference.
 * Node.js: `src/app.handler` → src/app.js, .mjs or .cjs. Python: `pkg/module.function` or
 * `pkg.module.function` → pkg/module.py, or pkg/module/__init__.py for a package.
 */
function handlerFiles(handler: string, runtime: string): string[] {
  const moduleBase = handlerModuleBase(handler);
  if (!runtime.startsWith('python')) return HANDLER_EXTENSIONS.map((ext) => moduleBase + ext);
  // The raw module path, not moduleBase: the runtime imports it as written, so `a/./b` is no module name.
  const segments = handler.slice(0, handler.lastIndexOf('.')).split(/[/.]/);
  const bad = segments.find((s) => !PYTHON_IDENTIFIER.test(s));
  if (bad !== undefined) {
    throw new ZipError(
      'handler',
      `handler ${JSON.stringify(handler)}: ${JSON.stringify(bad)} is not a Python module name (letters, digits and _, not starting with a digit)`,
    );
  }
  const modulePath = segments.join('/');
  return [`${modulePath}.py`, `${modulePath}/__init__.py`];
}

/** `path/to/file.export` → `path/to/file`; the export is after the last dot. */
function handlerModuleBase(handler: string): string {
  const quoted = JSON.stringify(handler);
  const dot = handler.lastIndexOf('.');
  if (dot <= 0 || dot === handler.length - 1) {
    throw new ZipError('handler', `handler ${quoted} must look like "file.export", e.g. "index.handler"`);
  }
  if (handler.includes('..') || handler.startsWith('/') || handler.includes('\\') || handler.includes('\0')) {
    throw new ZipError('handler', `handler ${quoted} must be a relative path inside the zip, without ".." or backslashes`);
  }
  const segments = handler.slice(0, dot).split('/');
  if (segments.some((s) => s === '')) throw new ZipError('handler', `handler ${quoted} has an empty path segment`);
  const kept = segments.filter((s) => s !== '.');
  if (kept.length === 0) throw new ZipError('handler', `handler ${quoted} names no file`);
  return kept.join('/');
}

async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
