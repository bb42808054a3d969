/**
 * skiff.json: a function directory's deploy defaults, in the API's own field names. Flags win
 * over it; anything it leaves out takes the gateway's default. Unknown fields are refused, so a
 * typo (`"memory"` for `"memoryMb"`) is not silently ignored.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from './args.js';
import type { DeployBody } from '../infra/contracts/api.js';

export const MANIFEST = 'skiff.json';

export interface Manifest {
  name?: string;
  runtime?: string;
  handler?: string;
  memoryMb?: number;
  timeoutMs?: number;
  concurrency?: number;
  idleTimeoutMs?: number;
  minWarm?: number;
  maxInstances?: number;
  auth?: 'none' | 'key';
  env?: Record<string, string>;
  /** Passed to the gateway as they are: it checks them and answers 400 naming the bad entry. */
  schedules?: DeployBody['schedules'];
  cors?: DeployBody['cors'];
}

const STRINGS = ['name', 'runtime', 'handler'] as const;
const INTEGERS = ['memoryMb', 'timeoutMs', 'concurrency', 'idleTimeoutMs', 'minWarm', 'maxInstances'] as const;
const KNOWN = new Set<string>([...STRINGS, ...INTEGERS, 'auth', 'env', 'schedules', 'cors', '$schema']);
export const AUTH_VALUES = ['none', 'key'] as const;

/** The directory's skiff.json, or an empty manifest when it has none. */
export async function readManifest(dir: string): Promise<Manifest> {
  const path = join(dir, MANIFEST);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return {};
    throw new UsageError(`${path}: ${(error as Error).message}`, 'deploy');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${path} is not JSON: ${(error as Error).message}`, 'deploy');
  }
  return validate(raw, path);
}

function validate(raw: unknown, path: string): Manifest {
  const bad = (message: string): UsageError => new UsageError(`${path}: ${message}`, 'deploy');
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('must be a JSON object');
  const record = raw as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!KNOWN.has(key)) throw bad(`unknown field ${JSON.stringify(key)} (known: ${[...STRINGS, ...INTEGERS, 'auth', 'env', 'schedules', 'cors'].join(', ')})`);
  }
  const manifest: Manifest = {};
  for (const key of STRINGS) {
    const value = record[key];
    if (value === undefined) continue;
    if (typeof value !== 'string') throw bad(`${key} must be a string`);
    manifest[key] = value;
  }
  for (const key of INTEGERS) {
    const value = record[key];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isInteger(value)) throw bad(`${key} must be a whole number`);
    manifest[key] = value;
  }
  if (record.auth !== undefined) {
    const auth = record.auth;
    if (auth !== 'none' && auth !== 'key') throw bad(`auth must be "none" or "key"`);
    manifest.auth = auth;
  }
  if (record.env !== undefined) {
    const env = record.env;
    if (typeof env !== 'object' || env === null || Array.isArray(env)) throw bad('env must be an object of strings');
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(env as Record<string, unknown>)) {
      if (typeof value !== 'string') throw bad(`env.${key} must be a string`);
      out[key] = value;
    }
    manifest.env = out;
  }
  if (record.schedules !== undefined) {
    if (!Array.isArray(record.schedules)) throw bad('schedules must be a list of {"expression": ...} or {"everyMs": ...}');
    manifest.schedules = record.schedules as NonNullable<Manifest['schedules']>;
  }
  if (record.cors !== undefined) {
    if (typeof record.cors !== 'object' || record.cors === null || Array.isArray(record.cors))
      throw bad('cors must be an object (allowOrigins, allowMethods, ...)');
    manifest.cors = record.cors as NonNullable<Manifest['cors']>;
  }
  return manifest;
}
