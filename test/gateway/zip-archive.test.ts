import t from 'tap';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yazl from 'yazl';
import { extractZip, inspectZip, ZipError } from '../../gateway/code/zip-archive.js';
import type { ZipLimits } from '../../gateway/code/zip-archive.js';
import { patchName } from '../support/zip.js';

/** The `t` a subtest callback receives. */
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const LIMITS: ZipLimits = { maxEntries: 100, maxUnpackedBytes: 1024 * 1024 };

type Item = { dir: string; mode?: number } | { file: string; data: string | Buffer; mode?: number; compress?: boolean } | { link: string; target: string };

/** Builds a zip with yazl, which writes unix modes into the external attributes. */
function makeZip(items: Item[]): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const item of items) {
    if ('dir' in item) zip.addEmptyDirectory(item.dir, { mode: item.mode ?? 0o40755 });
    else if ('file' in item) zip.addBuffer(Buffer.from(item.data), item.file, { mode: item.mode ?? 0o100644, compress: item.compress ?? true });
    else zip.addBuffer(Buffer.from(item.target), item.link, { mode: 0o120777 });
  }
  zip.end();
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c));
    zip.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
    zip.outputStream.on('error', reject);
  });
}

/** Rewrites an entry's declared uncompressed size in both headers: a zip that lies. */
function patchDeclaredSize(zip: Buffer, name: string, size: number): Buffer {
  const out = Buffer.from(zip);
  for (let at = 0; at + 4 <= out.length; at++) {
    const sig = out.readUInt32LE(at);
    if (sig === 0x04034b50 && out.toString('utf8', at + 30, at + 30 + out.readUInt16LE(at + 26)) === name) out.writeUInt32LE(size, at + 22);
    if (sig === 0x02014b50 && out.toString('utf8', at + 46, at + 46 + out.readUInt16LE(at + 28)) === name) out.writeUInt32LE(size, at + 24);
  }
  return out;
}

/** Overwrites the start of an entry's compressed data, leaving the headers intact. */
function corruptData(zip: Buffer, name: string): Buffer {
  const out = Buffer.from(zip);
  const at = out.indexOf(Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04])]));
  for (let h = at; h !== -1; h = out.indexOf(Buffer.from([0x50, 0x4b, 0x03, 0x04]), h + 1)) {
    const nameLength = out.readUInt16LE(h + 26);
    if (out.toString('utf8', h + 30, h + 30 + nameLength) !== name) continue;
    const dataAt = h + 30 + nameLength + out.readUInt16LE(h + 28);
    out.fill(0xff, dataAt, dataAt + 8); // deflate block type 3 is reserved: invalid
    return out;
  }
  throw new Error(`no local header for ${name}`);
}

async function rejectsZip(t: TapTest, p: Promise<unknown>, field: string, message: RegExp): Promise<void> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof ZipError, `a ZipError (got ${String(err)})`);
  if (err instanceof ZipError) {
    t.equal(err.field, field);
    t.equal(err.code, 'InvalidRequest');
    t.match(err.message, message);
  }
}

async function tempDir(t: TapTest): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-zip-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const HANDLER = { file: 'index.js', data: 'exports.handler = async () => 1;\n' } as const;

t.test('inspectZip summarizes a good archive', async (t) => {
  const zip = await makeZip([HANDLER, { dir: 'lib' }, { file: 'lib/util.js', data: 'x'.repeat(100) }, { link: 'current', target: 'lib/util.js' }]);
  const summary = await inspectZip(zip, LIMITS, 'index.handler');
  t.same(summary, {
    sha256: createHash('sha256').update(zip).digest('hex'),
    entries: 4,
    unpackedBytes: HANDLER.data.length + 100 + 'lib/util.js'.length,
  });
});

t.test('the handler file is found as .js, .mjs or .cjs, the export after the last dot', async (t) => {
  const zip = await makeZip([
    { file: 'src/app.mjs', data: 'export const handler = () => 1;' },
    { file: 'cjs/main.cjs', data: '' },
    { file: 'a.b.js', data: '' },
  ]);
  await t.resolves(inspectZip(zip, LIMITS, 'src/app.handler'));
  await t.resolves(inspectZip(zip, LIMITS, 'cjs/main.run'));
  await t.resolves(inspectZip(zip, LIMITS, 'a.b.handler'));
  await rejectsZip(t, inspectZip(zip, LIMITS, 'index.handler'), 'handler', /no file index\.js, index\.mjs, index\.cjs/);
  await rejectsZip(t, inspectZip(zip, LIMITS, 'src.app.handler'), 'handler', /no file src\.app\.js/);
});

t.test('a provided zip needs an executable bootstrap at its root, whatever the handler', async (t) => {
  const bootstrap = (mode: number): Item => ({ file: 'bootstrap', data: '#!/bin/sh\n', mode });
  await t.resolves(inspectZip(await makeZip([bootstrap(0o100755)]), LIMITS, 'function.handler', 'provided'));
  await t.resolves(
    inspectZip(
      await makeZip([
        { file: 'bin/app', data: 'x', mode: 0o100755 },
        { link: 'bootstrap', target: 'bin/app' },
      ]),
      LIMITS,
      'x.y',
      'provided',
    ),
  );
  await rejectsZip(t, inspectZip(await makeZip([bootstrap(0o100644)]), LIMITS, 'function.handler', 'provided'), 'code.zip', /not executable/);
  await rejectsZip(t, inspectZip(await makeZip([{ ...HANDLER }]), LIMITS, 'index.handler', 'provided'), 'code.zip', /no file bootstrap/);
  await rejectsZip(
    t,
    inspectZip(await makeZip([{ file: 'sub/bootstrap', data: 'x', mode: 0o100755 }]), LIMITS, 'a.b', 'provided'),
    'code.zip',
    /no file bootstrap/,
  );
});

t.test('a handler that is malformed or leaves the archive is refused', async (t) => {
  const zip = await makeZip([HANDLER]);
  for (const handler of [
    'index',
    'index.',
    '.handler',
    '../index.handler',
    'lib/../index.handler',
    '/index.handler',
    'lib\\index.handler',
    'lib//index.handler',
  ]) {
    await rejectsZip(t, inspectZip(zip, LIMITS, handler), 'handler', /handler/);
  }
});

t.test('a directory named like the handler file does not count', async (t) => {
  const zip = await makeZip([{ dir: 'index.js' }]);
  await rejectsZip(t, inspectZip(zip, LIMITS, 'index.handler'), 'handler', /no file index\.js/);
});

t.test('bytes that are not a zip are refused', async (t) => {
  await rejectsZip(t, inspectZip(Buffer.from('this is not a zip, just text'), LIMITS, 'index.handler'), 'code.zip', /not a valid zip archive/);
  await rejectsZip(t, inspectZip(Buffer.alloc(0), LIMITS, 'index.handler'), 'code.zip', /not a valid zip archive/);
  const zip = await makeZip([HANDLER]);
  await rejectsZip(t, inspectZip(zip.subarray(0, zip.length - 10), LIMITS, 'index.handler'), 'code.zip', /zip/);
});

t.test('entry names that leave the root are refused, naming the entry', async (t) => {
  const cases: Array<[placeholder: string, hostile: string, message: RegExp]> = [
    ['__/evil.js', '../evil.js', /\.\.\/evil\.js/],
    ['lib/__/__/evil.js', 'lib/../../evil.js', /lib\/\.\.\/\.\.\/evil\.js/],
    ['_abs.js', '/abs.js', /\/abs\.js/],
    ['C_/win.js', 'C:/win.js', /C:\/win\.js/],
    ['back_slash.js', 'back\\slash.js', /back\\\\?slash\.js/],
    ['nul_name.js', 'nul\0name.js', /nul\\u0000name\.js/],
  ];
  for (const [placeholder, hostile, message] of cases) {
    const zip = patchName(await makeZip([HANDLER, { file: placeholder, data: 'evil' }]), placeholder, hostile);
    await rejectsZip(t, inspectZip(zip, LIMITS, 'index.handler'), 'code.zip', message);
    const dir = await tempDir(t);
    await rejectsZip(t, extractZip(zip, join(dir, 'code'), LIMITS), 'code.zip', message);
    t.same(await readdir(dir), [], `nothing left behind for ${JSON.stringify(hostile)}`);
  }
});

t.test('symlinks that point outside the archive are refused', async (t) => {
  const cases: Array<[Item[], RegExp]> = [
    [[{ link: 'passwd', target: '/etc/passwd' }], /"passwd" -> "\/etc\/passwd" points to an absolute path/],
    [[{ link: 'up', target: '../outside' }], /symlink "up" .* points outside/],
    [[{ link: 'lib/up', target: '../..' }], /symlink "lib\/up" .* points outside/],
    [[{ link: 'lib/deep', target: 'x/../../../etc' }], /points outside/],
    // Each target looks harmless alone; followed through `d/b`, `c` climbs above the root.
    [
      [
        { link: 'd/b', target: '..' },
        { link: 'c', target: 'd/b/..' },
      ],
      /symlink "c" .* points outside/,
    ],
    // Same, with the link that makes the escape coming after the one that uses it.
    [
      [
        { link: 'c', target: 'd/b/../x' },
        { link: 'd/b', target: '..' },
      ],
      /symlink "c" .* points outside/,
    ],
    [
      [
        { link: 'loop1', target: 'loop2' },
        { link: 'loop2', target: 'loop1' },
      ],
      /"loop1" -> "loop2" goes through more than 40 symlinks/,
    ],
    [[{ link: 'empty', target: '' }], /empty target/],
  ];
  for (const [items, message] of cases) {
    const zip = await makeZip([HANDLER, ...items]);
    await rejectsZip(t, inspectZip(zip, LIMITS, 'index.handler'), 'code.zip', message);
    const dir = await tempDir(t);
    await rejectsZip(t, extractZip(zip, join(dir, 'code'), LIMITS), 'code.zip', message);
    t.same(await readdir(dir), []);
  }
});

t.test('symlinks that stay inside are allowed and recreated as symlinks', async (t) => {
  const zip = await makeZip([
    HANDLER,
    { file: 'lib/util.js', data: 'util' },
    { link: 'lib/self', target: '.' },
    { link: 'lib/root', target: '..' },
    { link: 'current', target: 'lib/util.js' },
    { link: 'lib/up-and-back', target: '../lib/util.js' },
    { link: 'via-link', target: 'lib/root/index.js' },
  ]);
  await t.resolves(inspectZip(zip, LIMITS, 'index.handler'));
  const dest = join(await tempDir(t), 'code');
  await extractZip(zip, dest, LIMITS);
  t.equal(await readlink(join(dest, 'current')), 'lib/util.js');
  t.ok((await lstat(join(dest, 'current'))).isSymbolicLink());
  t.equal(await readFile(join(dest, 'current'), 'utf8'), 'util');
  t.equal(await readFile(join(dest, 'via-link'), 'utf8'), HANDLER.data);
  t.equal(await readFile(join(dest, 'lib/up-and-back'), 'utf8'), 'util');
});

t.test('nothing is written through a symlink of the archive, in either order', async (t) => {
  const cases: Item[][] = [
    [
      { link: 'a', target: '.' },
      { file: 'a/x.js', data: 'x' },
    ],
    [{ dir: 'b' }, { link: 'a', target: 'b/' }, { file: 'a/x.js', data: 'x' }],
    [
      { file: 'a/x.js', data: 'x' },
      { link: 'a', target: '.' },
    ],
    [{ link: 'a', target: 'b' }, { dir: 'a/sub' }],
  ];
  for (const items of cases) {
    const zip = await makeZip([HANDLER, ...items]);
    await rejectsZip(t, inspectZip(zip, LIMITS, 'index.handler'), 'code.zip', /below "a", which is a symlink/);
    const dir = await tempDir(t);
    await rejectsZip(t, extractZip(zip, join(dir, 'code'), LIMITS), 'code.zip', /below "a", which is a symlink/);
    t.same(await readdir(dir), []);
  }
});

t.test('duplicate paths and entries below a file are refused', async (t) => {
  await rejectsZip(
    t,
    inspectZip(await makeZip([HANDLER, { file: 'index.js', data: 'again' }]), LIMITS, 'index.handler'),
    'code.zip',
    /"index.js" appears more than once/,
  );
  await rejectsZip(
    t,
    inspectZip(await makeZip([HANDLER, { file: 'x', data: '' }, { link: 'x', target: 'index.js' }]), LIMITS, 'index.handler'),
    'code.zip',
    /"x" appears more than once/,
  );
  await rejectsZip(
    t,
    inspectZip(await makeZip([HANDLER, { file: 'f', data: '' }, { file: 'f/g.js', data: '' }]), LIMITS, 'index.handler'),
    'code.zip',
    /below "f", which is a file/,
  );
  // `./x` and `x` are the same path.
  const dotted = patchName(await makeZip([HANDLER, { file: 'x.js', data: '' }, { file: '__x.js', data: '' }]), '__x.js', './x.js');
  await rejectsZip(t, inspectZip(dotted, LIMITS, 'index.handler'), 'code.zip', /"x.js" appears more than once/);
  // A directory listed twice is harmless.
  await t.resolves(inspectZip(await makeZip([HANDLER, { dir: 'lib' }, { dir: 'lib' }]), LIMITS, 'index.handler'));
});

t.test('special files (fifos, devices) are refused', async (t) => {
  const zip = await makeZip([HANDLER, { file: 'fifo', data: '', mode: 0o010644 }]);
  await rejectsZip(t, inspectZip(zip, LIMITS, 'index.handler'), 'code.zip', /"fifo" is a special file/);
});

t.test('zip bombs: too many entries, too many declared bytes, too many real bytes', async (t) => {
  const many = await makeZip([HANDLER, ...Array.from({ length: 20 }, (_, i): Item => ({ file: `f${i}.js`, data: '' }))]);
  await rejectsZip(t, inspectZip(many, { ...LIMITS, maxEntries: 20 }, 'index.handler'), 'code.zip', /21 entries, more than the limit of 20/);
  await rejectsZip(t, extractZip(many, join(await tempDir(t), 'code'), { ...LIMITS, maxEntries: 20 }), 'code.zip', /21 entries/);

  // 2 MiB of zeros compresses to about 2 KiB.
  const zeros = Buffer.alloc(2 * 1024 * 1024);
  const bomb = await makeZip([HANDLER, { file: 'zeros.bin', data: zeros }]);
  t.ok(bomb.length < 10 * 1024, 'the bomb is small');
  await rejectsZip(t, inspectZip(bomb, LIMITS, 'index.handler'), 'code.zip', /more than the limit of 1048576 bytes \(at entry "zeros.bin"\)/);

  // Many entries each under the limit, together over it.
  const spread = await makeZip([HANDLER, ...Array.from({ length: 5 }, (_, i): Item => ({ file: `z${i}.bin`, data: Buffer.alloc(300 * 1024) }))]);
  await rejectsZip(t, inspectZip(spread, LIMITS, 'index.handler'), 'code.zip', /more than the limit/);

  // A zip that declares 100 bytes but inflates to 2 MiB gets past the declared-size check and
  // is stopped while its bytes are counted.
  const liar = patchDeclaredSize(bomb, 'zeros.bin', 100);
  await t.resolves(inspectZip(liar, LIMITS, 'index.handler'), 'inspection trusts declared sizes');
  const dir = await tempDir(t);
  await rejectsZip(t, extractZip(liar, join(dir, 'code'), LIMITS), 'code.zip', /zeros\.bin/);
  t.same(await readdir(dir), [], 'the partial tree was removed');
});

t.test('a lying symlink entry is bounded while it is read', async (t) => {
  const zip = patchDeclaredSize(await makeZip([HANDLER, { link: 'l', target: 'x'.repeat(10000) }]), 'l', 5);
  await rejectsZip(t, inspectZip(zip, LIMITS, 'index.handler'), 'code.zip', /"l"/);
});

t.test('extractZip writes the tree with readable modes, whatever the umask', async (t) => {
  const previous = process.umask(0o077);
  t.teardown(() => {
    process.umask(previous);
  });
  const zip = await makeZip([
    HANDLER,
    { dir: 'empty', mode: 0o40700 },
    { file: 'bin/run', data: '#!/bin/sh\n', mode: 0o100700 },
    { file: 'deep/er/data.json', data: '{"a":1}', mode: 0o100600, compress: false },
    { file: 'no-mode.txt', data: 'windows', mode: 0o644 },
  ]);
  const dest = join(await tempDir(t), 'fn', 'v1', 'code');
  await extractZip(zip, dest, LIMITS);
  const mode = async (p: string): Promise<number> => (await stat(join(dest, p))).mode & 0o777;
  t.equal(await mode('.'), 0o755);
  t.equal(await mode('index.js'), 0o644);
  t.equal(await mode('empty'), 0o755);
  t.equal(await mode('bin'), 0o755);
  t.equal(await mode('bin/run'), 0o755);
  t.equal(await mode('deep/er'), 0o755);
  t.equal(await mode('deep/er/data.json'), 0o644);
  t.equal(await mode('no-mode.txt'), 0o644);
  t.equal(await readFile(join(dest, 'index.js'), 'utf8'), HANDLER.data);
  t.equal(await readFile(join(dest, 'deep/er/data.json'), 'utf8'), '{"a":1}');
  t.same((await readdir(join(dest, '..'))).sort(), ['code'], 'no temporary directory left');
});

t.test('extractZip refuses an existing destination without touching it', async (t) => {
  const dir = await tempDir(t);
  const dest = join(dir, 'code');
  await mkdir(dest);
  const err = await extractZip(await makeZip([HANDLER]), dest, LIMITS).catch((e: unknown) => e);
  t.ok(err instanceof Error && !(err instanceof ZipError), "a server-side error, not the user's");
  t.same(await readdir(dir), ['code']);
  t.same(await readdir(dest), []);
});

t.test('corrupt entry data is found on extraction, and the partial tree is removed', async (t) => {
  const zip = corruptData(await makeZip([HANDLER, { file: 'big.txt', data: 'hello '.repeat(1000) }]), 'big.txt');
  const dir = await tempDir(t);
  await rejectsZip(t, extractZip(zip, join(dir, 'code'), LIMITS), 'code.zip', /entry "big.txt" is corrupt/);
  t.same(await readdir(dir), []);
});
