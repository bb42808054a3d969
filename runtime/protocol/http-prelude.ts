/**
 * The prelude of a response stream of content type HTTP_INTEGRATION_CONTENT_TYPE (what Lambda's
 * `awslambda.HttpResponseStream.from` writes): the JSON of `{statusCode, headers, cookies}`, then
 * PRELUDE_DELIMITER_BYTES NUL bytes, then the body. Read by the Node.js bootstrap (a streaming
 * handler invoked buffered) and by the gateway (a streamed function URL), so both answer alike.
 * Imports nothing but the protocol: the bootstrap runs it in the container.
 */
import { DEFAULT_STREAM_CONTENT_TYPE, PRELUDE_DELIMITER_BYTES } from './messages.js';

/** Longest prelude read, in bytes: one with no delimiter by then is the function's error. */
export const MAX_PRELUDE_BYTES = 64 * 1024;

const DELIMITER = Buffer.alloc(PRELUDE_DELIMITER_BYTES);

export interface PreludeHead {
  statusCode: number;
  headers: Record<string, unknown>;
  cookies?: unknown;
}

/** Where the delimiter starts in `bytes` (the prelude's JSON before it), or -1. */
export const preludeEnd = (bytes: Buffer): number => bytes.indexOf(DELIMITER);

/**
 * The status, headers and cookies a prelude's JSON names: 200 without a status, and the default
 * stream content type unless a header gives one. Throws a TypeError for one that is not an object.
 */
export function preludeHead(json: Buffer): PreludeHead {
  const text = json.toString('utf8').trim();
  const prelude = text === '' ? {} : (JSON.parse(text) as unknown);
  if (typeof prelude !== 'object' || prelude === null || Array.isArray(prelude)) throw new TypeError('the response stream prelude must be a JSON object');
  const { statusCode, headers, cookies } = prelude as Record<string, unknown>;
  const given = typeof headers === 'object' && headers !== null && !Array.isArray(headers) ? { ...(headers as Record<string, unknown>) } : {};
  const typed = Object.keys(given).some((name) => name.toLowerCase() === 'content-type');
  return {
    statusCode: typeof statusCode === 'number' ? statusCode : 200,
    headers: typed ? given : { ...given, 'content-type': DEFAULT_STREAM_CONTENT_TYPE },
    ...(cookies === undefined ? {} : { cookies }),
  };
}
