import t from 'tap';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, link, mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import tar from 'tar-stream';
import type { Headers } from 'tar-stream';
import { isSkiffError } from '../../infra/errors.js';
import { layerFromDirectory, layerFromFiles } from '../../infra/images/oci/layer.js';
import { MediaType, sha256Digest } from '../../infra/images/oci/types.js';

const run = promisify(execFile);
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

async function scratch(t: TapTest): Promise<string> {
  const dir = await mkdtemp(join(process.env.SKIFF_TEST_STATE ?? tmpdir(), 'layer-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

type Listed = Headers & { data: Buffer };

/** The entries of a gzip tar, in order, with their bodies. */
async function entriesOf(blob: Buffer): Promise<Listed[]> {
  const extract = tar.extract();
  extract.end(gunzipSync(blob));
  const out: Listed[] = [];
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    out.push({ ...entry.header, data: Buffer.concat(chunks) });
  }
  return out;
}

/** A source tree with a bit of everything a directory can hold. */
async function fixture(dir: string): Promise<string> {
  const root = join(dir, 'src');
  await mkdir(join(root, 'lib', 'deep'), { recursive: true });
  await writeFile(join(root, 'index.js'), 'export const handler = () => 1;\n');
  await writeFile(join(root, 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o775 });
  await chmod(join(root, 'run.sh'), 0o775);
  await writeFile(join(root, 'lib', 'deep', 'data.bin'), Buffer.alloc(300 * 1024, 7));
  await writeFile(join(root, 'lib', 'setuid'), 'x');
  await chmod(join(root, 'lib', 'setuid'), 0o4755);
  await link(join(root, 'index.js'), join(root, 'lib', 'same.js'));
  await symlink('../index.js', join(root, 'lib', 'index-link'));
  await symlink('/nowhere/at/all', join(root, 'dangling'));
  await run('mkfifo', [join(root, 'pipe')]);
  return root;
}

t.test('layerFromDirectory: directories, files, symlinks and hard links in depth-first sorted order', async (t) => {
  const root = await fixture(await scratch(t));
  const layer = await layerFromDirectory(root);
  const entries = await entriesOf(layer.blob);
  t.same(
    entries.map((e) => [e.name, e.type]),
    [
      ['dangling', 'symlink'],
      ['index.js', 'file'],
      ['lib/', 'directory'],
      ['lib/deep/', 'directory'],
      ['lib/deep/data.bin', 'file'],
      ['lib/index-link', 'symlink'],
      ['lib/same.js', 'link'],
      ['lib/setuid', 'file'],
      ['run.sh', 'file'],
    ],
    'the fifo is left out',
  );
  const byName = new Map(entries.map((e) => [e.name, e]));
  t.equal(byName.get('dangling')?.linkname, '/nowhere/at/all', 'symlink target verbatim');
  t.equal(byName.get('lib/index-link')?.linkname, '../index.js');
  t.equal(byName.get('lib/same.js')?.linkname, 'index.js', 'the hard link points to the first path of the inode');
  t.equal(byName.get('run.sh')?.mode, 0o755, 'group write dropped');
  t.equal(byName.get('lib/setuid')?.mode, 0o4755, 'special bits kept');
  t.equal(byName.get('index.js')?.data.toString(), 'export const handler = () => 1;\n');
  t.ok(byName.get('lib/deep/data.bin')?.data.equals(Buffer.alloc(300 * 1024, 7)), 'a streamed file arrives whole');
  for (const entry of entries) {
    t.equal(entry.uid, 0, `${entry.name} uid`);
    t.equal(entry.gid, 0, `${entry.name} gid`);
    t.equal(entry.uname, '', `${entry.name} uname`);
    t.equal(entry.gname, '', `${entry.name} gname`);
    t.equal(entry.mtime?.getTime(), 0, `${entry.name} mtime`);
  }
});

t.test('layerFromDirectory: the same content gives the same digest, whenever its files were touched', async (t) => {
  const root = await fixture(await scratch(t));
  const first = await layerFromDirectory(root);
  const second = await layerFromDirectory(root);
  t.equal(second.digest, first.digest, 'built twice');
  t.ok(second.blob.equals(first.blob));
  for (const path of ['index.js', 'lib/deep/data.bin', 'lib', 'run.sh']) await utimes(join(root, path), new Date(2001, 1, 1), new Date(2002, 2, 2));
  t.equal((await layerFromDirectory(root)).digest, first.digest, 'source mtimes changed');
  t.not((await layerFromDirectory(root, { mtime: new Date(1_000_000_000_000) })).digest, first.digest, 'another layer mtime');
  await writeFile(join(root, 'index.js'), 'export const handler = () => 2;\n');
  t.not((await layerFromDirectory(root)).digest, first.digest, 'content changed');
});

t.test('layerFromDirectory: digest, diffId, size and media type describe the blob', async (t) => {
  const root = await fixture(await scratch(t));
  const layer = await layerFromDirectory(root);
  t.equal(layer.digest, sha256Digest(layer.blob));
  t.equal(layer.diffId, `sha256:${createHash('sha256').update(gunzipSync(layer.blob)).digest('hex')}`);
  t.equal(layer.size, layer.blob.length);
  t.equal(layer.mediaType, MediaType.layerGzip);
  t.same([...layer.blob.subarray(0, 3)], [0x1f, 0x8b, 8], 'gzip, deflate');
  t.equal(layer.blob[3], 0, 'no file name or other optional field in the gzip header');
  t.equal(layer.blob.readUInt32LE(4), 0, 'no time in the gzip header');
});

t.test('layerFromDirectory: a prefix puts the content under parent directories', async (t) => {
  const root = await fixture(await scratch(t));
  const entries = await entriesOf((await layerFromDirectory(root, { prefix: '/var/task/' })).blob);
  t.same(
    entries.slice(0, 4).map((e) => [e.name, e.type, e.mode]),
    [
      ['var/', 'directory', 0o755],
      ['var/task/', 'directory', 0o755],
      ['var/task/dangling', 'symlink', 0o777],
      ['var/task/index.js', 'file', 0o644],
    ],
  );
  t.equal(entries.find((e) => e.name === 'var/task/lib/same.js')?.linkname, 'var/task/index.js', 'hard links name the prefixed path');
});

t.test('layerFromDirectory: the gzip level changes the bytes, not the content', async (t) => {
  const root = await fixture(await scratch(t));
  const fast = await layerFromDirectory(root, { gzipLevel: 1 });
  const best = await layerFromDirectory(root, { gzipLevel: 9 });
  t.equal(fast.diffId, best.diffId);
  t.not(fast.digest, best.digest);
});

t.test('layerFromDirectory: an empty directory is a valid, empty layer', async (t) => {
  const dir = await scratch(t);
  await mkdir(join(dir, 'empty'));
  const layer = await layerFromDirectory(join(dir, 'empty'));
  t.same(await entriesOf(layer.blob), []);
  t.equal(gunzipSync(layer.blob).length, 1024, 'just the end-of-archive blocks');
});

t.test('layerFromDirectory: a missing directory is an error', async (t) => {
  const dir = await scratch(t);
  await t.rejects(layerFromDirectory(join(dir, 'missing')), { code: 'ENOENT' });
});

t.test('layerFromFiles: files with their parents, sorted, deterministic', async (t) => {
  const files = [
    { path: 'bin/tool', data: '#!/bin/sh\n', mode: 0o755 },
    { path: 'etc/skiff/config.json', data: Buffer.from('{}') },
    { path: 'a-file', data: 'a' },
  ];
  const layer = await layerFromFiles(files, { prefix: 'opt' });
  const entries = await entriesOf(layer.blob);
  t.same(
    entries.map((e) => [e.name, e.type, e.mode, e.data.toString()]),
    [
      ['opt/', 'directory', 0o755, ''],
      ['opt/a-file', 'file', 0o644, 'a'],
      ['opt/bin/', 'directory', 0o755, ''],
      ['opt/bin/tool', 'file', 0o755, '#!/bin/sh\n'],
      ['opt/etc/', 'directory', 0o755, ''],
      ['opt/etc/skiff/', 'directory', 0o755, ''],
      ['opt/etc/skiff/config.json', 'file', 0o644, '{}'],
    ],
  );
  t.equal((await layerFromFiles([...files].reverse(), { prefix: 'opt' })).digest, layer.digest, 'the order given does not matter');
});

t.test('layerFromFiles and layerFromDirectory agree on the same content', async (t) => {
  const dir = await scratch(t);
  await mkdir(join(dir, 'src', 'sub'), { recursive: true });
  await writeFile(join(dir, 'src', 'x.txt'), 'x');
  await writeFile(join(dir, 'src', 'sub', 'y.txt'), 'y');
  for (const path of ['src/sub', 'src/x.txt', 'src/sub/y.txt']) await chmod(join(dir, path), path.endsWith('.txt') ? 0o644 : 0o755);
  const fromFiles = await layerFromFiles([
    { path: 'sub/y.txt', data: 'y' },
    { path: 'x.txt', data: 'x' },
  ]);
  t.equal((await layerFromDirectory(join(dir, 'src'))).digest, fromFiles.digest);
});

t.test('layerFromFiles: paths outside the layer, twice, or under a file are refused', async (t) => {
  for (const files of [
    [{ path: '../etc/passwd', data: '' }],
    [{ path: 'a/../../b', data: '' }],
    [{ path: '', data: '' }],
    [
      { path: 'x', data: '' },
      { path: '/x', data: '' },
    ],
    [
      { path: 'x', data: '' },
      { path: 'x/y', data: '' },
    ],
    [
      { path: 'x/y', data: '' },
      { path: 'x', data: '' },
    ],
  ]) {
    const error = await layerFromFiles(files).catch((e: unknown) => e);
    t.ok(isSkiffError(error) && error.code === 'InvalidRequest', JSON.stringify(files.map((f) => f.path)));
  }
  const error = await layerFromFiles([], { prefix: 'a/../..' }).catch((e: unknown) => e);
  t.ok(isSkiffError(error) && error.code === 'InvalidRequest', 'a prefix outside the layer');
});
