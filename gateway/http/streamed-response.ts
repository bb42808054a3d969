/**
 * The HTTP side of a streamed function URL: a streaming handler's bytes become a response sent as
 * they come (chunked transfer, so Server-Sent Events work). A stream of content type
 * HTTP_INTEGRATION_CONTENT_TYPE (Lambda's `awslambda.HttpResponseStream.from`) starts with a
 * prelude naming the status, headers and cookies, checked as a buffered response's are
 * (function-url.ts); any other stream is a 200 of its own content type.
 */
import { SkiffError } from '../../infra/errors.js';
import { MAX_PRELUDE_BYTES, preludeEnd, preludeHead } from '../../runtime/protocol/http-prelude.js';
import { HTTP_INTEGRATION_CONTENT_TYPE, PRELUDE_DELIMITER_BYTES } from '../../runtime/protocol/messages.js';
import { fromFunctionResult } from './function-url.js';

export interface StreamedHttpResponse {
  statusCode: number;
  /** Lowercased names; never `set-cookie` (see `cookies`), never a platform's `x-skiff-*`. */
  headers: Record<string, string>;
  cookies: string[];
  body: AsyncIterable<Buffer>;
}

/**
 * Reads the prelude, if the stream has one, and gives the rest as the body. A prelude that is not
 * a JSON object, is over MAX_PRELUDE_BYTES or names an invalid response is a FunctionError.
 */
export async function toStreamedResponse(contentType: string, chunks: AsyncIterable<Buffer>): Promise<StreamedHttpResponse> {
  const iterator = chunks[Symbol.asyncIterator]();
  if (contentType !== HTTP_INTEGRATION_CONTENT_TYPE) {
    return { statusCode: 200, headers: { 'content-type': contentType }, cookies: [], body: rest(iterator, Buffer.alloc(0)) };
  }
  let read = Buffer.alloc(0);
  for (;;) {
    const end = preludeEnd(read);
    if (end !== -1) return head(read.subarray(0, end), iterator, read.subarray(end + PRELUDE_DELIMITER_BYTES));
    if (read.length > MAX_PRELUDE_BYTES) {
      await iterator.return?.();
      throw invalidPrelude(`no end of the prelude within ${MAX_PRELUDE_BYTES} bytes`);
    }
    const next = await iterator.next();
    if (next.done) return head(read, iterator, Buffer.alloc(0)); // ended within its prelude: an empty body
    read = Buffer.concat([read, next.value]);
  }
}

/** The response a prelude names, checked and normalized as a buffered response's head is (function-url.ts). */
async function head(json: Buffer, iterator: AsyncIterator<Buffer>, first: Buffer): Promise<StreamedHttpResponse> {
  let checked;
  try {
    checked = fromFunctionResult({ ...preludeHead(json), body: '' });
  } catch (error) {
    await iterator.return?.();
    throw error instanceof SkiffError ? error : invalidPrelude((error as Error).message, error);
  }
  return { statusCode: checked.statusCode, headers: checked.headers, cookies: checked.cookies, body: rest(iterator, first) };
}

async function* rest(iterator: AsyncIterator<Buffer>, first: Buffer): AsyncGenerator<Buffer> {
  try {
    if (first.length > 0) yield first;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  } finally {
    await iterator.return?.();
  }
}

function invalidPrelude(problem: string, cause?: unknown): SkiffError {
  return new SkiffError('FunctionError', `the function's response stream has an invalid prelude: ${problem}`, {
    errorType: 'InvalidResponse',
    ...(cause === undefined ? {} : { cause }),
  });
}
