/** skiff invoke NAME: call a function with a JSON event and print what it returned. */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { UsageError, bool, functionName, positionals, str } from '../args.js';
import type { Context, Command } from './command.js';

export const invoke: Command = {
  name: 'invoke',
  summary: 'call a function with a JSON event and print its result',
  help: `Usage: skiff invoke NAME [--data JSON | --data @FILE | --data @-] [--async]

Calls the function with the event given by --data (JSON text, a file holding JSON, or - for
stdin; no --data sends no event, which the handler sees as null) and prints the handler's return
value as JSON. A handler that throws makes skiff exit 1 with a FunctionError and its stack.

Options:
  --data JSON|@FILE  the event
  --async            queue the call and print its invocation id instead of waiting

The invocation id goes to stderr (unless --quiet): 'skiff logs NAME --invocation ID' prints what
the call wrote.

Examples:
  skiff invoke hello --data '{"name":"x"}'
  skiff invoke report --data @event.json --async`,
  options: {
    data: { type: 'string' },
    async: { type: 'boolean' },
  },
  async run(ctx, parsed) {
    const [name] = positionals(parsed, ['NAME'], 'invoke') as [string];
    functionName(name, 'invoke');
    const event = await readEvent(ctx, str(parsed.values, 'data'));

    if (bool(parsed.values, 'async')) {
      const queued = await ctx.client.invokeAsync(name, event);
      if (ctx.out.json) {
        ctx.out.value(queued);
        return;
      }
      ctx.out.line(queued.id);
      if (!ctx.out.quiet) ctx.out.note(`queued; its outcome: GET ${ctx.client.gateway}/v1/invocations/${queued.id}`);
      return;
    }

    const result = await ctx.client.invoke(name, event);
    // The id finds the call's output: skiff logs NAME --invocation ID.
    if (!ctx.out.quiet && result.invocationId !== undefined) {
      ctx.out.note(`invocation ${result.invocationId}${result.coldStart ? ' (cold start)' : ''}`);
    }
    const value: unknown = result.body === '' ? null : JSON.parse(result.body);
    if (ctx.out.json) ctx.out.value(value);
    else ctx.out.line(JSON.stringify(value, null, 2));
  },
};

/** The event as JSON text, checked here so a typo is a usage error, not a 400. */
async function readEvent(ctx: Context, data: string | undefined): Promise<string | undefined> {
  if (data === undefined) return undefined;
  let text = data;
  let from = '--data';
  if (data.startsWith('@')) {
    const file = data.slice(1);
    if (file === '') throw new UsageError('--data @ needs a file name (or @- for stdin)', 'invoke');
    from = file === '-' ? 'stdin' : file;
    try {
      text = file === '-' ? await readStream(ctx.stdin) : await readFile(resolve(ctx.cwd, file), 'utf8');
    } catch (error) {
      throw new UsageError(`--data ${data}: ${(error as Error).message}`, 'invoke');
    }
  }
  try {
    JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${from} is not JSON (${(error as Error).message}); a string must be quoted: --data '"text"'`, 'invoke');
  }
  return text;
}

async function readStream(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}
