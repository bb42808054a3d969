/** skiff logs NAME: a function's console output, of one invocation or all, and followed live. */
import { UsageError, bool, functionName, int, positionals, str } from '../args.js';
import { ConnectionError, type LogLine, type LogsQuery } from '../client.js';
import type { Command, Context } from './command.js';

export const logs: Command = {
  name: 'logs',
  summary: "print a function's logs, or follow them",
  help: `Usage: skiff logs NAME [-f] [--invocation ID] [--since TIME] [--limit N]

Prints what the function wrote to stdout and stderr, oldest first, one line each:
  TIME [INVOCATION] STREAM TEXT
where INVOCATION is - for output made outside a call (while the code loads). By default the
newest 1000 lines; with -f, those and then new lines as the function writes them, until Ctrl-C.
With --json: each line as the gateway's JSON object ({"at","version","invocationId","instance",
"stream","text"}), one per line.

Options:
  -f, --follow        keep printing new lines as they come
  --invocation ID     only this invocation's lines ('skiff invoke' prints the id on stderr)
  --since TIME        only lines from TIME on: an ISO date (2025-01-02T03:04:05Z), milliseconds
                      since the epoch, or a duration ago (30s, 10m, 2h, 1d)
  --limit N           at most the newest N lines (1 to 10000; default 1000)

Examples:
  skiff logs hello --invocation V1StGXR8_Z5jdHi6B-myT
  skiff logs hello -f --since 10m`,
  options: {
    follow: { type: 'boolean', short: 'f' },
    invocation: { type: 'string' },
    since: { type: 'string' },
    limit: { type: 'string' },
  },
  async run(ctx, parsed) {
    const [name] = positionals(parsed, ['NAME'], 'logs') as [string];
    functionName(name, 'logs');
    const { values } = parsed;
    const query: LogsQuery = {};
    const invocation = str(values, 'invocation');
    if (invocation !== undefined) {
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(invocation)) throw new UsageError(`--invocation ${JSON.stringify(invocation)} is not an invocation id`, 'logs');
      query.invocation = invocation;
    }
    const since = str(values, 'since');
    if (since !== undefined) query.since = parseSince(since, Date.now());
    const limit = int(values, 'limit', 'logs');
    if (limit !== undefined) {
      if (limit < 1 || limit > 10000) throw new UsageError(`--limit must be from 1 to 10000, not ${limit}`, 'logs');
      query.limit = limit;
    }

    if (!bool(values, 'follow')) {
      for (const line of await ctx.client.logs(name, query)) print(ctx, JSON.stringify(line), line);
      return;
    }
    if (!ctx.out.quiet) ctx.out.note(`following ${name}'s logs; Ctrl-C to stop`);
    await ctx.client.followLogs(name, query, (raw, line) => print(ctx, raw, line));
    // The stream has no end of its own: the gateway closed it.
    throw new ConnectionError(
      ctx.client.gateway,
      new Error('stream ended'),
      `the gateway at ${ctx.client.gateway} ended the log stream; it may be stopping or restarting`,
    );
  },
};

function print(ctx: Context, raw: string, line: LogLine): void {
  if (ctx.out.json) ctx.out.line(raw);
  else ctx.out.line(`${line.at} [${line.invocationId ?? '-'}] ${line.stream} ${line.text}`);
}

const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** --since as the gateway takes it: ISO dates and epoch milliseconds as given, durations made absolute. */
export function parseSince(raw: string, now: number): string {
  const text = raw.trim();
  if (/^\d+$/.test(text)) return text;
  const duration = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text);
  if (duration) return String(Math.floor(now - Number(duration[1]) * (UNITS[duration[2] as string] ?? 1)));
  if (Number.isFinite(Date.parse(text))) return text;
  throw new UsageError(`--since takes an ISO date, milliseconds since the epoch or a duration such as 10m, not ${JSON.stringify(raw)}`, 'logs');
}
