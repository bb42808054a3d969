/** skiff whoami: the key's id, tenant, role and the functions it is limited to. */
import { positionals } from '../args.js';
import { ApiError } from '../client.js';
import type { Command } from './command.js';

export const whoami: Command = {
  name: 'whoami',
  summary: "show the API key's tenant and role",
  help: `Usage: skiff whoami

Shows who the API key is: its id, its tenant, its role (admin, owner, developer, invoker or
viewer; docs/SECURITY.md says what each may do) and the functions it is limited to, if any.
With --json: {"keyId","tenant","role","functions"}, as the gateway answers (functions: null for
every function of the tenant).`,
  options: {},
  async run(ctx, parsed) {
    positionals(parsed, [], 'whoami');
    const me = await ctx.client.whoami();
    if (ctx.out.json) {
      ctx.out.value(me);
      return;
    }
    const rows: [string, string][] = [
      ['key', me.keyId],
      ['tenant', me.tenant],
      ['role', me.role],
      ['functions', me.functions === null ? `every function of ${me.tenant}` : me.functions.join(', ')],
    ];
    for (const [label, value] of rows) ctx.out.line(`${label.padEnd(9)}  ${value}`);
  },
};

/**
 * Runs `call`, and when the gateway answers 403 Forbidden adds what the command knows: who may do
 * it. The gateway's message already names the key's role ("a developer key may not do this").
 */
export async function whoMay<T>(call: Promise<T>, who: string): Promise<T> {
  try {
    return await call;
  } catch (error) {
    if (error instanceof ApiError && error.code === 'Forbidden' && error.hint === undefined) {
      error.hint = `${who}; 'skiff whoami' shows this key's tenant and role`;
    }
    throw error;
  }
}
