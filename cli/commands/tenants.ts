/**
 * skiff tenants [ls|show|create|set|rm]: the tenants that own functions, keys and quotas (admin
 * keys only). Quotas are flags named after the API's fields (`maxMemoryMb` → `--max-memory-mb`).
 */
import { UsageError, onlyFor, positionals, str, tenantName, verb, type OptionSpecs, type Values } from '../args.js';
import { ApiError, type QuotaChanges, type TenantView } from '../client.js';
import { QUOTA_NAMES, type TenantQuotas } from '../../infra/tenancy/quotas.js';
import type { Command, Context } from './command.js';
import { formatTime } from './info.js';
import { whoMay } from './whoami.js';

type QuotaName = keyof TenantQuotas;

/** `maxMemoryMb` → `max-memory-mb`. */
const flagOf = (name: QuotaName): string => name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const QUOTA_FLAGS = QUOTA_NAMES.map(flagOf);
const options: OptionSpecs = Object.fromEntries(QUOTA_FLAGS.map((flag) => [flag, { type: 'string' }]));

const VERBS = ['ls', 'show', 'create', 'set', 'rm'] as const;
const ADMIN_ONLY = 'only admin keys manage tenants';

export const tenants: Command = {
  name: 'tenants',
  summary: 'list, create, change and delete tenants and their quotas (admin)',
  help: `Usage: skiff tenants [ls]
       skiff tenants show NAME
       skiff tenants create NAME [--QUOTA N ...]
       skiff tenants set NAME --QUOTA N|default ...
       skiff tenants rm NAME

A tenant owns functions, API keys and quotas; every key belongs to one (docs/SECURITY.md). Only
admin keys manage tenants.
  ls      the tenants: functions, the main quotas (* marks a value the tenant set itself; the
          others follow the platform's defaults), when each was made
  show    one tenant and all its quotas
  create  a new tenant, with quotas of its own where given
  set     change quotas; "default" makes one follow the platform's default again
  rm      delete a tenant and its keys; it must own no function (Conflict otherwise)

Quotas (whole numbers):
  --calls-per-second N           calls per second to its functions, over all gateways (429 past it)
  --max-instances N              its instances, busy and idle, at once
  --max-memory-mb N              the memory of those instances together, MiB (at least 64)
  --max-functions N              functions it may own (403 QuotaExceeded at deploy past it)
  --max-log-lines N              log lines kept; the oldest are pruned
  --max-invocation-records N     invocation records kept; the oldest are pruned
  --max-versions-per-function N  versions kept per function; the oldest are pruned
With --json: {"tenants":[...]} for ls, the tenant for show, create and set, {"name","deleted"}
for rm, as the gateway answers.

Examples:
  skiff tenants create acme --calls-per-second 50 --max-functions 20
  skiff tenants set acme --max-memory-mb 4096 --calls-per-second default`,
  options,
  async run(ctx, parsed) {
    const { verb: chosen, rest } = verb(parsed, VERBS, 'ls', 'tenants');
    const { values } = rest;
    if (chosen !== 'create' && chosen !== 'set') onlyFor(values, QUOTA_FLAGS, chosen, 'tenants');
    if (chosen === 'ls') {
      positionals(rest, [], 'tenants');
      return list(ctx, await whoMay(ctx.client.listTenants(), ADMIN_ONLY));
    }
    const [name] = positionals(rest, ['NAME'], 'tenants') as [string];
    tenantName(name, 'tenants');
    switch (chosen) {
      case 'show':
        return describe(ctx, await whoMay(ctx.client.getTenant(name), ADMIN_ONLY));
      case 'create': {
        const quotas = quotaValues(values, false) as Partial<TenantQuotas>;
        const tenant = await whoMay(ctx.client.createTenant(name, quotas), ADMIN_ONLY);
        if (!ctx.out.json) ctx.out.line(`created tenant ${tenant.name}`);
        return describe(ctx, tenant);
      }
      case 'set': {
        const changes = quotaValues(values, true);
        if (Object.keys(changes).length === 0) throw new UsageError(`'tenants set' needs at least one quota, e.g. --max-functions 20`, 'tenants');
        const tenant = await whoMay(ctx.client.setTenantQuotas(name, changes), ADMIN_ONLY);
        if (!ctx.out.json) ctx.out.line(`updated tenant ${tenant.name}`);
        return describe(ctx, tenant);
      }
      case 'rm': {
        let result;
        try {
          result = await whoMay(ctx.client.deleteTenant(name), ADMIN_ONLY);
        } catch (error) {
          if (error instanceof ApiError && error.code === 'Conflict')
            error.hint = `'skiff ls --tenant ${name}' lists its functions; 'skiff rm NAME' deletes one`;
          throw error;
        }
        if (ctx.out.json) ctx.out.value(result);
        else ctx.out.line(`deleted tenant ${name} and its keys`);
        return;
      }
    }
  },
};

/** The quota flags given, as API field names; with `allowDefault`, "default" is null (follow the default). */
function quotaValues(values: Values, allowDefault: boolean): QuotaChanges {
  const changes: QuotaChanges = {};
  for (const name of QUOTA_NAMES) {
    const flag = flagOf(name);
    const raw = str(values, flag);
    if (raw === undefined) continue;
    if (allowDefault && raw.trim() === 'default') {
      changes[name] = null;
      continue;
    }
    if (!/^\d+$/.test(raw.trim()) || Number(raw) < 1 || !Number.isSafeInteger(Number(raw))) {
      throw new UsageError(`--${flag} must be a whole number from 1${allowDefault ? ' or "default"' : ''}, not ${JSON.stringify(raw)}`, 'tenants');
    }
    changes[name] = Number(raw.trim());
  }
  return changes;
}

function list(ctx: Context, all: TenantView[]): void {
  if (ctx.out.json) {
    ctx.out.value({ tenants: all });
    return;
  }
  if (all.length === 0) {
    ctx.out.line('no tenants');
    return;
  }
  const quota = (t: TenantView, name: QuotaName, unit = ''): string => `${t.quotas[name]}${unit}${t.ownQuotas[name] !== undefined ? '*' : ''}`;
  ctx.out.table([
    ['NAME', 'FUNCTIONS', 'CALLS/S', 'INSTANCES', 'MEMORY', 'CREATED'],
    ...[...all]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((t) => [
        t.name,
        `${t.functions}/${quota(t, 'maxFunctions')}`,
        quota(t, 'callsPerSecond'),
        quota(t, 'maxInstances'),
        quota(t, 'maxMemoryMb', ' MB'),
        formatTime(t.createdAt),
      ]),
  ]);
}

function describe(ctx: Context, tenant: TenantView): void {
  if (ctx.out.json) {
    ctx.out.value(tenant);
    return;
  }
  const rows: string[][] = [
    ['name', tenant.name, ''],
    ['functions', String(tenant.functions), ''],
    ['created', formatTime(tenant.createdAt), ''],
    ...QUOTA_NAMES.map((name) => [flagOf(name), String(tenant.quotas[name]), tenant.ownQuotas[name] !== undefined ? "this tenant's" : 'default']),
  ];
  ctx.out.table(rows);
}
