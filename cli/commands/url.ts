/** skiff url NAME: the function's absolute URL as the gateway describes it (on the functions' origin), checked to exist. */
import { functionName, positionals } from '../args.js';
import type { Command } from './command.js';

export const url: Command = {
  name: 'url',
  summary: "print a function's URL",
  help: `Usage: skiff url NAME

Prints the URL the function answers on, on the functions' own origin (not the API's): any
method on it (and on any path below it) becomes a Lambda function URL event. Fails with FunctionNotFound if the function does not exist.

Example:
  curl "$(skiff url hello)/greet?name=x"`,
  options: {},
  async run(ctx, parsed) {
    const [name] = positionals(parsed, ['NAME'], 'url') as [string];
    functionName(name, 'url');
    const info = await ctx.client.getFunction(name);
    const address = ctx.client.functionUrl(info);
    if (ctx.out.json) ctx.out.value({ name: info.name, url: address });
    else ctx.out.line(address);
  },
};
