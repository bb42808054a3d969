/**
 * Turns whatever user code throws, rejects with or passes to a callback into the protocol's
 * ErrorInfo. Handlers throw strings and plain objects as well as Errors, and the worker shows the
 * result to whoever invoked the function, so every shape must come out readable.
 */
import { inspect, types } from 'node:util';
import type { ErrorInfo } from '../protocol/messages.js';

/** An Error whose `name` says what went wrong, for failures the runtime itself reports. */
export function runtimeError(type: string, message: string, options?: ErrorOptions): Error {
  const error = new Error(message, options);
  error.name = type;
  return error;
}

/** Never throws: it runs in crash handlers, where a second failure would hide the first. */
export function toErrorInfo(thrown: unknown): ErrorInfo {
  try {
    if (thrown instanceof Error || types.isNativeError(thrown)) return fromError(thrown as Error);
    if (typeof thrown === 'string') return { type: 'string', message: thrown };
    if (typeof thrown === 'object' && thrown !== null) return fromObject(thrown);
    return { type: typeof thrown, message: String(thrown) };
  } catch {
    return { type: 'Runtime.UnknownError', message: 'the handler failed with a value that cannot be described' };
  }
}

function fromError(error: Error): ErrorInfo {
  const info: ErrorInfo = { type: errorType(error), message: String(error.message) };
  if (typeof error.stack === 'string') info.stack = error.stack.split('\n');
  return info;
}

/** Prefers `name`, but a subclass that never set it still says 'Error'; its class name is more useful. */
function errorType(error: Error): string {
  const name = typeof error.name === 'string' ? error.name : '';
  if (name !== '' && name !== 'Error') return name;
  const className: unknown = (error.constructor as { name?: unknown } | undefined)?.name;
  if (typeof className === 'string' && className !== '') return className;
  return name || 'Error';
}

/** Objects like `{ code: 42, message: 'nope' }` keep their own name/message when they have one. */
function fromObject(value: object): ErrorInfo {
  const { name, message } = value as { name?: unknown; message?: unknown };
  return {
    type: typeof name === 'string' && name !== '' ? name : 'object',
    message: typeof message === 'string' ? message : inspect(value, { depth: 4, breakLength: Infinity }),
  };
}
