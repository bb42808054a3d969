/**
 * skiff keys [ls|create|rm]: API keys (admin keys: every tenant's; owner keys: their own tenant's,
 * never admin keys). A key is shown once, when it is made: the platform keeps only its hash.
 */
import { UsageError, functionName, onlyFor, positionals, str, strs, tenantName, verb, type Values } from '../args.js';
import { ApiError, type CreatedKey, type KeyView, type NewKeyRequest } from '../client.js';
import { ROLES, type Role } from '../../infra/tenancy/roles.js';
import type { Command, Context } from './command.js';
import { formatTime } from './info.js';
import { whoMay } from './whoami.js';

const VERBS = ['ls', 'create', 'rm'] as const;
const MANAGERS = 'only admin and owner keys manage keys';
/** As the gateway spells key ids (the part after `sk_` of a key). */
const KEY_ID = /^[A-Za-z0-9]{1,64}$/;
const DURATION = /^(\d+)(m|h|d)$/;
const UNIT_MS: Readonly<Record<string, number>> = { m: 60_000, h: 3_600_000, d: 86_400_000 };

export const keys: Command = {
  name: 'keys',
  summary: 'list, create and revoke API keys (admin, owner)',
  help: `Usage: skiff keys [ls] [--tenant T]
       skiff keys create --name NAME --role ROLE [--tenant T] [--expires WHEN] [--function F ...]
       skiff keys rm ID

API keys name a tenant and a role (docs/SECURITY.md): admin (the platform and every tenant),
owner (everything in its tenant, its keys included), developer (deploy, call and read its
tenant's functions), invoker (call them, read the calls it made), viewer (read-only, no env
values). Admin keys manage every tenant's keys; owner keys their own tenant's, never admin keys.
  ls      the keys (an owner sees its tenant's): id, name, tenant, role, functions, expiry, use
  create  a new key; it is printed this once (the platform keeps only a hash of it)
  rm      revoke the key with this id at once (within 10 s on other gateways)

Options:
  --tenant T        ls: only tenant T's keys; create: the key's tenant (default: this key's)
  --name NAME       create: what the key is for (shown in lists and the audit trail)
  --role ROLE       create: ${ROLES.join(', ')}
  --expires WHEN    create: when it stops working, an ISO date-time (2027-01-31T00:00:00Z) or a
                    duration from now (30m, 12h, 90d); default never
  --function F      create: limit the key to function F (repeatable); default every function
With --quiet, create prints the key alone on stdout. With --json: {"keys":[...]} for ls, the
new key's description with "key" for create, {"id","deleted"} for rm.

Examples:
  skiff keys create --name ci --tenant acme --role developer --expires 90d
  export SKIFF_API_KEY=$(skiff keys create --name bot --role invoker --function hello --quiet)`,
  options: {
    tenant: { type: 'string' },
    name: { type: 'string' },
    role: { type: 'string' },
    expires: { type: 'string' },
    function: { type: 'string', multiple: true },
  },
  async run(ctx, parsed) {
    const { verb: chosen, rest } = verb(parsed, VERBS, 'ls', 'keys');
    const { values } = rest;
    const tenant = str(values, 'tenant');
    if (tenant !== undefined) tenantName(tenant, 'keys');
    switch (chosen) {
      case 'ls': {
        onlyFor(values, ['name', 'role', 'expires', 'function'], 'ls', 'keys');
        positionals(rest, [], 'keys');
        return list(ctx, await whoMay(ctx.client.listKeys(tenant), MANAGERS));
      }
      case 'create': {
        positionals(rest, [], 'keys');
        const request = newKey(values, tenant);
        return created(ctx, await whoMay(ctx.client.createKey(request), MANAGERS));
      }
      case 'rm': {
        onlyFor(values, ['tenant', 'name', 'role', 'expires', 'function'], 'rm', 'keys');
        const [id] = positionals(rest, ['ID'], 'keys') as [string];
        // Someone pasting the key itself: say so rather than send a secret in a URL.
        if (id.startsWith('sk_')) throw new UsageError("pass the key's id ('skiff keys ls' lists them), not the key itself", 'keys');
        if (!KEY_ID.test(id)) throw new UsageError(`${JSON.stringify(id)} is not a key id (letters and digits); 'skiff keys ls' lists them`, 'keys');
        let result;
        try {
          result = await whoMay(ctx.client.deleteKey(id), MANAGERS);
        } catch (error) {
          if (error instanceof ApiError && error.code === 'NotFound') error.hint = "'skiff keys ls' lists the keys";
          throw error;
        }
        if (ctx.out.json) ctx.out.value(result);
        else ctx.out.line(`revoked key ${id}`);
        return;
      }
    }
  },
};

function newKey(values: Values, tenant: string | undefined): NewKeyRequest {
  const name = str(values, 'name');
  if (name === undefined || name.trim() === '') throw new UsageError("'keys create' needs --name (what the key is for)", 'keys');
  const role = str(values, 'role');
  if (role === undefined) throw new UsageError(`'keys create' needs --role: ${ROLES.join(', ')}`, 'keys');
  if (!(ROLES as readonly string[]).includes(role)) throw new UsageError(`--role must be one of ${ROLES.join(', ')}, not ${JSON.stringify(role)}`, 'keys');
  const request: NewKeyRequest = { name, role: role as Role };
  if (tenant !== undefined) request.tenant = tenant;
  const expires = str(values, 'expires');
  if (expires !== undefined) request.expiresAt = expiry(expires, Date.now());
  const functions = strs(values, 'function');
  if (functions.length > 0) request.functions = [...new Set(functions.map((f) => functionName(f, 'keys')))];
  return request;
}

/** `--expires`: an ISO date-time as given, or a duration from `now` made one. */
export function expiry(raw: string, now: number): string {
  const text = raw.trim();
  const duration = DURATION.exec(text);
  if (duration) {
    const ms = Number(duration[1]) * (UNIT_MS[duration[2] as string] ?? 0);
    if (ms <= 0) throw new UsageError(`--expires must be in the future, not ${JSON.stringify(raw)}`, 'keys');
    return new Date(now + ms).toISOString();
  }
  if (!/^\d{4}-\d{2}-\d{2}T/.test(text) || !Number.isFinite(Date.parse(text))) {
    throw new UsageError(`--expires takes an ISO date-time (2027-01-31T00:00:00Z) or a duration (30m, 12h, 90d), not ${JSON.stringify(raw)}`, 'keys');
  }
  return text;
}

function created(ctx: Context, key: CreatedKey): void {
  const warning = `The key is shown only this once: store it now. Skiff keeps only a hash of it; if it is lost, revoke it ('skiff keys rm ${key.id}') and make another.`;
  if (ctx.out.json) {
    ctx.out.value(key);
    if (!ctx.out.quiet) ctx.out.note(warning);
    return;
  }
  // --quiet: the key alone, for $(...).
  if (ctx.out.quiet) {
    ctx.out.line(key.key);
    return;
  }
  ctx.out.line(`created key ${key.id} (${key.role} of tenant ${key.tenant})`);
  ctx.out.line();
  ctx.out.line(`    ${key.key}`);
  ctx.out.line();
  ctx.out.table([
    ['name', key.name],
    ['expires', key.expiresAt === null ? 'never' : formatTime(key.expiresAt)],
    ['functions', key.functions === null ? `every function of ${key.tenant}` : key.functions.join(', ')],
  ]);
  ctx.out.note(warning);
}

function list(ctx: Context, all: KeyView[]): void {
  if (ctx.out.json) {
    ctx.out.value({ keys: all });
    return;
  }
  if (all.length === 0) {
    ctx.out.line('no keys; make one with: skiff keys create --name NAME --role ROLE');
    return;
  }
  ctx.out.table([
    ['ID', 'NAME', 'TENANT', 'ROLE', 'FUNCTIONS', 'EXPIRES', 'LAST USED', 'CREATED'],
    ...[...all]
      .sort((a, b) => a.tenant.localeCompare(b.tenant) || a.createdAt.localeCompare(b.createdAt))
      .map((k) => [
        k.id,
        k.name,
        k.tenant,
        k.role,
        k.functions === null ? '*' : k.functions.join(','),
        k.expiresAt === null ? 'never' : formatTime(k.expiresAt),
        k.lastUsedAt === null ? 'never' : formatTime(k.lastUsedAt),
        formatTime(k.createdAt),
      ]),
  ]);
}
