import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { isHostError } from '../../infra/host-error.js';
import { Launcher } from '../../worker/process/launcher.js';

/** Everything a stream carries until it closes. */
function readAll(stream: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
    stream.on('error', reject);
    stream.on('close', () => resolve(text));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function started(t: Test, options: ConstructorParameters<typeof Launcher>[0] = {}): Launcher {
  const launcher = new Launcher(options);
  t.teardown(() => launcher.stop());
  return launcher;
}

t.test('a command runs and reports its code, stdout and stderr', async (t) => {
  const launcher = started(t);
  t.same(await launcher.run('sh', ['-c', 'echo out; echo err >&2']), { code: 0, signal: null, stdout: 'out\n', stderr: 'err\n', truncated: false });
  const piped = await launcher.run('tr', ['a-z', 'A-Z'], { stdin: 'hello' });
  t.equal(piped.stdout, 'HELLO', 'stdin is written and closed');
  const env = await launcher.run('/bin/sh', ['-c', 'echo "$ONLY:$HOME"'], { env: { ONLY: 'this' } });
  t.equal(env.stdout, 'this:\n', 'env is the whole environment');
});

t.test('a failing command reports how it ended; one that cannot start rejects', async (t) => {
  const launcher = started(t);
  const failed = await launcher.run('sh', ['-c', 'echo why >&2; exit 3']);
  t.equal(failed.code, 3);
  t.equal(failed.stderr, 'why\n');
  const killed = await launcher.run('sh', ['-c', 'kill -TERM $$']);
  t.same([killed.code, killed.signal], [null, 'SIGTERM']);
  const notStarted = await launcher.run('/nonexistent/command', []).catch((e: unknown) => e);
  t.ok(isHostError(notStarted, 'launcher'), 'a `launcher` HostError');
  t.match(notStarted, { reason: 'CommandNotStarted', message: /nonexistent.*ENOENT/ });
  t.match(await launcher.runKeepingPipes('/nonexistent/command', []).catch((e: unknown) => e), { kind: 'launcher', reason: 'CommandNotStarted' });
  t.equal((await launcher.run('true', [])).code, 0, 'the launcher goes on');
});

t.test('commands run concurrently, each answered with its own output', async (t) => {
  const launcher = started(t);
  const dir = await mkdtemp(join(tmpdir(), 'skiff-launcher-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // A barrier instead of a stopwatch: each command marks that it started, then waits until all 20
  // have, so it prints its number alone only if all 20 ran at once. About 10 s of polling bound a
  // hang; the first to give up makes the others give up at once.
  const COUNT = 20;
  const barrier = `touch "$1/started-$2"; tries=0
    until set -- "$1" "$2" "$1"/started-*; [ $(($# - 2)) -ge ${COUNT} ]; do
      if [ -e "$1/gave-up" ] || [ $tries -ge 1000 ]; then touch "$1/gave-up"; echo "$2 gave up"; exit 0; fi
      tries=$((tries + 1)); sleep 0.01
    done
    echo "$2"`;
  const results = await Promise.all(Array.from({ length: COUNT }, (_, i) => launcher.run('sh', ['-c', barrier, 'sh', dir, String(i)])));
  t.same(
    results.map((r) => r.stdout),
    results.map((_, i) => `${i}\n`),
    'all 20 were running at the same time, and each answered with its own output',
  );
});

t.test('large output is bounded, and the command is not blocked by it', async (t) => {
  const launcher = started(t, { maxOutputBytes: 64 * 1024 });
  const big = await launcher.run('head', ['-c', '5000000', '/dev/zero']);
  t.equal(big.code, 0);
  t.equal(big.stdout.length, 64 * 1024);
  t.ok(big.truncated);
  const small = await launcher.run('head', ['-c', '5000000', '/dev/zero'], { maxOutputBytes: 10 });
  t.equal(small.stdout.length, 10);
  t.notOk((await launcher.run('echo', ['x'])).truncated);
});

t.test('pipes that outlive their command are handed over whole', async (t) => {
  const launcher = started(t);
  const result = await launcher.runKeepingPipes('sh', ['-c', 'echo runc-says >&2; echo early; (sleep 0.2; echo late; echo late-err >&2) &']);
  t.equal(result.code, 0);
  if (!result.pipes) throw new Error('no pipes');
  const [stdout, stderr] = await Promise.all([readAll(result.pipes.stdout), readAll(result.pipes.stderr)]);
  t.equal(stdout, 'early\nlate\n', 'both lines, the one written before the hand-over too');
  t.equal(stderr, 'runc-says\nlate-err\n', 'every byte, those the launcher read before the exit too');
  // What was read until the exit was seen, which may be before or after any of those lines came.
  t.ok(stderr.startsWith(result.stderr), "the command's stderr is the head of the stream");
});

t.test('many commands keeping their pipes at once each get their own', async (t) => {
  const launcher = started(t);
  const results = await Promise.all(
    Array.from({ length: 8 }, (_, i) => launcher.runKeepingPipes('sh', ['-c', `echo a${i}; (sleep 0.1; echo b${i}; echo c${i} >&2) &`])),
  );
  const texts = await Promise.all(results.map((r) => Promise.all([readAll(r.pipes!.stdout), readAll(r.pipes!.stderr)])));
  t.same(
    texts,
    texts.map((_, i) => [`a${i}\nb${i}\n`, `c${i}\n`]),
  );
});

t.test('output racing the exit of commands keeping their pipes is never lost nor mixed up', async (t) => {
  // No sleeps: what is left behind writes (and may be gone) before the launcher sees the exit, with
  // 32 exits to get to, and then its bytes have been read there: they must still come, in order.
  const launcher = started(t);
  const COUNT = 32;
  const results = await Promise.all(
    Array.from({ length: COUNT }, (_, i) => launcher.runKeepingPipes('sh', ['-c', `echo own${i} >&2; echo a${i}; (echo b${i}; echo c${i} >&2) &`])),
  );
  const texts = await Promise.all(results.map((r) => Promise.all([readAll(r.pipes!.stdout), readAll(r.pipes!.stderr)])));
  t.same(
    texts,
    texts.map((_, i) => [`a${i}\nb${i}\n`, `own${i}\nc${i}\n`]),
  );
  t.same(
    results.filter((r, i) => !texts[i]![1].startsWith(r.stderr)).map((r) => r.stderr),
    [],
    "each command's stderr is the head of its own stream",
  );
});

t.test('a command keeping its pipes that fails gives its error and no pipes', async (t) => {
  const launcher = started(t);
  const result = await launcher.runKeepingPipes('sh', ['-c', 'echo container not created >&2; exit 1']);
  t.equal(result.code, 1);
  t.equal(result.stderr, 'container not created\n');
  t.equal(result.pipes, undefined);
});

t.test('a launcher that dies rejects what it was running; the next command starts a new one', async (t) => {
  const launcher = started(t);
  const first = await launcher.pid();
  if (first === undefined) throw new Error('no pid');
  const running = launcher.run('sleep', ['10']);
  const alsoRunning = launcher.runKeepingPipes('sleep', ['10']);
  await new Promise((resolve) => setTimeout(resolve, 100));
  process.kill(first, 'SIGKILL');
  const died = await running.catch((e: unknown) => e);
  t.ok(isHostError(died, 'launcher'), 'a `launcher` HostError');
  t.match(died, { reason: 'LauncherDied', message: /exited \(signal SIGKILL\) while running `sleep 10`/ });
  t.match(await alsoRunning.catch((e: unknown) => e), { kind: 'launcher', reason: 'LauncherDied' });
  t.same(await launcher.run('echo', ['again']), { code: 0, signal: null, stdout: 'again\n', stderr: '', truncated: false });
  const second = await launcher.pid();
  t.not(second, first, 'a new launcher');
});

t.test('stop ends the launcher; later commands reject', async (t) => {
  const launcher = new Launcher();
  await launcher.start();
  const pid = await launcher.pid();
  await launcher.stop();
  t.notOk(alive(pid!), 'the launcher has exited');
  const stopped = await launcher.run('true', []).catch((e: unknown) => e);
  t.ok(isHostError(stopped, 'launcher'), 'a `launcher` HostError');
  t.same(isHostError(stopped) ? [stopped.reason, stopped.message] : undefined, ['LauncherStopped', 'the command launcher is stopped']);
  await launcher.stop(); // twice is fine
});

t.test('stop lets the commands under way finish', async (t) => {
  const launcher = new Launcher();
  const running = launcher.run('sh', ['-c', 'sleep 0.3; echo finished']);
  await new Promise((resolve) => setTimeout(resolve, 100));
  await launcher.stop();
  t.equal((await running).stdout, 'finished\n');
});

t.test('the launcher ignores SIGTERM and SIGINT, so a stopping worker can still use it', async (t) => {
  const launcher = started(t);
  const pid = (await launcher.pid())!;
  process.kill(pid, 'SIGTERM');
  process.kill(pid, 'SIGINT');
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.equal((await launcher.run('echo', ['still here'])).stdout, 'still here\n');
});
