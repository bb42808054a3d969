/**
 * Response streaming as Lambda's Node.js runtime offers it: the `awslambda` global with
 * `streamifyResponse(handler)` (marks a handler `async (event, responseStream, context)`) and
 * `HttpResponseStream.from(stream, {statusCode, headers, cookies})` (writes the prelude: its JSON,
 * then 8 NUL bytes, before the first byte of the body), under the same names and symbols as
 * aws-lambda-nodejs-runtime-interface-client, so code written for Lambda runs unchanged.
 *
 * The response stream is a Writable. Invoked with `stream`, what is written goes to the worker as
 * `chunk` frames at once (the first one carries the content type); without it, everything is
 * collected and answered as one function URL response (../protocol/messages.ts).
 */
import { Writable } from 'node:stream';
import {
  DEFAULT_STREAM_CONTENT_TYPE,
  HTTP_INTEGRATION_CONTENT_TYPE,
  MAX_CHUNK_BYTES,
  PRELUDE_DELIMITER_BYTES,
  type BufferedStreamResult,
} from '../protocol/messages.js';
import { preludeEnd, preludeHead } from '../protocol/http-prelude.js';
import type { LambdaContext } from './context.js';

const HANDLER_STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HANDLER_HIGHWATERMARK = Symbol.for('aws.lambda.runtime.handler.streaming.highWaterMark');
const STREAM_RESPONSE = 'response';

export type StreamingHandler = (event: unknown, responseStream: ResponseStream, context: LambdaContext) => unknown;

type Marked = { [HANDLER_STREAMING]?: string; [HANDLER_HIGHWATERMARK]?: number };

/** Whether `handler` was wrapped in `awslambda.streamifyResponse`. */
export function isStreamingHandler(handler: unknown): handler is StreamingHandler {
  return typeof handler === 'function' && (handler as Marked)[HANDLER_STREAMING] === STREAM_RESPONSE;
}

export function highWaterMarkOf(handler: StreamingHandler): number | undefined {
  return (handler as Marked)[HANDLER_HIGHWATERMARK];
}

/** Where a response stream's bytes go. `contentType` comes with the first call only. */
export type ChunkSink = (data: Buffer, contentType: string | undefined) => void;

export class ResponseStream extends Writable {
  private contentType = DEFAULT_STREAM_CONTENT_TYPE;
  private started = false;
  /** Set by HttpResponseStream.from: writes the prelude before the first byte (Lambda's hook name). */
  _onBeforeFirstWrite: ((write: (chunk: string | Uint8Array) => void) => void) | undefined;

  constructor(
    private readonly sink: ChunkSink,
    highWaterMark?: number,
  ) {
    super(highWaterMark === undefined ? {} : { highWaterMark });
  }

  setContentType(contentType: string): void {
    if (this.started) throw new Error('setContentType must be called before the first write to the response stream');
    this.contentType = String(contentType);
  }

  getContentType(): string {
    return this.contentType;
  }

  override _write(chunk: Buffer | string, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    try {
      this.start();
      this.send(typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    try {
      this.start(); // a stream ended before any write still answers, with its content type
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.sink(Buffer.alloc(0), this.contentType);
    const hook = this._onBeforeFirstWrite;
    this._onBeforeFirstWrite = undefined;
    hook?.((chunk) => this.send(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)));
  }

  private send(bytes: Buffer): void {
    for (let at = 0; at < bytes.length; at += MAX_CHUNK_BYTES) this.sink(bytes.subarray(at, at + MAX_CHUNK_BYTES), undefined);
  }
}

export const HttpResponseStream = {
  from(stream: ResponseStream, prelude: unknown): ResponseStream {
    stream.setContentType(HTTP_INTEGRATION_CONTENT_TYPE);
    // JSON.stringify never emits a NUL byte, so the delimiter cannot occur inside the prelude.
    const metadata = JSON.stringify(prelude);
    stream._onBeforeFirstWrite = (write) => {
      write(metadata);
      write(new Uint8Array(PRELUDE_DELIMITER_BYTES));
    };
    return stream;
  },
};

/** Installs the `awslambda` global before any handler module is imported. */
export function installAwsLambdaGlobal(): void {
  const awslambda = {
    streamifyResponse<T extends StreamingHandler>(handler: T, options?: { highWaterMark?: number }): T {
      (handler as Marked)[HANDLER_STREAMING] = STREAM_RESPONSE;
      if (typeof options?.highWaterMark === 'number') (handler as Marked)[HANDLER_HIGHWATERMARK] = Math.trunc(options.highWaterMark);
      return handler;
    },
    HttpResponseStream,
  };
  Object.defineProperty(globalThis, 'awslambda', { value: awslambda, enumerable: false, configurable: false, writable: false });
}

/**
 * A streaming handler's whole output as one function URL response: the prelude's status, headers
 * and cookies when its content type says it has one, else 200 with its content type; the body
 * base64. A prelude that is not a JSON object is the function's error.
 */
export function bufferedStreamResult(contentType: string, bytes: Buffer): BufferedStreamResult {
  if (contentType !== HTTP_INTEGRATION_CONTENT_TYPE) {
    return { statusCode: 200, headers: { 'content-type': contentType }, body: bytes.toString('base64'), isBase64Encoded: true };
  }
  const end = preludeEnd(bytes);
  const head = preludeHead(end === -1 ? bytes : bytes.subarray(0, end));
  return {
    statusCode: head.statusCode,
    headers: head.headers as Record<string, string>,
    ...(Array.isArray(head.cookies) ? { cookies: head.cookies as string[] } : {}),
    body: (end === -1 ? Buffer.alloc(0) : bytes.subarray(end + PRELUDE_DELIMITER_BYTES)).toString('base64'),
    isBase64Encoded: true,
  };
}
