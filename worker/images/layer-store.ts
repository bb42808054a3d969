/**
 * The worker's unpacked image layers, by digest: `<dir>/sha256/<hex>` holds a layer's tree in
 * overlayfs form, usable as it is as a lowerdir. The unpacking itself, with its safety checks, its
 * budget and the OCI whiteouts, is infra/images/oci/layer-unpacker.ts; this store gives it the
 * budget (LayerStoreOptions), a container's id range for owners, and the worker's launcher for
 * its commands (mknod, setfattr).
 *
 * A layer appears whole or not at all: it is unpacked into a temporary directory beside its
 * final place and renamed into place. Its size is kept in `<hex>.json` beside it, so listing the
 * store does not walk the trees. A corrupt or unsafe layer is refused (ImageCorrupt), one over
 * the budget too, and leaves nothing behind.
 *
 * Operations on one digest run one at a time, in call order; a call repeating the pending one
 * (an unpack while an unpack runs, a remove while a remove runs) shares it. Removing a layer a
 * mount still uses as lowerdir is the caller's mistake to avoid.
 */
import { processAlive } from '../../infra/services/process.js';
import { unpackLayer } from '../../infra/images/oci/layer-unpacker.js';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { digestHex } from '../../infra/images/oci/types.js';
import type { CommandRunner } from '../process/command-runner.js';
import { CONTAINER_ID_RANGE } from '../sandbox/oci-spec.js';

export interface UnpackedLayer {
  /** The unpacked tree: a lowerdir. */
  path: string;
  /** Apparent size of its regular files, each hard-linked file counted once. */
  bytes: number;
}

export interface StoredLayer {
  digest: string;
  bytes: number;
}

const HEX = /^[a-f0-9]{64}$/;

export interface LayerStoreOptions {
  /** Most bytes of files one layer may unpack to (its gunzipped tar may add its headers). Default 4 GiB. */
  maxBytes?: number;
  /** Most entries one layer may hold. Default 200,000. */
  maxEntries?: number;
}

/** What one layer may cost to unpack. */
interface Budget {
  maxBytes: number;
  maxEntries: number;
}

const DEFAULT_BUDGET: Budget = { maxBytes: 4 * 1024 ** 3, maxEntries: 200_000 };
/** Names of the work in progress beside a layer: `<hex>.<what>-<pid>-<random>`. */
const WORK = /^([a-f0-9]{64})\.(?:unpacking|removing|json\.writing)-(\d+)-[a-f0-9]+$/;

export class LayerStore {
  /** `<dir>/sha256`: each layer's tree is `<root>/<hex>`. */
  readonly root: string;
  private readonly pending = new Map<string, { kind: 'unpack' | 'remove'; done: Promise<unknown> }>();
  private readonly budget: Budget;

  constructor(
    dir: string,
    /** Runs the unpacker's commands: the worker's launcher. */
    private readonly launcher: CommandRunner,
    options: LayerStoreOptions = {},
  ) {
    this.root = join(dir, 'sha256');
    this.budget = { maxBytes: options.maxBytes ?? DEFAULT_BUDGET.maxBytes, maxEntries: options.maxEntries ?? DEFAULT_BUDGET.maxEntries };
  }

  /** Where the layer with this digest is (or would be) unpacked. */
  path(digest: string): string {
    return join(this.root, digestHex(digest));
  }

  has(digest: string): boolean {
    return existsSync(this.path(digest));
  }

  /**
   * Unpacks the layer in `blobFile` (a gzip or plain tar, whose digest the caller has verified),
   * unless it already is. A corrupt or unsafe layer (ImageCorrupt) leaves nothing behind.
   */
  unpack(digest: string, blobFile: string): Promise<UnpackedLayer> {
    const hex = digestHex(digest);
    return this.serial(hex, 'unpack', () => this.unpackOnce(hex, blobFile));
  }

  async remove(digest: string): Promise<void> {
    const hex = digestHex(digest);
    await this.serial(hex, 'remove', async () => {
      const doomed = this.workPath(hex, 'removing');
      try {
        // Renamed first: the layer is gone at once, however long deleting its files takes.
        await rename(join(this.root, hex), doomed);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      }
      await rm(this.sidecar(hex), { force: true });
      await rm(doomed, { recursive: true, force: true });
    });
  }

  async list(): Promise<StoredLayer[]> {
    let entries;
    try {
      entries = await readdir(this.root, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const layers: StoredLayer[] = [];
    for (const entry of entries) {
      if (entry.isDirectory() && HEX.test(entry.name)) layers.push({ digest: `sha256:${entry.name}`, bytes: await this.bytesOf(entry.name) });
    }
    return layers.sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  }

  private serial<T>(hex: string, kind: 'unpack' | 'remove', work: () => Promise<T>): Promise<T> {
    const last = this.pending.get(hex);
    if (last?.kind === kind) return last.done as Promise<T>;
    const done = (last?.done ?? Promise.resolve()).then(
      () => work(),
      () => work(),
    );
    this.pending.set(hex, { kind, done });
    const forget = () => {
      if (this.pending.get(hex)?.done === done) this.pending.delete(hex);
    };
    done.then(forget, forget);
    return done;
  }

  private async unpackOnce(hex: string, blobFile: string): Promise<UnpackedLayer> {
    const target = join(this.root, hex);
    if (existsSync(target)) return { path: target, bytes: await this.bytesOf(hex) };
    await mkdir(this.root, { recursive: true });
    await this.removeLeftovers(hex);
    const temporary = this.workPath(hex, 'unpacking');
    try {
      const bytes = await unpackLayer(blobFile, temporary, { ...this.budget, idRange: CONTAINER_ID_RANGE, commands: this.launcher });
      await this.writeSidecar(hex, bytes);
      await rename(temporary, target);
      return { path: target, bytes };
    } catch (error) {
      await rm(temporary, { recursive: true, force: true });
      // Another process (sharing this directory) put the same layer in place first.
      const code = (error as NodeJS.ErrnoException).code;
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && existsSync(target)) return { path: target, bytes: await this.bytesOf(hex) };
      throw error;
    }
  }

  /** Work left beside this layer by a process that died (or by this one, which is past it). */
  private async removeLeftovers(hex: string): Promise<void> {
    for (const name of await readdir(this.root)) {
      const work = WORK.exec(name);
      if (work?.[1] !== hex) continue;
      const pid = Number(work[2]);
      if (pid === process.pid || !processAlive(pid)) await rm(join(this.root, name), { recursive: true, force: true });
    }
  }

  private workPath(hex: string, what: 'unpacking' | 'removing' | 'json.writing'): string {
    return join(this.root, `${hex}.${what}-${process.pid}-${randomBytes(4).toString('hex')}`);
  }

  private sidecar(hex: string): string {
    return join(this.root, `${hex}.json`);
  }

  private async writeSidecar(hex: string, bytes: number): Promise<void> {
    const temporary = this.workPath(hex, 'json.writing');
    await writeFile(temporary, `${JSON.stringify({ digest: `sha256:${hex}`, bytes })}\n`);
    await rename(temporary, this.sidecar(hex));
  }

  /** The size kept beside the layer; measured again (and kept) if that is missing or unreadable. */
  private async bytesOf(hex: string): Promise<number> {
    try {
      const { bytes } = JSON.parse(await readFile(this.sidecar(hex), 'utf8')) as { bytes?: unknown };
      if (typeof bytes === 'number' && Number.isSafeInteger(bytes) && bytes >= 0) return bytes;
    } catch {
      // Missing or unreadable: measured below.
    }
    const bytes = await treeBytes(join(this.root, hex));
    await this.writeSidecar(hex, bytes);
    return bytes;
  }
}

/** The apparent size of a tree's regular files, each hard-linked file counted once. */
async function treeBytes(dir: string): Promise<number> {
  const seen = new Set<string>();
  let bytes = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const stats = await lstat(join(entry.parentPath, entry.name));
    const inode = `${stats.dev}:${stats.ino}`;
    if (seen.has(inode)) continue;
    seen.add(inode);
    bytes += stats.size;
  }
  return bytes;
}
