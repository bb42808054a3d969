/** A container's output as bounded lines (worker/sandbox/output-lines.ts). */
import t from 'tap';
import { cutMarker } from '../../runtime/protocol/messages.js';
import { LineCutter, OutputTail, cutUtf8 } from '../../worker/sandbox/output-lines.js';

function cutter(maxLineBytes: number, runawayBytes: number): { lines: string[]; runaways: number[]; cut: LineCutter } {
  const lines: string[] = [];
  const runaways: number[] = [];
  const cut = new LineCutter({ maxLineBytes, runawayBytes, onLine: (line) => lines.push(line), onRunaway: (limit) => runaways.push(limit) });
  return { lines, runaways, cut };
}

t.test('lines split across chunks are whole; long ones are cut with the marker; the rest of the stream goes on', async (t) => {
  const { lines, runaways, cut } = cutter(10, 1000);
  cut.push(Buffer.from('one\ntw'));
  cut.push(Buffer.from('o\n' + 'x'.repeat(25)));
  cut.push(Buffer.from('y'.repeat(25) + '\nthree\nlast'));
  cut.end();
  t.same(lines, ['one', 'two', `${'x'.repeat(10)}${cutMarker(10)}`, 'three', 'last']);
  t.same(runaways, []);
});

t.test('an endless line is reported once past the runaway bound, and never held', async (t) => {
  const { lines, runaways, cut } = cutter(16, 1024 * 1024);
  const chunk = Buffer.alloc(64 * 1024, 'z');
  for (let i = 0; i < 64; i++) cut.push(chunk); // 4 MiB without a newline
  t.same(runaways, [1024 * 1024], 'reported once, with the bound');
  t.same(lines, [], 'no line yet');
  cut.push(Buffer.from('\nnext\n'));
  t.same(lines, [`${'z'.repeat(16)}${cutMarker(16)}`, 'next'], 'the line is its first bytes; the next line is read as usual');
});

t.test('a cut never splits a character', async (t) => {
  t.equal(cutUtf8(Buffer.from('ééé'), 6), 'ééé');
  t.equal(cutUtf8(Buffer.from('éééé'), 5), `éé${cutMarker(5)}`, '5 bytes hold two é and half of one: two');
});

t.test('the tail keeps the last characters only', async (t) => {
  const tail = new OutputTail(10);
  for (let i = 0; i < 100; i++) tail.append(`line ${i}\n`);
  t.equal(tail.toString(), 'e 98\nline 99\n'.slice(-10));
  tail.append('x'.repeat(50));
  t.equal(tail.toString(), 'x'.repeat(10));
});
