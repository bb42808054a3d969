/**
 * Routes console output made while an invocation runs to the worker as `log` frames tagged with
 * that invocation's id (AsyncLocalStorage follows the handler's async work). Output made outside
 * any invocation (module top level, stray timers) goes to stdout/stderr as usual. Each invocation
 * may log up to a bound; past it one notice is sent and the rest dropped, so a runaway logger
 * cannot flood the worker. Each line is cut at the line limit the worker gave in init.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { format } from 'node:util';
import { cutLine } from '../protocol/log-lines.js';

export const invocationScope = new AsyncLocalStorage<string>();

export type LogSink = (id: string, stream: 'stdout' | 'stderr', text: string) => void;

const STDOUT_METHODS = ['log', 'info', 'debug'] as const;
const STDERR_METHODS = ['warn', 'error', 'trace'] as const;

export function captureConsole(sink: LogSink, maxBytesPerInvocation: number, maxLineBytes: () => number): { forget(id: string): void } {
  const used = new Map<string, number>();
  const emit = (stream: 'stdout' | 'stderr', original: (...args: unknown[]) => void, args: unknown[]): void => {
    const id = invocationScope.getStore();
    if (id === undefined) {
      original(...args);
      return;
    }
    const text = cutLine(format(...args), maxLineBytes());
    const before = used.get(id) ?? 0;
    if (before >= maxBytesPerInvocation) return;
    const after = before + Buffer.byteLength(text);
    used.set(id, after);
    if (after <= maxBytesPerInvocation) sink(id, stream, text);
    else sink(id, 'stderr', `[skiff: log output of this invocation exceeded ${maxBytesPerInvocation} bytes; the rest is dropped]`);
  };
  for (const method of STDOUT_METHODS) {
    const original = console[method].bind(console);
    console[method] = (...args: unknown[]) => emit('stdout', original, args);
  }
  for (const method of STDERR_METHODS) {
    const original = console[method].bind(console);
    console[method] = (...args: unknown[]) =>
      emit('stderr', original, method === 'trace' ? [`Trace: ${format(...args)}\n${new Error().stack?.split('\n').slice(2).join('\n') ?? ''}`] : args);
  }
  return { forget: (id) => used.delete(id) };
}
