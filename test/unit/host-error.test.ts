/**
 * The internal error family (infra/host-error.ts) and the modules that raise it, without root: the
 * OCI runtime and the mounts are driven through a fake command runner (the launcher's own errors:
 * launcher.test.ts; the layer unpacker's: layer-unpacker.test.ts). Every check is by kind.
 */
import t from 'tap';
import { chmod, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSkiffError } from '../../infra/errors.js';
import { HOST_ERROR_KINDS, HostError, commandFailed, commandNotRun, isErrnoError, isHostError } from '../../infra/host-error.js';
import type { CommandResult, CommandRunner, PipedResult } from '../../worker/process/command-runner.js';
import { assertReachableByContainers } from '../../worker/sandbox/host-checks.js';
import { mountOverlay } from '../../worker/sandbox/mounts.js';
import { OciRuntime } from '../../worker/sandbox/runc.js';

/** Answers every command with `answer` (or rejects with it), and remembers what was run. */
class FakeRunner implements CommandRunner {
  readonly commands: string[] = [];
  constructor(private readonly answer: Partial<CommandResult> | Error) {}

  async run(command: string, args: string[]): Promise<CommandResult> {
    this.commands.push([command, ...args].join(' '));
    if (this.answer instanceof Error) throw this.answer;
    return { code: 0, signal: null, stdout: '', stderr: '', truncated: false, ...this.answer };
  }

  async runKeepingPipes(command: string, args: string[]): Promise<PipedResult> {
    return { ...(await this.run(command, args)), pipes: undefined };
  }
}

t.test('a HostError has a kind, a name, a message and a cause; what a failed command left', async (t) => {
  const cause = new Error('ENOENT');
  const error = new HostError('mount', 'mount failed', { cause, command: 'mount -t overlay', end: { code: 32, signal: null, stderr: ' denied \n' } });
  t.ok(error instanceof Error);
  t.equal(error.name, 'HostError');
  t.equal(error.kind, 'mount');
  t.equal(error.message, 'mount failed');
  t.equal(error.cause, cause);
  t.equal(error.command, 'mount -t overlay');
  t.equal(error.exitCode, 32);
  t.equal(error.signal, null);
  t.equal(error.stderr, 'denied', 'stderr trimmed');
  const bare = new HostError('unsuitable', 'no');
  t.notOk('cause' in bare, 'no cause property without a cause');
  t.equal(bare.exitCode, undefined, 'no command, no exit');
});

t.test('a kind that tells failures apart says which in `reason`; others have none', async (t) => {
  const died = new HostError('launcher', 'the command launcher exited', { reason: 'LauncherDied' });
  t.ok(isHostError(died, 'launcher'));
  t.equal(died.reason, 'LauncherDied');
  t.equal(new HostError('mount', 'x').reason, undefined);
});

t.test('isHostError tests the brand and the kind, never the message or the shape', async (t) => {
  for (const kind of HOST_ERROR_KINDS) {
    const error = new HostError(kind, 'm');
    t.ok(isHostError(error), `${kind} is a HostError`);
    t.ok(isHostError(error, kind), `of kind ${kind}`);
    for (const other of HOST_ERROR_KINDS.filter((k) => k !== kind)) t.notOk(isHostError(error, other), `not of kind ${other}`);
  }
  t.notOk(isHostError(new Error('channel-closed'), 'channel-closed'), 'a message says nothing');
  t.notOk(isHostError(Object.assign(new Error('x'), { kind: 'mount', name: 'HostError' })), 'a look-alike');
  t.notOk(isHostError({ ...new HostError('mount', 'x') }), 'a spread copy');
  t.ok(isHostError(Object.assign(new Error('x'), { [Symbol.for('skiff.host-error')]: true, kind: 'mount' }), 'mount'), 'another copy of the module');
  t.notOk(isSkiffError(new HostError('mount', 'x')), 'a HostError is not what a user is told');
  t.notOk(isHostError(null));
  t.notOk(isHostError('HostError'));
});

t.test('commandFailed and commandNotRun say what ran and how it ended', async (t) => {
  const failed = commandFailed('network', 'iptables -w -t nat -S', { code: 1, signal: null, stderr: 'No chain\n' });
  t.equal(failed.message, 'iptables -w -t nat -S failed (code 1): No chain');
  t.equal(failed.exitCode, 1);
  const killed = commandFailed('oci-runtime', 'runc kill s1', { code: null, signal: 'SIGKILL', stderr: '' });
  t.equal(killed.message, 'runc kill s1 failed (signal SIGKILL)');
  const cause = new Error('the command launcher is stopped');
  const notRun = commandNotRun('mount', 'mount --bind a b', cause);
  t.equal(notRun.kind, 'mount');
  t.equal(notRun.cause, cause);
  t.equal(notRun.exitCode, undefined, 'it never ran');
  t.match(notRun.message, /mount --bind a b could not run: the command launcher is stopped/);
});

t.test("isErrnoError: Node's failed system calls, nothing else", async (t) => {
  const enoent = await stat('/nonexistent/skiff').catch((error: unknown) => error);
  t.ok(isErrnoError(enoent));
  t.equal(isErrnoError(enoent) ? enoent.code : undefined, 'ENOENT');
  t.notOk(isErrnoError(Object.assign(new Error('x'), { code: 'ENOENT' })), 'a code alone is not a system call');
  t.notOk(isErrnoError(new HostError('mount', 'x')));
  t.notOk(isErrnoError(new TypeError('x')));
});

t.test("the OCI runtime: a failure is `oci-runtime` with runc's stderr; a missing container is `not-found`", async (t) => {
  const failing = new OciRuntime({ binary: 'runc', root: '/run/x', launcher: new FakeRunner({ code: 1, stderr: 'no space left on device' }) });
  const error = await failing.kill('s1').catch((e: unknown) => e);
  t.ok(isHostError(error, 'oci-runtime'));
  t.match(error, { command: 'runc kill s1 KILL', exitCode: 1, stderr: 'no space left on device' });
  const runError = await failing.run('s1', '/b').catch((e: unknown) => e);
  t.ok(isHostError(runError, 'oci-runtime'), 'run fails the same way');

  const missing = new OciRuntime({ binary: 'runc', root: '/run/x', launcher: new FakeRunner({ code: 1, stderr: 'container does not exist' }) });
  t.ok(isHostError(await missing.delete('s1').catch((e: unknown) => e), 'not-found'), 'runc has no such container');

  const cause = new Error('the command launcher exited');
  const down = new OciRuntime({ binary: 'runc', root: '/run/x', launcher: new FakeRunner(cause) });
  const notRun = await down.list().catch((e: unknown) => e);
  t.ok(isHostError(notRun, 'oci-runtime'), 'a launcher that fails');
  t.equal(isHostError(notRun) ? notRun.cause : undefined, cause, 'is the cause');

  const truncated = new OciRuntime({ binary: 'runc', root: '/run/x', launcher: new FakeRunner({ stdout: '[', truncated: true }) });
  t.ok(isHostError(await truncated.list().catch((e: unknown) => e), 'oci-runtime'), 'output too large');
});

t.test('a mount that fails is `mount`, with its command and stderr', async (t) => {
  const launcher = new FakeRunner({ code: 32, stderr: 'mount: permission denied' });
  const error = await mountOverlay(launcher, '/l', '/u', '/w', '/t').catch((e: unknown) => e);
  t.ok(isHostError(error, 'mount'));
  t.match(error, { exitCode: 32, stderr: 'mount: permission denied', command: /^mount -t overlay/ });
});

t.test('a directory containers cannot reach makes the host `unsuitable`', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-host-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'closed', 'sandboxes'), { recursive: true });
  await chmod(join(dir, 'closed'), 0o700);
  const error = (() => {
    try {
      assertReachableByContainers(join(dir, 'closed', 'sandboxes'));
      return undefined;
    } catch (e) {
      return e;
    }
  })();
  // mkdtemp's directory is 0700 itself: the first directory on the way that others cannot search.
  t.ok(isHostError(error, 'unsuitable'));
  t.match(error, { message: /is not searchable by other users/ });
});
