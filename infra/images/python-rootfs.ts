/**
 * Builds the `python3.11` base root file system from this machine's own Debian python3.11: the
 * interpreter, the shared libraries it and its extension modules link (found with ldd), the
 * standard library without what a function never needs (tests, IDLE, Tk, ensurepip, lib2to3,
 * pydoc data, the static libpython for embedding), the same /etc files and mount points as the
 * Node.js image (rootfs-builder.ts), and the Skiff bootstrap at
 * /opt/skiff/runtime/python/bootstrap.py. Nothing is downloaded.
 *
 * Debian's compiled bytecode (`__pycache__`) is kept, with the sources' modification times, so
 * imports need no compiling: the root is read-only and the interpreter runs with -B, so bytecode
 * it compiled would be thrown away at every start. /usr/lib/python3/dist-packages (Debian's
 * third-party packages) is left out: functions vendor their own in their zip.
 *
 * The directory is keyed by a digest of its inputs (interpreter, libraries, the standard library's
 * file list, sizes and times, the bootstrap's content), like the Node.js image.
 */
import { createHash } from 'node:crypto';
import { existsSync, realpathSync } from 'node:fs';
import { cp, lstat, mkdir, readdir, readFile, readlink, symlink } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CA_BUNDLE, copyPreservingPath, ensureImage, hashFileStats, listFiles, sharedLibraries, type BaseImage } from './rootfs-builder.js';

export const PYTHON_RUNTIME = 'python3.11';
/** Debian's interpreter. Not a pyenv or venv one: its standard library must be at /usr/lib/python3.11. */
export const PYTHON_BINARY = '/usr/bin/python3.11';
/** The bootstrap's source directory (it is not compiled): runtime/python in the checkout, beside dist/. */
export const PYTHON_RUNTIME_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'runtime', 'python');
/** Starts a sandbox's bootstrap: unbuffered stdio, no bytecode writes on the read-only root. */
export const PYTHON_COMMAND = [PYTHON_BINARY, '-u', '-B', '/opt/skiff/runtime/python/bootstrap.py'];

/** Bumped when what the builder puts in the image changes without its inputs changing. */
const LAYOUT_VERSION = 1;

/** Top-level standard library directories a function never needs. */
const EXCLUDED_TOP_DIRS = new Set(['test', 'idlelib', 'tkinter', 'turtledemo', 'ensurepip', 'lib2to3', 'pydoc_data']);
/** Test suites of packages (ctypes/test, unittest/test, sqlite3/test, ...). */
const EXCLUDED_DIR_NAMES = new Set(['test', 'tests', 'idle_test']);
/**
 * Extension modules a function has no use for: CPython's own test modules, and terminal, Tk, NIS
 * and OSS-audio bindings (no terminal, display, NIS or sound device in a sandbox). Leaving them out
 * also leaves out the libraries only they link (readline, ncurses, Kerberos via libtirpc).
 */
const EXCLUDED_EXTENSION = /^(_test\w*|_ctypes_test|_xxtestfuzz|_xxsubinterpreters|xxlimited\w*|_tkinter|readline|_curses\w*|nis|ossaudiodev)\./;

export interface PythonImageInputs {
  /** The interpreter to package: Debian's /usr/bin/python3.11. */
  pythonBinary: string;
  /** Directory holding bootstrap.py (runtime/python of the checkout: {@link PYTHON_RUNTIME_DIR}). */
  runtimeDir: string;
  /** Where images live: `<imagesDir>/python3.11/<digest>/rootfs`. */
  imagesDir: string;
}

export async function ensurePythonImage(inputs: PythonImageInputs): Promise<BaseImage> {
  const pythonBinary = realpathSync(inputs.pythonBinary);
  // The standard library of /usr/bin/python3.11 is /usr/lib/python3.11 (sys.prefix is /usr).
  const stdlib = join(dirname(dirname(pythonBinary)), 'lib', basename(pythonBinary));
  if (!existsSync(join(stdlib, 'os.py'))) throw new Error(`${inputs.pythonBinary}: no standard library at ${stdlib}`);
  const stdlibFiles = await listFiles(stdlib, (path, isDirectory) => keepInStdlib(stdlib, path, isDirectory));
  const extensions = stdlibFiles.filter((file) => file.endsWith('.so'));
  const libraries = await sharedLibraries(pythonBinary, ...extensions);
  const bootstrapFiles = await listFiles(inputs.runtimeDir, (path, isDirectory) => !isDirectory && path.endsWith('.py'));
  if (!bootstrapFiles.some((file) => basename(file) === 'bootstrap.py')) throw new Error(`no bootstrap.py in ${inputs.runtimeDir}`);

  const hash = createHash('sha256');
  hash.update(`layout ${LAYOUT_VERSION}\n`);
  await hashFileStats(hash, [pythonBinary, ...libraries.sort(), ...stdlibFiles]);
  for (const file of bootstrapFiles) {
    hash.update(`${relative(inputs.runtimeDir, file)}\n`);
    hash.update(await readFile(file));
  }
  const digest = hash.digest('hex').slice(0, 16);

  return ensureImage(inputs.imagesDir, PYTHON_RUNTIME, digest, async (target) => {
    for (const file of [pythonBinary, ...libraries]) await copyPreservingPath(file, target);
    await copyStdlib(stdlib, stdlibFiles, target);
    const bin = join(target, 'usr/bin');
    await mkdir(bin, { recursive: true });
    if (pythonBinary !== PYTHON_BINARY) await symlink(pythonBinary, join(target, PYTHON_BINARY));
    // For subprocesses started by user code (`python3 ...`, sys.executable works already).
    await symlink(basename(PYTHON_BINARY), join(bin, 'python3'));
    await linkOpensslDefaults(target);
    const dest = join(target, 'opt/skiff/runtime/python');
    await mkdir(dest, { recursive: true });
    for (const file of bootstrapFiles) await cp(file, join(dest, relative(inputs.runtimeDir, file)));
  });
}

function keepInStdlib(stdlib: string, path: string, isDirectory: boolean): boolean {
  const rel = relative(stdlib, path);
  const name = basename(path);
  if (isDirectory) {
    if (!rel.includes('/') && (EXCLUDED_TOP_DIRS.has(name) || name.startsWith('config-'))) return false;
    return !EXCLUDED_DIR_NAMES.has(name);
  }
  // Debian's hook that imports apport from /etc; the image has neither.
  if (rel === 'sitecustomize.py') return false;
  if (dirname(rel) === 'lib-dynload' && EXCLUDED_EXTENSION.test(name)) return false;
  return true;
}

/**
 * Copies the kept files with their modification times: a bytecode file is only used while its
 * source's time matches the one recorded in it. Symbolic links stay links when they point inside
 * the standard library (e.g. _sysconfigdata), and are left out otherwise.
 */
async function copyStdlib(stdlib: string, files: readonly string[], target: string): Promise<void> {
  const made = new Set<string>();
  for (const file of files) {
    const dest = join(target, file);
    const dir = dirname(dest);
    if (!made.has(dir)) {
      await mkdir(dir, { recursive: true });
      made.add(dir);
    }
    const info = await lstat(file);
    if (info.isSymbolicLink()) {
      const link = await readlink(file);
      const resolved = join(dirname(file), link);
      if (link.startsWith('/') || relative(stdlib, resolved).startsWith('..') || !existsSync(resolved)) continue;
      await symlink(link, dest);
      continue;
    }
    await cp(file, dest, { preserveTimestamps: true });
  }
  // Directories the standard library expects even when empty of kept files.
  await mkdir(join(target, stdlib, 'lib-dynload'), { recursive: true });
}

/** The ssl module finds CA certificates through OpenSSL's directory, as on Debian. */
async function linkOpensslDefaults(target: string): Promise<void> {
  if (!existsSync(CA_BUNDLE)) return;
  const ssl = join(target, 'usr/lib/ssl');
  await mkdir(ssl, { recursive: true });
  await symlink(CA_BUNDLE, join(ssl, 'cert.pem'));
  await symlink(dirname(CA_BUNDLE), join(ssl, 'certs'));
}

/** Whether this machine can offer the runtime: Debian's interpreter and its standard library exist. */
export async function pythonAvailable(binary = PYTHON_BINARY): Promise<boolean> {
  if (!existsSync(binary)) return false;
  const stdlib = join(dirname(dirname(realpathSync(binary))), 'lib', basename(binary));
  return (await readdir(stdlib).catch(() => [] as string[])).includes('os.py');
}
