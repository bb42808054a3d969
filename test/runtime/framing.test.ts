import t from 'tap';
import { PassThrough } from 'node:stream';
import type { Socket } from 'node:net';
import { readFrames } from '../../runtime/protocol/framing.js';

t.test('frames split across chunks are reassembled; malformed ones are reported', async (t) => {
  const stream = new PassThrough() as unknown as Socket;
  const frames: unknown[] = [];
  const errors: Error[] = [];
  readFrames(stream, (m) => frames.push(m), (e) => errors.push(e));
  stream.write('{"a":1}\n{"b"');
  stream.write(':"x\\ny"}\nnot json\n');
  await new Promise((r) => setImmediate(r));
  t.same(frames, [{ a: 1 }, { b: 'x\ny' }]);
  t.equal(errors.length, 1);
});
