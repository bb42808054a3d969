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

/**
 * Why a frame was refused: `too-large` (longer than the reader's cap; its bytes were dropped, not
 * buffered) or `malformed` (not JSON; the parse error is its cause). Tested by kind with
 * `isFrameError`. This module imports nothing from infra/ (the bootstraps run it in the container,
 * where only runtime/ is), so it has its own small kind: the worker's end
 * (worker/sandbox/runtime-channel.ts) says what a refused frame means.
 */
export type FrameErrorKind = 'too-large' | 'malformed';

const FRAME_ERROR = Symbol.for('skiff.frame-error');

export class FrameError extends Error {
  declare readonly [FRAME_ERROR]: true;
  /** For `too-large`: the cap the frame passed, in bytes. */
  readonly limitBytes: number | undefined;

  constructor(
    readonly kind: FrameErrorKind,
    message: string,
    options: { cause?: unknown; limitBytes?: number } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    Object.defineProperty(this, FRAME_ERROR, { value: true, enumerable: false });
    this.name = 'FrameError';
    this.limitBytes = options.limitBytes;
  }
}

/** Whether `value` is a FrameError, and of `kind` if one is given (across copies of this module). */
export function isFrameError(value: unknown, kind?: FrameErrorKind): value is FrameError {
  if (typeof value !== 'object' || value === null || (value as Record<symbol, unknown>)[FRAME_ERROR] !== true) return false;
  return kind === undefined || (value as FrameError).kind === kind;
}

export interface ReadFramesOptions {
  /** Longest frame kept, in bytes (its newline not counted). Default: unbounded. */
  maxFrameBytes?: number;
}

const NEWLINE = 0x0a;

/**
 * Calls `onFrame` for every complete frame read from `socket`; malformed frames go to `onError` as
 * a FrameError `malformed`. A frame over `maxFrameBytes` goes to `onError` as a FrameError
 * `too-large` as soon as it passes the cap; the rest of it is dropped up to its newline, and the
 * frames after it are read as usual.
 */
export function readFrames(
  socket: Socket | Readable,
  onFrame: (message: unknown) => void,
  onError: (error: FrameError) => void,
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
          onError(new FrameError('too-large', `a frame on the runtime socket is over ${max} bytes`, { limitBytes: max }));
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
        onError(new FrameError('malformed', 'malformed frame on runtime socket', { cause }));
        continue;
      }
      onFrame(parsed);
    }
  });
}
