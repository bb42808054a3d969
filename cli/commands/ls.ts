/** skiff ls: the deployed functions (an admin key: every tenant's, with their tenant). */
import { positionals, str, tenantName } from '../args.js';
import { ApiError } from '../client.js';
import { withAbsoluteUrl, type Command, type Context } from './command.js';
import { formatTime } from './info.js';

export const ls: Command = {
  name: 'ls',
  summary: 'list functions',
  help: `Usage: skiff ls [--tenant T]

Lists the deployed functions: name, current version, runtime, memory, timeout, last deploy. A
key sees its own tenant's functions; an admin key sees every tenant's, with a TENANT column.

Options:
  --tenant T   only tenant T's functions (admin keys)
With --json: {"functions":[...]}, each as 'skiff info --json' prints it (with its "tenant").`,
  options: { tenant: { type: 'string' } },
  async run(ctx, parsed) {
    positionals(parsed, [], 'ls');
    const tenant = str(parsed.values, 'tenant');
    if (tenant !== undefined) tenantName(tenant, 'ls');
    const functions = tenant === undefined ? await ctx.client.listFunctions() : await ctx.client.listFunctionsOf(tenant);
    if (ctx.out.json) {
      ctx.out.value({ functions: functions.map((f) => withAbsoluteUrl(ctx, f)) });
      return;
    }
    if (functions.length === 0) {
      ctx.out.line(tenant === undefined ? 'no functions; deploy one with: skiff deploy DIR' : `no functions in tenant ${tenant}`);
      return;
    }
    // Only an admin's list spans tenants; asked after the list, so the usual case costs one request less when empty.
    const withTenant = await isAdmin(ctx);
    ctx.out.table([
      ['NAME', ...(withTenant ? ['TENANT'] : []), 'VERSION', 'RUNTIME', 'MEMORY', 'TIMEOUT', 'DEPLOYED'],
      ...functions.map((f) => [
        f.name,
        ...(withTenant ? [f.tenant ?? '-'] : []),
        String(f.version),
        f.runtime,
        `${f.memoryMb} MB`,
        `${f.timeoutMs} ms`,
        formatTime(f.updatedAt),
      ]),
    ]);
  },
};

/** Whether the key is an admin's; a gateway from before tenants (no /v1/whoami) has none. */
async function isAdmin(ctx: Context): Promise<boolean> {
  try {
    return (await ctx.client.whoami()).role === 'admin';
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.code === 'BadResponse')) return false;
    throw error;
  }
}
