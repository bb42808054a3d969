/**
 * The layer unpacker (infra/images/oci/layer-unpacker.ts) with its commands faked, as any user:
 * whiteouts are asked of the commands it is given, and their failures are `unpack` HostErrors,
 * never taken for a corrupt layer. The entries are owned by the user running the test, so no
 * chown needs root; test/unit/layer-store.test.ts unpacks for real, whiteouts and owners too.
 */
import t from 'tap';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { tarOf, type TarEntry } from '../support/tar.js';
import { isSkiffError } from '../../infra/errors.js';
import { isHostError, type CommandEnd } from '../../infra/host-error.js';
import { unpackLayer, type UnpackCommands, type UnpackOptions } from '../../infra/images/oci/layer-unpacker.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

/** Answers every command with `answer` (or rejects with it), and remembers what was run. */
class FakeCommands implements UnpackCommands {
  readonly commands: string[] = [];
  constructor(private readonly answer: Partial<CommandEnd> | Error = {}) {}

  async run(command: string, args: string[]): Promise<CommandEnd> {
    this.commands.push([command, ...args].join(' '));
    if (this.answer instanceof Error) throw this.answer;
    return { code: 0, signal: null, stderr: '', ...this.answer };
  }
}

const uid = process.getuid?.() ?? 0;
const gid = process.getgid?.() ?? 0;
/** Owned by whoever runs the test: kept as they are, and chowned to without root. */
const mine = { uid, gid };
const skip = uid >= 65536 || gid >= 65536 ? 'the test user has an id outside the kept range' : false;

async function scratch(t: TapTest): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'layer-unpacker-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function unpack(dir: string, entries: TarEntry[], commands: UnpackCommands): Promise<{ target: string; result: Promise<number> }> {
  const file = join(dir, 'layer.tar.gz');
  await writeFile(file, gzipSync(await tarOf(entries.map((entry) => ({ ...mine, ...entry })))));
  const target = join(dir, 'tree');
  const options: UnpackOptions = { maxBytes: 1024 * 1024, maxEntries: 100, idRange: 65536, commands };
  return { target, result: unpackLayer(file, target, options) };
}

const WHITEOUTS: TarEntry[] = [
  { name: 'a/', type: 'directory', mode: 0o755 },
  { name: 'a/.wh.x', type: 'file' },
  { name: 'd/.wh..wh..opq', type: 'file' },
  { name: 'd/new', type: 'file', data: 'new' },
];

t.test('whiteouts are made by the commands given: mknod for a hidden file, setfattr for an opaque directory', { skip }, async (t) => {
  const dir = await scratch(t);
  const commands = new FakeCommands();
  const { target, result } = await unpack(dir, WHITEOUTS, commands);
  t.equal(await result, 3, 'whiteouts have no size');
  t.same(commands.commands, [`mknod ${join(target, 'a', 'x')} c 0 0`, `setfattr -h -n trusted.overlay.opaque -v y ${join(target, 'd')}`]);
  t.equal(await readFile(join(target, 'd', 'new'), 'utf8'), 'new');
});

t.test('a whiteout command that fails is an `unpack` HostError with its command and stderr, not a corrupt layer', { skip }, async (t) => {
  const dir = await scratch(t);
  const { result } = await unpack(dir, WHITEOUTS, new FakeCommands({ code: 1, stderr: 'mknod: Operation not permitted\n' }));
  const error = await result.catch((e: unknown) => e);
  t.ok(isHostError(error, 'unpack'), `an unpack HostError (got ${String(error)})`);
  t.notOk(isSkiffError(error), 'not ImageCorrupt: the layer is fine, the host failed');
  t.match(error, {
    command: /^mknod .*\/a\/x c 0 0$/,
    exitCode: 1,
    stderr: 'mknod: Operation not permitted',
    message: /failed \(code 1\): mknod: Operation not permitted/,
  });
});

t.test('commands that cannot run make an `unpack` HostError whose cause says why', { skip }, async (t) => {
  const dir = await scratch(t);
  const cause = new Error('the command launcher is stopped');
  const { result } = await unpack(dir, WHITEOUTS, new FakeCommands(cause));
  const error = await result.catch((e: unknown) => e);
  t.ok(isHostError(error, 'unpack'));
  t.equal(isHostError(error) ? error.cause : undefined, cause);
  t.equal(isHostError(error) ? error.exitCode : null, undefined, 'it never ran');
});

t.test('an unsafe entry is refused before any command runs', { skip }, async (t) => {
  const dir = await scratch(t);
  const commands = new FakeCommands();
  const { result } = await unpack(
    dir,
    [
      { name: 'lib', type: 'symlink', linkname: '/etc' },
      { name: 'lib/.wh.passwd', type: 'file' },
    ],
    commands,
  );
  const error = await result.catch((e: unknown) => e);
  t.ok(isSkiffError(error) && error.code === 'ImageCorrupt', `ImageCorrupt (got ${String(error)})`);
  t.same(commands.commands, [], 'no mknod through the symlink');
});
