/**
 * Command-line parsing shared by every command: the global options, the split into a command and
 * its arguments, typed accessors for util.parseArgs values, and the usage error (exit code 2).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { TENANT_NAME } from '../infra/tenancy/quotas.js';

export type OptionSpecs = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** Something wrong with what the user typed or pointed at, found before asking the gateway. */
export class UsageError extends Error {
  /** The command whose --help to point at, if any. */
  readonly command: string | undefined;

  constructor(message: string, command?: string) {
    super(message);
    this.name = 'UsageError';
    this.command = command;
  }
}

/** Accepted by every command, before or after the command name. */
export const GLOBAL_OPTIONS = {
  gateway: { type: 'string' },
  key: { type: 'string' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const satisfies OptionSpecs;

export const GLOBAL_HELP = `Global options:
  --gateway URL   the gateway (env SKIFF_GATEWAY, default http://127.0.0.1:8080)
  --key KEY       API key, sent as "Authorization: Bearer KEY" (env SKIFF_API_KEY)
  --json          machine-readable output on stdout
  -q, --quiet     no progress on stderr
  -h, --help      help for the command`;

/** Global options that take a value, so the word after them is not the command. */
const VALUE_OPTIONS = new Set(['--gateway', '--key']);

/** Finds the command word: the first argument that is neither an option nor a global option's value. */
export function splitCommand(argv: readonly string[]): { command: string | undefined; rest: string[] } {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') break;
    if (arg.startsWith('-')) {
      if (VALUE_OPTIONS.has(arg)) i++;
      continue;
    }
    return { command: arg, rest: [...argv.slice(0, i), ...argv.slice(i + 1)] };
  }
  return { command: undefined, rest: [...argv] };
}

export interface Parsed {
  values: Values;
  positionals: string[];
}

/** util.parseArgs, strict, with its errors turned into usage errors that point at --help. */
export function parse(args: readonly string[], options: OptionSpecs, command?: string): Parsed {
  try {
    const { values, positionals } = parseArgs({ args: [...args], options: { ...GLOBAL_OPTIONS, ...options }, allowPositionals: true, strict: true });
    return { values: values as Values, positionals };
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS')) throw error;
    const message = (error as Error).message;
    // parseArgs' own wording for an unknown option is long and mentions `--`; keep what matters.
    const unknown = code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /'(-[^']*)'/.exec(message)?.[1] : undefined;
    throw new UsageError(unknown !== undefined ? `unknown option ${unknown}` : message, command);
  }
}

export function str(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

export function strs(values: Values, name: string): string[] {
  const value = values[name];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

export function bool(values: Values, name: string): boolean {
  return values[name] === true;
}

/** An integer flag (`--memory 256`); range checks are the gateway's, which names the field. */
export function int(values: Values, name: string, command: string): number | undefined {
  const raw = str(values, name);
  if (raw === undefined) return undefined;
  if (!/^-?\d+$/.test(raw.trim())) throw new UsageError(`--${name} must be a whole number, not ${JSON.stringify(raw)}`, command);
  return Number(raw.trim());
}

/** `--env K=V` pairs, the later of two equal keys winning. */
export function envPairs(pairs: readonly string[], command: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--env takes KEY=VALUE, not ${JSON.stringify(pair)}`, command);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return env;
}

/** Exactly `names.length` positional arguments, named for the error message. */
export function positionals(parsed: Parsed, names: readonly string[], command: string): string[] {
  const got = parsed.positionals;
  if (got.length < names.length) throw new UsageError(`missing ${names.slice(got.length).join(' ')}`, command);
  if (got.length > names.length) throw new UsageError(`unexpected argument ${JSON.stringify(got[names.length])}`, command);
  return got;
}

export const FUNCTION_NAME = /^[a-z][a-z0-9-]{0,62}$/;

/** A function name argument, checked here so a typo is a usage error rather than a 400. */
export function functionName(name: string, command: string): string {
  if (!FUNCTION_NAME.test(name)) {
    throw new UsageError(`${JSON.stringify(name)} is not a function name (a lowercase letter, then up to 62 lowercase letters, digits or -)`, command);
  }
  return name;
}

export const WORKER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** A worker id argument (as the gateway spells them: letters, digits, _ . -, at most 63). */
export function workerId(id: string, command: string): string {
  if (!WORKER_ID.test(id))
    throw new UsageError(`${JSON.stringify(id)} is not a worker id (letters, digits, _ . -, at most 63); 'skiff workers' lists them`, command);
  return id;
}

/** A positive whole number argument or flag value. */
export function positiveInt(raw: string, what: string, command: string): number {
  const text = raw.trim();
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    throw new UsageError(`${what} must be a whole number from 1, not ${JSON.stringify(raw)}`, command);
  }
  return Number(text);
}

/** A tenant name, as the gateway spells them (infra/tenancy/quotas.ts). */
export const TENANT = new RegExp(TENANT_NAME);

/** A tenant name argument or --tenant value. */
export function tenantName(name: string, command: string): string {
  if (!TENANT.test(name))
    throw new UsageError(`${JSON.stringify(name)} is not a tenant name (a lowercase letter, then up to 62 lowercase letters, digits or -)`, command);
  return name;
}

/**
 * A command with verbs (`skiff keys create ...`): the verb, `fallback` when none is given, and the
 * positionals after it. An unknown verb is a usage error naming the known ones.
 */
export function verb(parsed: Parsed, verbs: readonly string[], fallback: string, command: string): { verb: string; rest: Parsed } {
  const [first, ...others] = parsed.positionals;
  const chosen = first ?? fallback;
  if (!verbs.includes(chosen)) throw new UsageError(`unknown ${command} command ${JSON.stringify(chosen)}; it is one of ${verbs.join(', ')}`, command);
  return { verb: chosen, rest: { values: parsed.values, positionals: first === undefined ? [] : others } };
}

/** Refuses options given to a verb that does not take them (`skiff keys ls --role admin`). */
export function onlyFor(values: Values, options: readonly string[], verbName: string, command: string): void {
  const given = options.find((name) => values[name] !== undefined);
  if (given !== undefined) throw new UsageError(`--${given} does not apply to '${command} ${verbName}'`, command);
}
