/**
 * Runs one invocation with Lambda's calling conventions: a handler either returns a thenable
 * (async style) or reports through callback(err, value) / context.done/succeed/fail.
 */
import type { Callback, Handler, LambdaContext } from './context.js';

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
