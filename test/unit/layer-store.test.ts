import t from 'tap';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, link, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import type { Headers } from 'tar-stream';
import { tarOf as plainTarOf, type TarEntry } from '../support/tar.js';
import { isSkiffError } from '../../infra/errors.js';
import { layerFromDirectory, layerFromFiles } from '../../infra/images/oci/layer.js';
import { sha256Digest } from '../../infra/images/oci/types.js';
import { Launcher } from '../../worker/process/launcher.js';
import { unmountTree } from '../../worker/sandbox/mounts.js';
import { LayerStore } from '../../worker/images/layer-store.js';

const run = promisify(execFile);
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];
/** Runs the stores' commands (mknod, setfattr), as the worker's does. */
const launcher = new Launcher();
t.teardown(() => launcher.stop());

async function scratch(t: TapTest): Promise<string> {
  const dir = await mkdtemp(join(process.env.SKIFF_TEST_STATE ?? tmpdir(), 'layer-store-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A gzip tar of exactly these entries (whatever they are: this is how a hostile layer is made). */
async function tarOf(entries: TarEntry[]): Promise<Buffer> {
  return gzipSync(await plainTarOf(entries));
}

/** Writes `blob` into `dir` as the layer file the store reads; its digest and path. */
async function blobFile(dir: string, blob: Buffer): Promise<{ digest: string; file: string }> {
  const digest = sha256Digest(blob);
  const file = join(dir, `${digest.slice(7)}.tar.gz`);
  await writeFile(file, blob);
  return { digest, file };
}

async function corruptError(t: TapTest, promise: Promise<unknown>, message: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(isSkiffError(error) && error.code === 'ImageCorrupt', `${message}: ImageCorrupt (got ${String(error)})`);
}

/** Nothing at all under the store's sha256 directory: no layer, no temporary, no sidecar. */
async function storeContents(dir: string): Promise<string[]> {
  return existsSync(join(dir, 'sha256')) ? readdir(join(dir, 'sha256')) : [];
}

t.test('unpack: a layer built from a directory comes back with its files, modes, links and prefix', async (t) => {
  const dir = await scratch(t);
  const src = join(dir, 'src');
  await mkdir(join(src, 'lib', 'deep'), { recursive: true });
  await writeFile(join(src, 'index.js'), 'module.exports = 1;\n');
  await writeFile(join(src, 'run.sh'), '#!/bin/sh\n');
  await chmod(join(src, 'run.sh'), 0o755);
  await writeFile(join(src, 'secret'), 's');
  await chmod(join(src, 'secret'), 0o600);
  await writeFile(join(src, 'lib', 'deep', 'big.bin'), Buffer.alloc(3 * 1024 * 1024, 3));
  await writeFile(join(src, 'lib', 'suid'), 'x');
  await chmod(join(src, 'lib', 'suid'), 0o4755);
  await link(join(src, 'index.js'), join(src, 'lib', 'again.js'));
  await symlink('../index.js', join(src, 'lib', 'index-link'));
  await symlink('/usr/bin/env', join(src, 'env'));
  const mtime = new Date('2020-02-02T02:02:02Z');
  const layer = await layerFromDirectory(src, { prefix: 'var/task', mtime });
  const { digest, file } = await blobFile(dir, layer.blob);

  const store = new LayerStore(join(dir, 'store'), launcher);
  t.notOk(store.has(digest));
  const unpacked = await store.unpack(digest, file);
  t.equal(unpacked.path, join(dir, 'store', 'sha256', digest.slice(7)));
  t.equal(store.path(digest), unpacked.path);
  t.ok(store.has(digest));
  const task = join(unpacked.path, 'var', 'task');
  t.equal(await readFile(join(task, 'index.js'), 'utf8'), 'module.exports = 1;\n');
  t.ok((await readFile(join(task, 'lib', 'deep', 'big.bin'))).equals(Buffer.alloc(3 * 1024 * 1024, 3)));
  t.equal((await stat(join(task, 'run.sh'))).mode & 0o7777, 0o755);
  t.equal((await stat(join(task, 'secret'))).mode & 0o7777, 0o600);
  t.equal((await stat(join(task, 'lib', 'suid'))).mode & 0o7777, 0o755, 'setuid dropped');
  t.equal((await stat(join(unpacked.path, 'var'))).mode & 0o7777, 0o755);
  t.equal(await readlink(join(task, 'lib', 'index-link')), '../index.js');
  t.equal(await readlink(join(task, 'env')), '/usr/bin/env', 'an absolute target is kept verbatim');
  const [original, again] = await Promise.all([stat(join(task, 'index.js')), stat(join(task, 'lib', 'again.js'))]);
  t.equal(again.ino, original.ino, 'the hard link is one inode');
  t.equal(original.nlink, 2);
  t.equal((await stat(join(task, 'index.js'))).mtime.getTime(), mtime.getTime(), 'file mtime');
  t.equal((await stat(join(task, 'lib'))).mtime.getTime(), mtime.getTime(), 'directory mtime, set after its entries');
  t.equal((await lstat(join(task, 'env'))).mtime.getTime(), mtime.getTime(), 'symlink mtime');
  const bytes = 'module.exports = 1;\n'.length + '#!/bin/sh\n'.length + 1 + 3 * 1024 * 1024 + 1;
  t.equal(unpacked.bytes, bytes, 'apparent size, the hard-linked file once');
  t.same(await store.list(), [{ digest, bytes }]);
  t.same(JSON.parse(await readFile(`${unpacked.path}.json`, 'utf8')), { digest, bytes }, 'the size is kept beside the tree');

  t.same(await store.unpack(digest, join(dir, 'no-such-file')), unpacked, 'an unpacked layer is not read again');
});

t.test('unpack: owners and modes come from the tar', async (t) => {
  const dir = await scratch(t);
  const blob = await tarOf([
    { name: 'home/', type: 'directory', mode: 0o750, uid: 1000, gid: 1001 },
    { name: 'home/app', type: 'file', mode: 0o6711, uid: 1000, gid: 1001, data: 'app' },
    { name: 'home/link', type: 'symlink', linkname: 'app', uid: 1002, gid: 1003 },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
  ]);
  const { digest, file } = await blobFile(dir, blob);
  const { path } = await new LayerStore(join(dir, 'store'), launcher).unpack(digest, file);
  const home = await stat(join(path, 'home'));
  t.same([home.uid, home.gid, home.mode & 0o7777], [1000, 1001, 0o750]);
  const app = await stat(join(path, 'home', 'app'));
  t.same([app.uid, app.gid, app.mode & 0o7777], [1000, 1001, 0o711], 'setuid and setgid dropped');
  const symlinked = await lstat(join(path, 'home', 'link'));
  t.same([symlinked.uid, symlinked.gid], [1002, 1003], 'the symlink itself is chowned');
  t.equal((await stat(join(path, 'tmp'))).mode & 0o7777, 0o1777, 'the sticky bit stays');
});

t.test('unpack: concurrent unpacks of one digest share one', async (t) => {
  const dir = await scratch(t);
  const layer = await layerFromFiles([{ path: 'a', data: 'a' }]);
  const { digest, file } = await blobFile(dir, layer.blob);
  const store = new LayerStore(join(dir, 'store'), launcher);
  const first = store.unpack(digest, file);
  const second = store.unpack(digest, file);
  t.equal(second, first, 'the same pending unpack');
  t.same(await second, await first);
  t.same((await storeContents(join(dir, 'store'))).sort(), [digest.slice(7), `${digest.slice(7)}.json`]);
});

t.test('unpack: a corrupt layer leaves nothing behind', async (t) => {
  const dir = await scratch(t);
  const layer = await layerFromDirectory(join(process.cwd(), 'node_modules', 'tar-stream'));
  const store = new LayerStore(join(dir, 'store'), launcher);
  const cases: [string, Buffer][] = [
    ['a truncated gzip', layer.blob.subarray(0, Math.floor(layer.blob.length / 2))],
    ['a gzip without its last bytes', layer.blob.subarray(0, layer.blob.length - 4)],
    ['neither gzip nor tar', Buffer.from('this is not a layer at all, just some text that goes on and on')],
    ['an empty file', Buffer.alloc(0)],
    ['a gzip of something else', gzipSync(Buffer.alloc(4096, 'x'))],
  ];
  for (const [name, blob] of cases) {
    const { digest, file } = await blobFile(dir, blob);
    await corruptError(t, store.unpack(digest, file), name);
    t.notOk(store.has(digest), `${name}: not stored`);
  }
  t.same(await storeContents(join(dir, 'store')), [], 'no temporary directory, no sidecar');
  t.same(await store.list(), []);
});

t.test('unpack: entries that would write outside the layer, or through a symlink, are refused', async (t) => {
  const dir = await scratch(t);
  const outside = join(dir, 'outside');
  await mkdir(outside);
  const store = new LayerStore(join(dir, 'deep', 'store'), launcher);
  const file = (name: string, data = 'pwned') => ({ name, type: 'file' as const, data });
  const cases: [string, (Headers & { data?: string })[]][] = [
    ['../escape', [file('ok'), file('../escape')]],
    ['a/../../escape', [file('a/../../../escape')]],
    ['an absolute path', [file(`${outside}/absolute`)]],
    ['a file through a symlink to outside', [{ name: 'lib', type: 'symlink', linkname: outside }, file('lib/through')]],
    ['a file through a relative symlink', [{ name: 'up', type: 'symlink', linkname: '../../../outside' }, file('up/through')]],
    [
      'a directory through a symlink',
      [
        { name: 'lib', type: 'symlink', linkname: outside },
        { name: 'lib/dir/', type: 'directory' },
      ],
    ],
    [
      'a symlink through a symlink',
      [
        { name: 'lib', type: 'symlink', linkname: outside },
        { name: 'lib/s', type: 'symlink', linkname: '/' },
      ],
    ],
    ['a whiteout through a symlink', [{ name: 'lib', type: 'symlink', linkname: outside }, file('lib/.wh.x', '')]],
    ['an opaque marker through a symlink', [{ name: 'lib', type: 'symlink', linkname: outside }, file('lib/.wh..wh..opq', '')]],
    ['a hard link to outside', [{ name: 'x', type: 'link', linkname: '../../../outside/target' }]],
    ['a hard link to a host file', [{ name: 'x', type: 'link', linkname: '/etc/passwd' }]],
    ['a hard link to a file this layer lacks', [{ name: 'x', type: 'link', linkname: 'nope' }]],
    [
      'a hard link through a symlink',
      [
        { name: 'lib', type: 'symlink', linkname: outside },
        { name: 'x', type: 'link', linkname: 'lib/target' },
      ],
    ],
    [
      'a hard link to a directory',
      [
        { name: 'd/', type: 'directory' },
        { name: 'x', type: 'link', linkname: 'd' },
      ],
    ],
    [
      'a hard link to a file replaced by a symlink',
      [file('d/f'), { name: 'd', type: 'symlink', linkname: outside }, { name: 'x', type: 'link', linkname: 'd/f' }],
    ],
    ['a file below a file', [file('f'), file('f/g')]],
    ['a whiteout of ..', [file('d/.wh...', '')]],
  ];
  await writeFile(join(outside, 'target'), 'host file');
  for (const [name, entries] of cases) {
    const { digest, file: blob } = await blobFile(dir, await tarOf(entries));
    await corruptError(t, store.unpack(digest, blob), name);
  }
  t.same((await readdir(outside)).sort(), ['target'], 'nothing was written outside');
  t.equal(await readFile(join(outside, 'target'), 'utf8'), 'host file');
  t.notOk(existsSync(join(dir, 'escape')) || existsSync(join(dir, 'deep', 'escape')));
  t.same(await storeContents(join(dir, 'deep', 'store')), [], 'nothing left in the store');
});

t.test('unpack: a later entry for a path replaces the earlier, without following it', async (t) => {
  const dir = await scratch(t);
  const outside = join(dir, 'outside');
  await mkdir(outside);
  await writeFile(join(outside, 'target'), 'host file');
  const blob = await tarOf([
    { name: 'x', type: 'symlink', linkname: join(outside, 'target') },
    { name: 'x', type: 'file', data: 'layer file' },
    { name: 'd', type: 'symlink', linkname: outside },
    { name: 'd/', type: 'directory', mode: 0o700 },
    { name: 'd/inside', type: 'file', data: 'in' },
    { name: 'gone/sub/file', type: 'file', data: 'old' },
    { name: 'gone', type: 'file', data: 'now a file' },
  ]);
  const { digest, file } = await blobFile(dir, blob);
  const { path, bytes } = await new LayerStore(join(dir, 'store'), launcher).unpack(digest, file);
  t.equal(await readFile(join(path, 'x'), 'utf8'), 'layer file');
  t.ok((await lstat(join(path, 'd'))).isDirectory());
  t.equal(await readFile(join(path, 'd', 'inside'), 'utf8'), 'in');
  t.equal(await readFile(join(path, 'gone'), 'utf8'), 'now a file');
  t.equal(await readFile(join(outside, 'target'), 'utf8'), 'host file');
  t.same(await readdir(outside), ['target']);
  t.equal(bytes, 'layer file'.length + 2 + 'now a file'.length, 'replaced files do not count');
});

t.test('unpack: a plain (uncompressed) tar is accepted too', async (t) => {
  const dir = await scratch(t);
  const { digest, file } = await blobFile(dir, await plainTarOf([{ name: 'plain.txt', data: 'plain' }]));
  const { path, bytes } = await new LayerStore(join(dir, 'store'), launcher).unpack(digest, file);
  t.equal(await readFile(join(path, 'plain.txt'), 'utf8'), 'plain');
  t.equal(bytes, 5);
});

t.test('unpack: work left by a crashed process is cleared first', async (t) => {
  const dir = await scratch(t);
  const layer = await layerFromFiles([{ path: 'a', data: 'a' }]);
  const { digest, file } = await blobFile(dir, layer.blob);
  const hex = digest.slice(7);
  const dead = await deadPid();
  const root = join(dir, 'store', 'sha256');
  await mkdir(join(root, `${hex}.unpacking-${dead}-0badc0de`, 'half', 'written'), { recursive: true });
  await writeFile(join(root, `${hex}.json.writing-${dead}-0badc0de`), '{');
  const other = `${'0'.repeat(64)}.unpacking-${dead}-0badc0de`;
  await mkdir(join(root, other));
  const live = `${hex}.unpacking-${process.ppid}-0badc0de`;
  await mkdir(join(root, live));
  await new LayerStore(join(dir, 'store'), launcher).unpack(digest, file);
  t.same((await readdir(root)).sort(), [hex, other, live, `${hex}.json`].sort(), "only the dead process' work on this digest is removed");
});

t.test('remove: the layer and its size are gone; removing again is fine', async (t) => {
  const dir = await scratch(t);
  const store = new LayerStore(join(dir, 'store'), launcher);
  const a = await blobFile(dir, (await layerFromFiles([{ path: 'a', data: 'aa' }])).blob);
  const b = await blobFile(dir, (await layerFromFiles([{ path: 'b', data: 'bbb' }])).blob);
  await store.unpack(a.digest, a.file);
  await store.unpack(b.digest, b.file);
  t.same(
    await store.list(),
    [
      { digest: a.digest, bytes: 2 },
      { digest: b.digest, bytes: 3 },
    ].sort((x, y) => (x.digest < y.digest ? -1 : 1)),
  );
  await store.remove(a.digest);
  t.notOk(store.has(a.digest));
  t.same(await store.list(), [{ digest: b.digest, bytes: 3 }]);
  t.same((await storeContents(join(dir, 'store'))).sort(), [b.digest.slice(7), `${b.digest.slice(7)}.json`]);
  await store.remove(a.digest);
  t.same(await new LayerStore(join(dir, 'elsewhere'), launcher).list(), [], 'an empty store lists nothing');

  const again = store.unpack(a.digest, a.file);
  const removing = store.remove(a.digest);
  const third = store.unpack(a.digest, a.file);
  await again;
  await removing;
  t.same(await third, { path: store.path(a.digest), bytes: 2 }, 'unpack, remove, unpack run in order');
  t.ok(store.has(a.digest));
});

t.test('list: a missing size is measured again', async (t) => {
  const dir = await scratch(t);
  const store = new LayerStore(join(dir, 'store'), launcher);
  const { digest, file } = await blobFile(
    dir,
    (
      await layerFromFiles([
        { path: 'x/y', data: '12345' },
        { path: 'z', data: '1' },
      ])
    ).blob,
  );
  const { path } = await store.unpack(digest, file);
  await rm(`${path}.json`);
  t.same(await store.list(), [{ digest, bytes: 6 }]);
  t.ok(existsSync(`${path}.json`), 'and kept');
  await writeFile(`${path}.json`, 'garbage');
  t.same(await store.list(), [{ digest, bytes: 6 }]);
});

t.test('whiteouts become overlayfs whiteouts: a real overlay mount hides what upper layers delete', async (t) => {
  const dir = await scratch(t);
  const store = new LayerStore(join(dir, 'store'), launcher);
  const a = await blobFile(
    dir,
    (
      await layerFromFiles([
        { path: 'a/x', data: 'x' },
        { path: 'a/kept', data: 'kept' },
        { path: 'd/y', data: 'y' },
        { path: 'd/z', data: 'z' },
      ])
    ).blob,
  );
  const b = await blobFile(
    dir,
    await tarOf([
      { name: 'a/', type: 'directory', mode: 0o755 },
      { name: 'a/.wh.x', type: 'file' },
      { name: 'd/', type: 'directory', mode: 0o755 },
      { name: 'd/.wh..wh..opq', type: 'file' },
      { name: 'd/new', type: 'file', data: 'new' },
    ]),
  );
  const lowerA = (await store.unpack(a.digest, a.file)).path;
  const unpackedB = await store.unpack(b.digest, b.file);
  const lowerB = unpackedB.path;
  t.equal(unpackedB.bytes, 3, 'whiteouts have no size');

  const whiteout = await lstat(join(lowerB, 'a', 'x'));
  t.ok(whiteout.isCharacterDevice(), 'a/x is a character device in B');
  t.equal(whiteout.rdev, 0, 'device 0/0');
  t.notOk(existsSync(join(lowerB, 'a', '.wh.x')), 'the OCI marker itself is not kept');
  t.notOk(existsSync(join(lowerB, 'd', '.wh..wh..opq')));
  const { stdout } = await run('getfattr', ['--only-values', '-n', 'trusted.overlay.opaque', join(lowerB, 'd')]);
  t.equal(stdout, 'y');

  const upper = join(dir, 'upper');
  const work = join(dir, 'work');
  const merged = join(dir, 'merged');
  await Promise.all([mkdir(upper), mkdir(work), mkdir(merged)]);
  await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lowerB}:${lowerA},upperdir=${upper},workdir=${work}`, merged]);
  t.teardown(() => unmountTree(launcher, merged));
  t.same(await readdir(join(merged, 'a')), ['kept'], 'a/x is gone');
  t.same(await readdir(join(merged, 'd')), ['new'], 'd holds only what B put there');
  t.equal(await readFile(join(merged, 'd', 'new'), 'utf8'), 'new');
});

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn('true');
  const pid = child.pid;
  await new Promise((resolve) => child.on('exit', resolve));
  if (pid === undefined) throw new Error('no pid');
  return pid;
}
