/**
 * Cutting a log line at a byte limit, the same on both sides of the socket: the runtime cuts what
 * it sends, and the worker cuts again what a runtime sent (it does not trust it to).
 */
import { cutMarker } from './messages.js';

/**
 * `text` cut to at most `maxBytes` bytes of UTF-8 (never inside a character), with the marker
 * appended when cut. A huge string is sliced before it is encoded, so cutting costs little.
 */
export function cutLine(text: string, maxBytes: number): string {
  // A UTF-16 unit is at most 3 bytes of UTF-8, and at least 1.
  if (text.length * 3 <= maxBytes) return text;
  const head = Buffer.from(text.length > maxBytes ? text.slice(0, maxBytes) : text);
  if (head.length <= maxBytes && text.length <= maxBytes) return text;
  let end = Math.min(maxBytes, head.length);
  // Back off to the first byte of a character the cut would split.
  while (end > 0 && end < head.length && ((head[end] as number) & 0xc0) === 0x80) end--;
  return head.subarray(0, end).toString('utf8') + cutMarker(maxBytes);
}
