/**
 * The one contract between a worker and the bootstrap running inside a container.
 *
 * Transport: a unix socket that the worker listens on, in a directory bind-mounted into the
 * container at {@link RUNTIME_SOCKET_DIR}. The bootstrap connects as soon as its process starts;
 * both sides then exchange newline-delimited JSON frames (see framing.ts).
 *
 * Order of a sandbox's life:
 *   runtime → hello                     the bootstrap is up and waiting (a pooled, generic sandbox)
 *   worker  → init                      specialize: load this function's handler from /var/task
 *   runtime → initDone | initFailed     initFailed is final: the worker destroys the sandbox
 *   worker  → invoke (repeated)         possibly several at once when the function's concurrency > 1
 *   runtime → log (any number)          console output made while handling an invoke, before its result
 *   runtime → chunk (any number)        for an invoke with `stream`, a streaming handler's bytes, in order
 *   runtime → result                    exactly one per invoke, matched by id
 * Every frame the runtime sends is bounded: a result over `limits.maxResultBytes` is answered with
 * an error of type RESULT_TOO_LARGE instead, and log lines are cut at `limits.maxLogLineBytes`. The
 * worker stops a sandbox that sends a frame longer than the result limit plus a small margin.
 * A sandbox is specialized once and never re-initialized for another function.
 */

/** Where the socket directory appears inside the container. */
export const RUNTIME_SOCKET_DIR = '/run/skiff';
/** File name of the worker's listening socket inside {@link RUNTIME_SOCKET_DIR}. */
export const RUNTIME_SOCKET_NAME = 'worker.sock';
/** Where a function's code is mounted, read-only, inside the container (as on AWS Lambda). */
export const TASK_ROOT = '/var/task';
/** Bumped on any incompatible change to the messages below. */
export const PROTOCOL_VERSION = 1;

export interface HelloMessage {
  type: 'hello';
  protocol: number;
  runtime: string;
  pid: number;
}

export interface FunctionSpec {
  name: string;
  version: number;
  /** `file.export`, e.g. `index.handler` or `src/app.handler`, relative to TASK_ROOT. */
  handler: string;
  memoryMb: number;
  timeoutMs: number;
  env: Record<string, string>;
}

/**
 * Bounds the runtime applies itself (the worker checks them again, and does not trust it to). They
 * come with init: a pooled sandbox is made before anyone knows its function.
 */
export interface RuntimeLimits {
  /** Largest result, in bytes of its JSON; a larger one is answered with {@link RESULT_TOO_LARGE}. */
  maxResultBytes: number;
  /** Longest log line in bytes; a longer one is cut there and ends with {@link cutMarker}. */
  maxLogLineBytes: number;
}

/** What a runtime applies when init names no limits (an older worker). */
export const DEFAULT_RUNTIME_LIMITS: Readonly<RuntimeLimits> = { maxResultBytes: 6 * 1024 * 1024, maxLogLineBytes: 16 * 1024 };

/** ErrorInfo.type of a result over maxResultBytes: the worker makes it FunctionResponseTooLarge. */
export const RESULT_TOO_LARGE = 'Runtime.ResponseTooLarge';

/** Ends a log line cut at `limitBytes` (the Python bootstrap writes the same text). */
export function cutMarker(limitBytes: number): string {
  return ` [skiff: line cut at ${limitBytes} bytes]`;
}

export interface InitMessage {
  type: 'init';
  function: FunctionSpec;
  /** Absent: {@link DEFAULT_RUNTIME_LIMITS}. */
  limits?: RuntimeLimits;
}

export interface InitDoneMessage {
  type: 'initDone';
  durationMs: number;
}

export interface InitFailedMessage {
  type: 'initFailed';
  error: ErrorInfo;
}

export interface InvokeMessage {
  type: 'invoke';
  /** Invocation id; becomes `context.awsRequestId`. */
  id: string;
  event: unknown;
  /** Wall-clock deadline (ms since epoch) for `context.getRemainingTimeInMillis()`. */
  deadlineMs: number;
  /** W3C trace context of the invocation, for spans made by user code. */
  traceparent?: string;
  /**
   * Stream the response: a handler wrapped in `awslambda.streamifyResponse` sends what it writes as
   * `chunk` frames, then a `result` whose value is null. Absent, such a handler's output is
   * collected and answered as one result (a function URL response: {@link bufferedStreamResult}).
   * A handler not wrapped answers with its value either way.
   */
  stream?: true;
}

export interface ErrorInfo {
  /** `errorType` in Lambda terms: the error's class name, e.g. `TypeError`. */
  type: string;
  message: string;
  stack?: string[];
}

export type ResultMessage =
  | { type: 'result'; id: string; ok: true; value: unknown; durationMs: number }
  | { type: 'result'; id: string; ok: false; error: ErrorInfo; durationMs: number };

/**
 * A line the handler wrote with console.* while handling invocation `id`. Sent on the socket, not
 * through stdout, so it is attributed exactly (even with concurrent invocations) and arrives before
 * the invocation's result. Output outside any invocation stays on the container's stdout/stderr.
 */
export interface LogMessage {
  type: 'log';
  id: string;
  stream: 'stdout' | 'stderr';
  text: string;
  /** ms since epoch */
  at: number;
}

/**
 * Bytes a streaming handler wrote to its response stream during invocation `id` (of an invoke with
 * `stream`), in order, before the invocation's result. The first chunk of an invocation carries
 * the stream's content type and is sent at its first write or at its end, whichever comes first,
 * so a streamed invocation has at least one chunk (its data may be empty). Data is base64 and at
 * most {@link MAX_CHUNK_BYTES} bytes before encoding.
 */
export interface ChunkMessage {
  type: 'chunk';
  id: string;
  /** base64 */
  data: string;
  contentType?: string;
}

/** Largest chunk frame's data, in bytes before base64: a large write is sent as several chunks. */
export const MAX_CHUNK_BYTES = 256 * 1024;

/**
 * Content type of a response stream that begins with a prelude (Lambda's
 * `awslambda.HttpResponseStream.from`): JSON `{statusCode, headers, cookies}`, then
 * {@link PRELUDE_DELIMITER_BYTES} NUL bytes, then the body. A function URL answers with the
 * prelude's status and headers and streams the body.
 */
export const HTTP_INTEGRATION_CONTENT_TYPE = 'application/vnd.awslambda.http-integration-response';
export const PRELUDE_DELIMITER_BYTES = 8;
/** A response stream's content type when the handler sets none (Lambda's). */
export const DEFAULT_STREAM_CONTENT_TYPE = 'application/octet-stream';

/**
 * What a streaming handler invoked without `stream` answers: its whole output as one function URL
 * response (payload format 2.0), with the prelude's status, headers and cookies when it wrote one.
 */
export interface BufferedStreamResult {
  statusCode: number;
  headers: Record<string, string>;
  cookies?: string[];
  body: string;
  isBase64Encoded: true;
}

export type RuntimeMessage = HelloMessage | InitDoneMessage | InitFailedMessage | ResultMessage | LogMessage | ChunkMessage;
export type WorkerMessage = InitMessage | InvokeMessage;
