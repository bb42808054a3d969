/**
 * Newline-delimited JSON framing over a stream. JSON.stringify never emits a raw newline, so a
 * newline always ends a frame; this keeps both ends trivial and the frames readable in a trace.
 *
 * The reader works on bytes: it looks for the newline only in each new chunk (a large frame costs
 * one pass, not one per chunk) and, given a cap, never holds more than the cap of one frame.
 */
import type { Readable } from 'node:stream';
import type { Socket } from 'node:net';

export function writeFrame(socket: Socket, message: unknown): boolean {
  return socket.write(JSON.stringify(message) + '\n');
}

/** Writes a frame already serialized (`json` must be one JSON text, which has no raw newline). */
export function writeFrameText(socket: Socket, json: string): boolean {
  return socket.write(json + '\n');
}

/** A frame longer than the reader's cap; its bytes were dropped, not buffered. */
export class FrameTooLargeError extends Error {
  readonly code = 'FrameTooLarge';
  constructor(readonly limitBytes: number) {
    super(`a frame on the runtime socket is over ${limitBytes} bytes`);
  }
}

export interface ReadFramesOptions {
  /** Longest frame kept, in bytes (its newline not counted). Default: unbounded. */
  maxFrameBytes?: number;
}

const NEWLINE = 0x0a;

/**
 * Calls `onFrame` for every complete frame read from `socket`; malformed frames go to `onError`.
 * A frame over `maxFrameBytes` goes to `onError` as a FrameTooLargeError as soon as it passes the
 * cap; the rest of it is dropped up to its newline, and the frames after it are read as usual.
 */
export function readFrames(
  socket: Socket | Readable,
  onFrame: (message: unknown) => void,
  onError: (error: Error) => void,
  options: ReadFramesOptions = {},
): void {
  const max = options.maxFrameBytes ?? Number.POSITIVE_INFINITY;
  let pieces: Buffer[] = [];
  let length = 0;
  /** Inside a frame over the cap: bytes are dropped until its newline. */
  let skipping = false;
  socket.on('data', (chunk: Buffer | string) => {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    let start = 0;
    for (;;) {
      const newline = bytes.indexOf(NEWLINE, start);
      const end = newline === -1 ? bytes.length : newline;
      if (!skipping && end > start) {
        if (length + (end - start) > max) {
          skipping = true;
          pieces = [];
          length = 0;
          onError(new FrameTooLargeError(max));
        } else {
          pieces.push(bytes.subarray(start, end));
          length += end - start;
        }
      }
      if (newline === -1) return;
      start = newline + 1;
      if (skipping) {
        skipping = false;
        continue;
      }
      const line = pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces, length);
      pieces = [];
      length = 0;
      if (line.length === 0) continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line.toString('utf8'));
      } catch (cause) {
        onError(new Error('malformed frame on runtime socket', { cause }));
        continue;
      }
      onFrame(parsed);
    }
  });
}
