/** skiff ls: the deployed functions. */
import { positionals } from '../args.js';
import { withAbsoluteUrl, type Command } from './command.js';
import { formatTime } from './info.js';

export const ls: Command = {
  name: 'ls',
  summary: 'list functions',
  help: `Usage: skiff ls

Lists the deployed functions: name, current version, runtime, memory, timeout, last deploy.
With --json: {"functions":[...]}, each as 'skiff info --json' prints it.`,
  options: {},
  async run(ctx, parsed) {
    positionals(parsed, [], 'ls');
    const functions = await ctx.client.listFunctions();
    if (ctx.out.json) {
      ctx.out.value({ functions: functions.map((f) => withAbsoluteUrl(ctx, f)) });
      return;
    }
    if (functions.length === 0) {
      ctx.out.line('no functions; deploy one with: skiff deploy DIR');
      return;
    }
    ctx.out.table([
      ['NAME', 'VERSION', 'RUNTIME', 'MEMORY', 'TIMEOUT', 'DEPLOYED'],
      ...functions.map((f) => [f.name, String(f.version), f.runtime, `${f.memoryMb} MB`, `${f.timeoutMs} ms`, formatTime(f.updatedAt)]),
    ]);
  },
};
