/** skiff rollback NAME VERSION: make an earlier (or any existing) version current again. */
import { functionName, positionals, positiveInt } from '../args.js';
import { ApiError } from '../client.js';
import { withAbsoluteUrl, type Command } from './command.js';

export const rollback: Command = {
  name: 'rollback',
  summary: 'make an existing version of a function current again',
  help: `Usage: skiff rollback NAME VERSION

Makes VERSION, one of the function's existing versions ('skiff versions NAME' lists them), its
current version: every call made after this command returns runs it, with the settings it was
deployed with (memory, timeout, env, auth...), and instances of other versions are retired. No
new version is made; the next deploy still gets the next new number. With --json: the function
as 'skiff info --json' prints it.

Examples:
  skiff rollback api 3`,
  options: {},
  async run(ctx, parsed) {
    const [name, versionArg] = positionals(parsed, ['NAME', 'VERSION'], 'rollback') as [string, string];
    functionName(name, 'rollback');
    const version = positiveInt(versionArg, 'VERSION', 'rollback');
    let info;
    try {
      info = await ctx.client.rollback(name, version);
    } catch (error) {
      if (error instanceof ApiError && error.code === 'NotFound' && error.field === 'version') error.hint = `'skiff versions ${name}' lists its versions`;
      throw error;
    }
    if (ctx.out.json) {
      ctx.out.value(withAbsoluteUrl(ctx, info));
      return;
    }
    ctx.out.line(`rolled back ${info.name} to version ${info.version}`);
    ctx.out.line(`url: ${ctx.client.functionUrl(info)}`);
  },
};
