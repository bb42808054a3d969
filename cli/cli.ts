/**
 * The `skiff` command line: finds the command, applies the global options, runs it, and turns
 * what went wrong into a message and an exit code: 0 ok, 1 the platform said no (or could not
 * be reached), 2 a usage error (bad flags or arguments, a missing directory, a bad skiff.json).
 */
import { readFileSync } from 'node:fs';
import { GLOBAL_HELP, UsageError, bool, parse, splitCommand, str } from './args.js';
import { ApiError, ConnectionError, SkiffClient } from './client.js';
import { COMMANDS } from './commands/index.js';
import type { Command } from './commands/command.js';
import { Output, type Streams } from './output.js';
import { PackError } from './pack.js';

export const DEFAULT_GATEWAY = 'http://127.0.0.1:8080';

export const EXIT_OK = 0;
export const EXIT_PLATFORM = 1;
export const EXIT_USAGE = 2;

export interface Environment extends Streams {
  env: Record<string, string | undefined>;
  cwd: string;
  stdin: NodeJS.ReadableStream;
}

const VERSION = readVersion();

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `skiff ${VERSION}: deploy, call and operate functions on a Skiff gateway

Usage: skiff COMMAND [ARGS] [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

${GLOBAL_HELP}
  --version       print skiff's version

Run 'skiff COMMAND --help' for a command's arguments and options.`;
}

export async function main(argv: readonly string[], environment: Environment): Promise<number> {
  const plain = new Output(environment, { json: false, quiet: false });
  let command: Command | undefined;
  try {
    const split = splitCommand(argv);
    let name = split.command;
    let rest = split.rest;
    if (name === 'help') {
      // `skiff help [COMMAND]` is `skiff [COMMAND] --help`.
      const inner = splitCommand(rest);
      name = inner.command;
      rest = [...inner.rest, '--help'];
    }
    if (name === undefined) {
      const { values } = parse(rest, {});
      if (bool(values, 'version')) {
        plain.line(VERSION);
        return EXIT_OK;
      }
      if (bool(values, 'help')) {
        plain.line(overview());
        return EXIT_OK;
      }
      plain.note(overview());
      return EXIT_USAGE;
    }
    command = COMMANDS.find((c) => c.name === name);
    if (!command) {
      throw new UsageError(`unknown command ${JSON.stringify(name)}; the commands are ${COMMANDS.map((c) => c.name).join(', ')}`);
    }
    const parsed = parse(rest, command.options, command.name);
    const { values } = parsed;
    if (bool(values, 'help')) {
      plain.line(`${command.help}\n\n${GLOBAL_HELP}`);
      return EXIT_OK;
    }
    const out = new Output(environment, { json: bool(values, 'json'), quiet: bool(values, 'quiet') });
    const key = str(values, 'key') ?? environment.env.SKIFF_API_KEY;
    const client = new SkiffClient({
      gateway: gatewayUrl(str(values, 'gateway') ?? environment.env.SKIFF_GATEWAY ?? DEFAULT_GATEWAY),
      key: key === '' ? undefined : key,
      userAgent: `skiff-cli/${VERSION}`,
    });
    await command.run({ client, out, cwd: environment.cwd, stdin: environment.stdin }, parsed);
    return EXIT_OK;
  } catch (error) {
    return report(plain, error, command);
  }
}

/** Prints what went wrong, in a form a person can act on, and says which exit code it is. */
function report(out: Output, error: unknown, command: Command | undefined): number {
  if (error instanceof UsageError) {
    out.note(`error: ${error.message}`);
    const about = error.command ?? command?.name;
    out.note(about ? `run 'skiff ${about} --help' for its usage` : "run 'skiff --help' for the commands");
    return EXIT_USAGE;
  }
  if (error instanceof PackError) {
    out.note(`error: ${error.message}`);
    return EXIT_USAGE;
  }
  if (error instanceof ApiError) {
    out.note(`error: ${error.code}: ${error.message}${error.field !== undefined ? ` (field: ${error.field})` : ''}`);
    const stack = userStack(error.handlerStack ?? []);
    if (stack.length > 0) for (const line of stack) out.note(`  ${line.startsWith('at ') ? '  ' : ''}${line}`);
    else if (error.errorType !== undefined) out.note(`  thrown: ${error.errorType}`);
    const hint = error.hint ?? HINTS[error.code];
    if (hint) out.note(hint);
    return EXIT_PLATFORM;
  }
  if (error instanceof ConnectionError) {
    out.note(`error: ${error.code}: ${error.message}`);
    return EXIT_PLATFORM;
  }
  out.note(`error: skiff failed unexpectedly: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  return EXIT_PLATFORM;
}

/** The handler's stack up to where the runtime called it: the rest is Skiff's, not the user's. */
function userStack(stack: readonly string[]): string[] {
  const lines = stack.map((line) => line.trim()).filter((line) => line !== '');
  const runtime = lines.findIndex((line) => line.startsWith('at ') && line.includes('/opt/skiff/runtime/'));
  return runtime === -1 ? lines : lines.slice(0, runtime);
}

const HINTS: Readonly<Record<string, string>> = {
  FunctionNotFound: "'skiff ls' lists the functions that exist",
  TooManyRequests: 'the function is at its limit of instances and calls; try again shortly, or deploy with a higher --max-instances or --concurrency',
  PayloadTooLarge: 'the request is larger than the gateway accepts (SKIFF_BODY_LIMIT_BYTES on the gateway)',
  Unauthorized: 'pass an API key with --key or SKIFF_API_KEY',
};

function gatewayUrl(raw: string): string {
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new UsageError(`the gateway ${JSON.stringify(raw)} is not a URL (e.g. http://127.0.0.1:8080)`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new UsageError(`the gateway ${JSON.stringify(raw)} must be an http:// or https:// URL`);
  if (parsed.search || parsed.hash) throw new UsageError(`the gateway ${JSON.stringify(raw)} must not have a query or fragment`);
  return parsed.href.replace(/\/+$/, '');
}

function readVersion(): string {
  try {
    // dist/cli/cli.js → the package's package.json.
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
