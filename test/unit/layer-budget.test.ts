/**
 * A layer is unpacked under a byte and an entry budget, and its owners are clamped into a
 * container's id range (infra/images/oci/layer-unpacker.ts, as worker/images/layer-store.ts
 * calls it): a hostile tar is refused with ImageCorrupt and leaves nothing behind.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { lstat, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { tarOf } from '../support/tar.js';
import { isSkiffError } from '../../infra/errors.js';
import { sha256Digest } from '../../infra/images/oci/types.js';
import { LayerStore } from '../../worker/images/layer-store.js';
import { Launcher } from '../../worker/process/launcher.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];
const launcher = new Launcher();
t.teardown(() => launcher.stop());

async function scratch(t: TapTest): Promise<string> {
  const dir = await mkdtemp(join(process.env.SKIFF_TEST_STATE ?? tmpdir(), 'layer-budget-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function blobFile(dir: string, blob: Buffer): Promise<{ digest: string; file: string }> {
  const digest = sha256Digest(blob);
  const file = join(dir, `${digest.slice(7)}.tar.gz`);
  await writeFile(file, blob);
  return { digest, file };
}

/** Unpacks and expects ImageCorrupt, with nothing left in the store. */
async function refused(t: TapTest, store: LayerStore, storeDir: string, blob: Buffer, what: string, message: RegExp): Promise<void> {
  const { digest, file } = await blobFile(join(storeDir, '..'), blob);
  const error = await store.unpack(digest, file).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(isSkiffError(error) && error.code === 'ImageCorrupt', `${what}: ImageCorrupt (got ${String(error)})`);
  t.match((error as Error | undefined)?.message, message, `${what}: the message says why`);
  t.notOk(store.has(digest), `${what}: no layer`);
  const left = existsSync(join(storeDir, 'sha256')) ? await readdir(join(storeDir, 'sha256')) : [];
  t.same(left, [], `${what}: no temporary directory or sidecar left`);
}

t.test('a layer with more entries than the budget is refused, leaving nothing', async (t) => {
  const dir = await scratch(t);
  const storeDir = join(dir, 'store');
  const store = new LayerStore(storeDir, launcher, { maxEntries: 10 });
  const entries = Array.from({ length: 11 }, (_, i) => ({ name: `f${i}`, type: 'file' as const, data: 'x' }));
  await refused(t, store, storeDir, gzipSync(await tarOf(entries)), '11 entries over a budget of 10', /more than 10 entries/);
  const ten = gzipSync(await tarOf(entries.slice(0, 10)));
  const { digest, file } = await blobFile(dir, ten);
  t.equal((await store.unpack(digest, file)).bytes, 10, 'exactly the budget is unpacked');
});

t.test('a layer whose files pass the byte budget is refused before they are written', async (t) => {
  const dir = await scratch(t);
  const storeDir = join(dir, 'store');
  const store = new LayerStore(storeDir, launcher, { maxBytes: 1024 * 1024 });
  const blob = gzipSync(
    await tarOf([
      { name: 'a', type: 'file', data: Buffer.alloc(600 * 1024) },
      { name: 'b', type: 'file', data: Buffer.alloc(600 * 1024) },
    ]),
  );
  await refused(t, store, storeDir, blob, 'two files of 600 KiB over 1 MiB', /files are over 1048576 bytes/);
});

t.test('a gzip bomb is refused at the budget: a huge file of zeros, and gigabytes of zeros after the tar', async (t) => {
  const dir = await scratch(t);
  const storeDir = join(dir, 'store');
  const store = new LayerStore(storeDir, launcher, { maxBytes: 4 * 1024 * 1024, maxEntries: 100 });
  const zeros = Buffer.alloc(64 * 1024 * 1024);
  const bomb = gzipSync(await tarOf([{ name: 'bomb', type: 'file', data: zeros }]));
  t.ok(bomb.length < 1024 * 1024, `the bomb is small (${bomb.length} bytes for 64 MiB)`);
  await refused(t, store, storeDir, bomb, 'a 64 MiB file of zeros', /over 4194304 bytes/);
  // No file at all: only the tar stream itself is long. Counted as it is gunzipped.
  const trailing = gzipSync(Buffer.concat([await tarOf([{ name: 'small', type: 'file', data: 'x' }]), zeros]));
  await refused(t, store, storeDir, trailing, 'a small tar followed by 64 MiB of zeros', /tar is over/);
});

t.test('owners outside a container id range become 65534; those inside are kept', async (t) => {
  const dir = await scratch(t);
  const blob = gzipSync(
    await tarOf([
      { name: 'far', type: 'file', uid: 100000, gid: 70000, data: 'x' },
      { name: 'edge', type: 'file', uid: 65535, gid: 0, data: 'x' },
      { name: 'dir/', type: 'directory', uid: 2_000_000, gid: 1000 },
      { name: 'link', type: 'symlink', linkname: 'far', uid: 1_000_000, gid: 1_000_000 },
    ]),
  );
  const { digest, file } = await blobFile(dir, blob);
  const { path } = await new LayerStore(join(dir, 'store'), launcher).unpack(digest, file);
  const far = await stat(join(path, 'far'));
  t.same([far.uid, far.gid], [65534, 65534], 'uid 100000 and gid 70000 are clamped');
  const edge = await stat(join(path, 'edge'));
  t.same([edge.uid, edge.gid], [65535, 0], 'the top of the range is kept');
  const inDir = await stat(join(path, 'dir'));
  t.same([inDir.uid, inDir.gid], [65534, 1000], 'a directory too');
  const link = await lstat(join(path, 'link'));
  t.same([link.uid, link.gid], [65534, 65534], 'a symlink too');
});
