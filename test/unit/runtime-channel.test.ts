/**
 * The worker's end of the runtime protocol, with a fake runtime on a real unix socket (no root, no
 * container): how each way a channel can fail reaches its waiters, tested by kind.
 */
import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isSkiffError } from '../../infra/errors.js';
import { isHostError } from '../../infra/host-error.js';
import type { FunctionSpec } from '../../runtime/protocol/messages.js';
import { RuntimeChannel } from '../../worker/sandbox/runtime-channel.js';

const FN: FunctionSpec = { name: 'f', version: 1, handler: 'index.handler', memoryMb: 128, timeoutMs: 1000, env: {} };

/** A listening channel and a fake runtime connected to it that has said hello. */
async function connected(t: Test, maxFrameBytes = 1024): Promise<{ channel: RuntimeChannel; runtime: Socket }> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-channel-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const channel = new RuntimeChannel({ limits: { maxResultBytes: 512, maxLogLineBytes: 128 }, maxFrameBytes, maxStreamBytes: 2048 });
  t.teardown(() => channel.close());
  const path = join(dir, 'worker.sock');
  await channel.listen(path);
  const hello = channel.hello(5000);
  const runtime = connect(path);
  t.teardown(() => runtime.destroy());
  await new Promise((resolve) => runtime.once('connect', resolve));
  runtime.write(`${JSON.stringify({ type: 'hello', protocol: 1, runtime: 'fake', pid: 1 })}\n`);
  await hello;
  return { channel, runtime };
}

/** The next frame the worker sends to the fake runtime. */
function nextFrame(runtime: Socket): Promise<{ type: string; id?: string }> {
  return new Promise((resolve) =>
    runtime.once('data', (chunk: Buffer) => resolve(JSON.parse(chunk.toString('utf8').split('\n')[0] ?? '') as { type: string })),
  );
}

t.test('a handler the runtime could not load fails init with FunctionError, its type and stack the handler’s', async (t) => {
  const { channel, runtime } = await connected(t);
  const sent = nextFrame(runtime);
  const init = channel.init(FN);
  t.equal((await sent).type, 'init');
  runtime.write(
    `${JSON.stringify({ type: 'initFailed', error: { type: 'Runtime.ImportModuleError', message: "Cannot find module 'x'", stack: ['at y'] } })}\n`,
  );
  const error = await init.catch((e: unknown) => e);
  t.ok(isSkiffError(error, 'FunctionError'));
  t.match(error, { errorType: 'Runtime.ImportModuleError', handlerStack: ['at y'], message: "handler could not be loaded: Cannot find module 'x'" });
});

t.test('a runtime that exits mid-call fails the call with channel-closed', async (t) => {
  const { channel, runtime } = await connected(t);
  const call = channel.invoke({ id: 'c1', event: {}, deadlineMs: Date.now() + 1000 });
  runtime.destroy();
  t.ok(isHostError(await call.catch((e: unknown) => e), 'channel-closed'));
  t.ok(
    isHostError(
      await Promise.resolve()
        .then(() => channel.invoke({ id: 'c2', event: {}, deadlineMs: 0 }))
        .catch((e: unknown) => e),
      'channel-closed',
    ),
    'and every call after it',
  );
});

t.test('a frame over the cap fails the calls waiting with FunctionResponseTooLarge and closes the channel', async (t) => {
  const { channel, runtime } = await connected(t, 64);
  let closed = false;
  channel.onClose(() => (closed = true));
  const call = channel.invoke({ id: 'c1', event: {}, deadlineMs: Date.now() + 1000 });
  runtime.write(`${JSON.stringify({ type: 'result', id: 'c1', ok: true, value: 'x'.repeat(100), durationMs: 1 })}\n`);
  const error = await call.catch((e: unknown) => e);
  t.ok(isSkiffError(error, 'FunctionResponseTooLarge'));
  t.match(error, { message: /frame over 64 bytes/ });
  t.ok(closed, 'the channel is closed');
});

t.test('a streamed invocation relays its chunks in order before its result; another one drops them', async (t) => {
  const { channel, runtime } = await connected(t);
  const chunks: Array<[string, string | undefined]> = [];
  const sent = nextFrame(runtime);
  const call = channel.invoke({ id: 'c1', event: {}, deadlineMs: Date.now() + 1000 }, (data, contentType) => chunks.push([data.toString(), contentType]));
  t.match(await sent, { type: 'invoke', id: 'c1', stream: true }, 'the runtime is asked to stream');
  const plain = channel.invoke({ id: 'c2', event: {}, deadlineMs: Date.now() + 1000 });
  const frame = (m: object): string => `${JSON.stringify(m)}\n`;
  runtime.write(frame({ type: 'chunk', id: 'c1', data: '', contentType: 'text/event-stream' }));
  runtime.write(frame({ type: 'chunk', id: 'c1', data: Buffer.from('one').toString('base64') }));
  runtime.write(frame({ type: 'chunk', id: 'c2', data: Buffer.from('stray').toString('base64') }));
  runtime.write(frame({ type: 'chunk', id: 'c1', data: Buffer.from('two').toString('base64') }));
  runtime.write(frame({ type: 'result', id: 'c1', ok: true, value: null, durationMs: 1 }));
  runtime.write(frame({ type: 'result', id: 'c2', ok: true, value: 2, durationMs: 1 }));
  t.match(await call, { ok: true, value: null });
  t.same(chunks, [
    ['', 'text/event-stream'],
    ['one', undefined],
    ['two', undefined],
  ]);
  t.match(await plain, { ok: true, value: 2 });
});

t.test('a stream past its limit fails the calls waiting with FunctionResponseTooLarge and closes the channel', async (t) => {
  const { channel, runtime } = await connected(t);
  let closed = false;
  channel.onClose(() => (closed = true));
  let relayed = 0;
  const call = channel.invoke({ id: 'c1', event: {}, deadlineMs: Date.now() + 1000 }, (data) => (relayed += data.length));
  const piece = Buffer.alloc(600, 'x').toString('base64');
  for (let i = 0; i < 4; i++) runtime.write(`${JSON.stringify({ type: 'chunk', id: 'c1', data: piece })}\n`);
  const error = await call.catch((e: unknown) => e);
  t.ok(isSkiffError(error, 'FunctionResponseTooLarge'));
  t.match(error, { message: /streamed more than the limit of 2048 bytes/ });
  t.equal(relayed, 1800, 'what came before the limit was relayed, nothing past it');
  t.ok(closed, 'the channel is closed');
});

t.test('a frame that is not JSON closes the channel: channel-closed, with the frame error as its cause', async (t) => {
  const { channel, runtime } = await connected(t);
  const call = channel.invoke({ id: 'c1', event: {}, deadlineMs: Date.now() + 1000 });
  runtime.write('this is not json\n');
  const error = await call.catch((e: unknown) => e);
  t.ok(isHostError(error, 'channel-closed'));
  t.match(error, { cause: { name: 'FrameError', kind: 'malformed' } });
});

t.test('a runtime that never connects: channel-closed once the boot time is up', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-channel-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const channel = new RuntimeChannel({ limits: { maxResultBytes: 512, maxLogLineBytes: 128 }, maxFrameBytes: 1024, maxStreamBytes: 2048 });
  t.teardown(() => channel.close());
  await channel.listen(join(dir, 'worker.sock'));
  const error = await channel.hello(10).catch((e: unknown) => e);
  t.ok(isHostError(error, 'channel-closed'));
  t.match(error, { message: /did not connect within 10 ms/ });
});

t.test('a socket path the kernel would cut makes the host unsuitable', async (t) => {
  const channel = new RuntimeChannel({ limits: { maxResultBytes: 512, maxLogLineBytes: 128 }, maxFrameBytes: 1024, maxStreamBytes: 2048 });
  const error = await channel.listen(`/tmp/${'x'.repeat(120)}/worker.sock`).catch((e: unknown) => e);
  t.ok(isHostError(error, 'unsuitable'));
});
