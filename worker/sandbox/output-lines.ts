/**
 * A container's stdout or stderr as lines, with bounded memory whatever the container writes.
 * Works on bytes: a line keeps at most `maxLineBytes` (then it is cut, with a marker); the bytes
 * past the cut are counted, never held. A line that runs on past `runawayBytes` is reported once:
 * a process writing an endless line is stopped rather than read forever.
 */
import { cutMarker } from '../../runtime/protocol/messages.js';

const NEWLINE = 0x0a;

export interface LineCutterOptions {
  maxLineBytes: number;
  runawayBytes: number;
  onLine(text: string): void;
  onRunaway(limitBytes: number): void;
}

export class LineCutter {
  private pieces: Buffer[] = [];
  private kept = 0;
  /** Bytes of the current line, cut or not. */
  private seen = 0;
  private runaway = false;

  constructor(private readonly o: LineCutterOptions) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(NEWLINE, start);
      const end = newline === -1 ? chunk.length : newline;
      this.take(chunk, start, end);
      if (newline === -1) return;
      this.finishLine();
      start = newline + 1;
    }
  }

  /** The stream ended: an unfinished line is a line. */
  end(): void {
    if (this.seen > 0) this.finishLine();
  }

  private take(chunk: Buffer, start: number, end: number): void {
    if (end <= start) return;
    // One byte past the limit is kept, so finishLine knows the line was cut.
    const room = this.o.maxLineBytes + 1 - this.kept;
    if (room > 0) {
      const piece = chunk.subarray(start, Math.min(end, start + room));
      // A copy: a subarray would keep the whole (64 KiB) chunk alive for a few bytes.
      this.pieces.push(Buffer.from(piece));
      this.kept += piece.length;
    }
    this.seen += end - start;
    if (!this.runaway && this.seen > this.o.runawayBytes) {
      this.runaway = true;
      this.o.onRunaway(this.o.runawayBytes);
    }
  }

  private finishLine(): void {
    const line = Buffer.concat(this.pieces, this.kept);
    this.pieces = [];
    this.kept = 0;
    this.seen = 0;
    this.runaway = false;
    this.o.onLine(cutUtf8(line, this.o.maxLineBytes));
  }
}

/** `bytes` as text, cut to `maxBytes` (never inside a character) and marked when cut. */
export function cutUtf8(bytes: Buffer, maxBytes: number): string {
  if (bytes.length <= maxBytes) return bytes.toString('utf8');
  let end = maxBytes;
  // Back off to the first byte of a character the cut would split.
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8') + cutMarker(maxBytes);
}

/** The last `maxChars` characters written, kept as pieces so appending does not copy the whole tail. */
export class OutputTail {
  private pieces: string[] = [];
  private length = 0;

  constructor(private readonly maxChars: number) {}

  append(text: string): void {
    const piece = text.length > this.maxChars ? text.slice(-this.maxChars) : text;
    this.pieces.push(piece);
    this.length += piece.length;
    while (this.pieces.length > 1 && this.length - (this.pieces[0] as string).length >= this.maxChars) {
      this.length -= (this.pieces.shift() as string).length;
    }
  }

  toString(): string {
    return this.pieces.join('').slice(-this.maxChars);
  }
}
