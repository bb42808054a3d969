/**
 * Runs one invocation with Lambda's calling conventions: a handler either returns a thenable
 * (async style) or reports through callback(err, value) / context.done/succeed/fail.
 */
import type { Callback, Handler, LambdaContext } from './context.js';
import { bufferedStreamResult, highWaterMarkOf, ResponseStream, type ChunkSink, type StreamingHandler } from './response-stream.js';

export type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * Resolves with the first outcome; later ones (a callback after the promise settled, a second
 * callback) are ignored, as on Lambda. A plain return value that is not a thenable is NOT a
 * result: such handlers answer through the callback, and until they do the invocation is pending.
 */
export function runHandler(handler: Handler, event: unknown, makeContext: (complete: Callback) => LambdaContext): Promise<Outcome> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (outcome: Outcome): void => {
      if (settled) return;
      settled = true;
      resolve(outcome);
    };
    const complete: Callback = (error, value) => finish(error === undefined || error === null ? { ok: true, value } : { ok: false, error });

    let returned: unknown;
    try {
      returned = handler(event, makeContext(complete), complete);
    } catch (error) {
      finish({ ok: false, error });
      return;
    }
    if (!isThenable(returned)) return;
    try {
      returned.then(
        (value) => finish({ ok: true, value }),
        (error: unknown) => finish({ ok: false, error }),
      );
    } catch (error) {
      // A hand-written thenable whose then() throws is a failed invocation, not a runtime crash.
      finish({ ok: false, error });
    }
  });
}

/**
 * Runs a handler wrapped in `awslambda.streamifyResponse`. With a `sink` (the invoke asked for a
 * stream) its writes go there as they happen and the value is null; without, they are collected
 * and the value is the whole output as one function URL response. The invocation ends when the
 * handler's promise has settled and its stream has finished: a stream the handler left open is
 * ended for it once its promise resolves. A rejection, a throw or a stream error fails it.
 */
export function runStreamingHandler(handler: StreamingHandler, event: unknown, context: LambdaContext, sink: ChunkSink | undefined): Promise<Outcome> {
  const collected: Buffer[] = [];
  let contentType = '';
  const stream = new ResponseStream(
    sink ??
      ((data, type) => {
        if (type !== undefined) contentType = type;
        if (data.length > 0) collected.push(Buffer.from(data));
      }),
    highWaterMarkOf(handler),
  );
  const finished = new Promise<void>((resolve, reject) => {
    stream.once('finish', resolve);
    stream.once('error', reject);
  });
  // Awaited below once the handler has settled; a stream error before that fails the run there.
  finished.catch(() => undefined);
  const run = async (): Promise<Outcome> => {
    try {
      await handler(event, stream, context);
      if (!stream.writableEnded) stream.end();
      await finished;
      return { ok: true, value: sink ? null : bufferedStreamResult(contentType, Buffer.concat(collected)) };
    } catch (error) {
      stream.destroy();
      return { ok: false, error };
    }
  };
  return run();
}
