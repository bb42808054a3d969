/**
 * Newline-delimited JSON framing over a stream. JSON.stringify never emits a raw newline, so a
 * newline always ends a frame; this keeps both ends trivial and the frames readable in a trace.
 */
import type { Socket } from 'node:net';

export function writeFrame(socket: Socket, message: unknown): boolean {
  return socket.write(JSON.stringify(message) + '\n');
}

/** Calls `onFrame` for every complete frame read from `socket`; malformed frames go to `onError`. */
export function readFrames(
  socket: Socket,
  onFrame: (message: unknown) => void,
  onError: (error: Error) => void,
): void {
  let buffered = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    let newline = buffered.indexOf('\n');
    while (newline !== -1) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (line.length > 0) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(line);
        } catch (cause) {
          onError(new Error('malformed frame on runtime socket', { cause }));
          newline = buffered.indexOf('\n');
          continue;
        }
        onFrame(parsed);
      }
      newline = buffered.indexOf('\n');
    }
  });
}
