/** skiff versions NAME: every version of a function, newest first, the current one marked. */
import { functionName, positionals } from '../args.js';
import type { Command } from './command.js';
import { formatTime } from './info.js';

export const versions: Command = {
  name: 'versions',
  summary: "list a function's versions",
  help: `Usage: skiff versions NAME

Lists every version of the function, newest first: its number, whether calls run it now
(CURRENT *), runtime, handler, memory, timeout, auth, the start of its code's sha256 (versions
with the same code share it) and when it was deployed. 'skiff rollback NAME VERSION' makes
another one current. With --json: {"versions":[...]}, as the gateway answers.`,
  options: {},
  async run(ctx, parsed) {
    const [name] = positionals(parsed, ['NAME'], 'versions') as [string];
    functionName(name, 'versions');
    const list = await ctx.client.listVersions(name);
    if (ctx.out.json) {
      ctx.out.value({ versions: list });
      return;
    }
    ctx.out.table([
      ['VERSION', 'CURRENT', 'RUNTIME', 'HANDLER', 'MEMORY', 'TIMEOUT', 'AUTH', 'IMAGE', 'DEPLOYED'],
      ...list.map((v) => [
        String(v.version),
        v.current ? '*' : '',
        v.runtime,
        v.handler,
        `${v.memoryMb} MB`,
        `${v.timeoutMs} ms`,
        v.auth,
        shortImage(v.image),
        formatTime(v.createdAt),
      ]),
    ]);
  },
};

/** The first 12 hex digits of the image digest: enough to tell versions apart in a table. */
function shortImage(image: string): string {
  const at = image.indexOf('@sha256:');
  return at < 0 ? image : image.slice(at + '@sha256:'.length, at + '@sha256:'.length + 12);
}
