import t from 'tap';
import { PassThrough } from 'node:stream';
import type { Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { isFrameError, readFrames } from '../../runtime/protocol/framing.js';

// A collection on demand, so what is measured is what is held, not garbage not yet collected.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
function retainedBytes(): number {
  // Twice: a buffer's memory is given back by a callback of the first collection.
  gc();
  gc();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}

t.test('frames split across chunks are reassembled; malformed ones are reported', async (t) => {
  const stream = new PassThrough() as unknown as Socket;
  const frames: unknown[] = [];
  const errors: Error[] = [];
  readFrames(
    stream,
    (m) => frames.push(m),
    (e) => errors.push(e),
  );
  stream.write('{"a":1}\n{"b"');
  stream.write(':"x\\ny"}\nnot json\n');
  await new Promise((r) => setImmediate(r));
  t.same(frames, [{ a: 1 }, { b: 'x\ny' }]);
  t.equal(errors.length, 1);
  t.ok(isFrameError(errors[0], 'malformed'), 'a malformed frame, by kind');
  t.notOk(isFrameError(errors[0], 'too-large'));
  t.ok(errors[0]?.cause instanceof SyntaxError, 'the parse error is its cause');
});

t.test('a frame over the cap is reported once, never buffered, and the frames around it still parse', async (t) => {
  const stream = new PassThrough() as unknown as Socket;
  const frames: unknown[] = [];
  const errors: Error[] = [];
  const cap = 1024;
  readFrames(
    stream,
    (m) => frames.push(m),
    (e) => errors.push(e),
    { maxFrameBytes: cap },
  );
  stream.write('{"before":1}\n');
  stream.write(`{"fits":"${'f'.repeat(cap - 12)}"}\n`);
  // 64 MiB of one line, in 64 KiB writes: were it buffered, memory would hold about that.
  const before = retainedBytes();
  stream.write('{"huge":"');
  for (let i = 0; i < 1024; i++) {
    stream.write(Buffer.alloc(64 * 1024, 'x')); // a new buffer each time, as a socket reads them
    await new Promise((r) => setImmediate(r)); // delivered, not queued in the stream
  }
  const heapGrowth = retainedBytes() - before;
  stream.write('"}\n{"after":2}\n');
  await new Promise((r) => setImmediate(r));
  t.same(frames, [{ before: 1 }, { fits: 'f'.repeat(cap - 12) }, { after: 2 }], 'frames before and after the long one parse');
  t.equal(errors.length, 1, 'one error for the long frame');
  const error = errors[0];
  t.ok(isFrameError(error, 'too-large'), 'a frame too large, by kind');
  t.equal(isFrameError(error) ? error.limitBytes : undefined, cap, 'with the cap it passed');
  t.ok(heapGrowth < 32 * 1024 * 1024, `the long frame was not held (memory grew ${heapGrowth} bytes while 64 MiB went by)`);
});

t.test('the cap counts bytes, across chunks, and multi-byte characters split across chunks decode whole', async (t) => {
  const stream = new PassThrough() as unknown as Socket;
  const frames: unknown[] = [];
  const errors: Error[] = [];
  readFrames(
    stream,
    (m) => frames.push(m),
    (e) => errors.push(e),
    { maxFrameBytes: 20 },
  );
  const text = Buffer.from('{"s":"ééé"}\n'); // 14 bytes, 11 characters
  stream.write(text.subarray(0, 7)); // splits the first é
  stream.write(text.subarray(7));
  stream.write(`{"s":"${'é'.repeat(8)}"}\n`); // 16 characters, 24 bytes: over
  stream.write('{"s":"ok"}\n');
  await new Promise((r) => setImmediate(r));
  t.same(frames, [{ s: 'ééé' }, { s: 'ok' }]);
  t.equal(errors.length, 1);
  t.ok(isFrameError(errors[0], 'too-large'));
});
