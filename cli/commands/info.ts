/** skiff info NAME: a function's current version and settings. */
import { functionName, positionals } from '../args.js';
import { formatBytes } from '../output.js';
import { withAbsoluteUrl, type Command } from './command.js';
import type { FunctionInfo } from '../client.js';

export const info: Command = {
  name: 'info',
  summary: 'describe a function',
  help: `Usage: skiff info NAME

Describes the function's current version: runtime, handler, limits, code, URL. Environment
variables are listed by name; --json prints everything, values included.`,
  options: {},
  async run(ctx, parsed) {
    const [name] = positionals(parsed, ['NAME'], 'info') as [string];
    functionName(name, 'info');
    const fn = await ctx.client.getFunction(name);
    if (ctx.out.json) {
      ctx.out.value(withAbsoluteUrl(ctx, fn));
      return;
    }
    const envNames = Object.keys(fn.env ?? {}).sort();
    const rows: [string, string][] = [
      ['name', fn.name],
      ['version', String(fn.version)],
      ['url', ctx.client.functionUrl(fn)],
      ['runtime', fn.runtime],
      ['handler', fn.handler],
      ['memory', `${fn.memoryMb} MB`],
      ['timeout', `${fn.timeoutMs} ms`],
      ['concurrency', String(fn.concurrency)],
      ['idle timeout', `${fn.idleTimeoutMs} ms`],
      ['min warm', String(fn.minWarm)],
      ['max instances', String(fn.maxInstances)],
      ['auth', fn.auth === 'key' ? 'key (calls need an API key)' : (fn.auth ?? 'none')],
      ['env', envNames.length > 0 ? envNames.join(', ') : '(none)'],
      ['schedules', (fn.schedules ?? []).length > 0 ? fn.schedules.map((s) => ('everyMs' in s ? `every ${s.everyMs} ms` : s.expression)).join('; ') : '(none)'],
      ['cors', fn.cors ? corsLine(fn.cors) : '(none)'],
      ['image', fn.image],
      ['code', fn.codeSha256 ? `${formatBytes(fn.codeSize)} zip, sha256 ${fn.codeSha256}` : '(from the image)'],
      ['created', formatTime(fn.createdAt)],
      ['deployed', formatTime(fn.updatedAt)],
    ];
    const width = Math.max(...rows.map(([key]) => key.length));
    for (const [key, value] of rows) ctx.out.line(`${key.padEnd(width)}  ${value}`);
  },
};

function corsLine(cors: NonNullable<FunctionInfo['cors']>): string {
  const list = (values: readonly string[]): string => (values.length > 0 ? values.join(' ') : '-');
  return `origins ${list(cors.allowOrigins)}; methods ${list(cors.allowMethods)}; headers ${list(cors.allowHeaders)}; expose ${list(cors.exposeHeaders)}; max age ${cors.maxAge} s${cors.allowCredentials ? '; credentials' : ''}`;
}

/** An API timestamp as `2025-01-02 03:04:05Z`; anything unexpected as it came. */
export function formatTime(value: string | undefined): string {
  if (!value) return '-';
  const date = new Date(value);
  return Number.isNaN(date.getTime())
    ? String(value)
    : date
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, 'Z');
}
