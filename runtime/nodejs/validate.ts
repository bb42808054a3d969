/**
 * Checks frames from the worker before acting on them. The worker is trusted, but a version skew
 * or a bug there should produce a clear answer (or a line on stderr), not a TypeError deep inside
 * the bootstrap that would take the whole sandbox down.
 */
import type { FunctionSpec, InitMessage, InvokeMessage, RuntimeLimits } from '../protocol/messages.js';

export type Classified =
  | { kind: 'init'; message: InitMessage }
  | { kind: 'invoke'; message: InvokeMessage }
  /** Clearly an init, but unusable: answered with initFailed so the worker does not wait forever. */
  | { kind: 'badInit'; reason: string }
  /** Clearly an invoke with an id to answer, but unusable. */
  | { kind: 'badInvoke'; id: string; reason: string }
  | { kind: 'unknown' };

type Fields = Record<string, unknown>;

function isFields(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const isFiniteNumber = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);

function functionSpecProblem(spec: unknown): string | undefined {
  if (!isFields(spec)) return 'function is missing';
  if (typeof spec['name'] !== 'string' || spec['name'] === '') return 'function.name must be a non-empty string';
  if (typeof spec['handler'] !== 'string') return 'function.handler must be a string';
  for (const key of ['version', 'memoryMb', 'timeoutMs'] as const) {
    if (!isFiniteNumber(spec[key])) return `function.${key} must be a number`;
  }
  const env = spec['env'];
  if (!isFields(env) || !Object.values(env).every((v) => typeof v === 'string')) {
    return 'function.env must map names to strings';
  }
  return undefined;
}

function limitsProblem(limits: unknown): string | undefined {
  if (limits === undefined) return undefined;
  if (!isFields(limits)) return 'limits must be an object';
  for (const key of ['maxResultBytes', 'maxLogLineBytes'] as const) {
    const value = limits[key];
    if (!isFiniteNumber(value) || value < 1) return `limits.${key} must be a positive number`;
  }
  return undefined;
}

function invokeProblem(frame: Fields): string | undefined {
  if (!isFiniteNumber(frame['deadlineMs'])) return 'deadlineMs must be a number';
  const traceparent = frame['traceparent'];
  if (traceparent !== undefined && typeof traceparent !== 'string') return 'traceparent must be a string';
  if (frame['stream'] !== undefined && frame['stream'] !== true) return 'stream must be true when present';
  return undefined;
}

export function classifyFrame(frame: unknown): Classified {
  if (!isFields(frame)) return { kind: 'unknown' };
  if (frame['type'] === 'init') {
    const reason = functionSpecProblem(frame['function']) ?? limitsProblem(frame['limits']);
    if (reason !== undefined) return { kind: 'badInit', reason };
    const message: InitMessage = { type: 'init', function: frame['function'] as FunctionSpec };
    if (frame['limits'] !== undefined) {
      const { maxResultBytes, maxLogLineBytes } = frame['limits'] as RuntimeLimits;
      message.limits = { maxResultBytes, maxLogLineBytes };
    }
    return { kind: 'init', message };
  }
  const id = frame['id'];
  if (frame['type'] === 'invoke' && typeof id === 'string' && id !== '') {
    const reason = invokeProblem(frame);
    if (reason !== undefined) return { kind: 'badInvoke', id, reason };
    const message: InvokeMessage = { type: 'invoke', id, event: frame['event'], deadlineMs: frame['deadlineMs'] as number };
    if (typeof frame['traceparent'] === 'string') message.traceparent = frame['traceparent'];
    if (frame['stream'] === true) message.stream = true;
    return { kind: 'invoke', message };
  }
  return { kind: 'unknown' };
}
