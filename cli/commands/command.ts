/** What a command is: its help, its own options, and what it does. */
import type { OptionSpecs, Parsed } from '../args.js';
import type { SkiffClient } from '../client.js';
import type { Output } from '../output.js';

export interface Context {
  client: SkiffClient;
  out: Output;
  /** Where relative paths (DIR, --data @file) are read from. */
  cwd: string;
  /** Read for `--data @-`. */
  stdin: NodeJS.ReadableStream;
}

export interface Command {
  name: string;
  /** One line for `skiff --help`. */
  summary: string;
  /** The command's help: usage line, description, its options, examples (global options are appended). */
  help: string;
  options: OptionSpecs;
  run(ctx: Context, parsed: Parsed): Promise<void>;
}

/** A function description as printed with --json: its `url` made absolute. */
export function withAbsoluteUrl<T extends { name: string; url?: string }>(ctx: Context, info: T): T {
  return { ...info, url: ctx.client.functionUrl(info) };
}
