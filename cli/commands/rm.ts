/** skiff rm NAME: delete a function (the gateway stops its instances). */
import { functionName, positionals } from '../args.js';
import type { Command } from './command.js';

export const rm: Command = {
  name: 'rm',
  summary: 'delete a function',
  help: `Usage: skiff rm NAME

Deletes the function and all its versions at once; its running instances are stopped. There is
no confirmation and no undo: deploying the same name again starts over at version 1.`,
  options: {},
  async run(ctx, parsed) {
    const [name] = positionals(parsed, ['NAME'], 'rm') as [string];
    functionName(name, 'rm');
    const result = await ctx.client.deleteFunction(name);
    if (ctx.out.json) ctx.out.value(result);
    else ctx.out.line(`deleted ${result.name}`);
  },
};
