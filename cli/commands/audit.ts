/** skiff audit: who deployed, rolled back, deleted, made or revoked a key, changed a tenant, and when. */
import { UsageError, int, positionals, str, tenantName } from '../args.js';
import type { AuditEntry, AuditQuery } from '../client.js';
import type { Command } from './command.js';
import { formatTime } from './info.js';
import { whoMay } from './whoami.js';

export const audit: Command = {
  name: 'audit',
  summary: 'show the audit trail: who changed what, and when (admin, owner)',
  help: `Usage: skiff audit [--tenant T] [--limit N] [--before ID]

Lists the audit trail, newest first: deploys, rollbacks and deletes of functions, keys made and
revoked, tenants made, changed and deleted, each with the key that did it (- for the platform's
own bring-up) and the tenant it was about. An admin key sees every tenant's events, an owner key
its own tenant's.

Options:
  --tenant T    only tenant T's events (admin keys)
  --limit N     at most N events, 1 to 1000 (default 100)
  --before ID   only events older than event ID (the first column), to page back
With --json: {"events":[{"id","at","keyId","tenant","action","target","detail"}]}, as the
gateway answers.`,
  options: {
    tenant: { type: 'string' },
    limit: { type: 'string' },
    before: { type: 'string' },
  },
  async run(ctx, parsed) {
    positionals(parsed, [], 'audit');
    const { values } = parsed;
    const query: AuditQuery = {};
    const tenant = str(values, 'tenant');
    if (tenant !== undefined) query.tenant = tenantName(tenant, 'audit');
    const limit = int(values, 'limit', 'audit');
    if (limit !== undefined) {
      if (limit < 1 || limit > 1000) throw new UsageError(`--limit must be from 1 to 1000, not ${limit}`, 'audit');
      query.limit = limit;
    }
    const before = int(values, 'before', 'audit');
    if (before !== undefined) {
      if (before < 1) throw new UsageError(`--before must be an event id from 1, not ${before}`, 'audit');
      query.before = before;
    }
    const events = await whoMay(ctx.client.audit(query), 'only admin and owner keys read the audit trail');
    if (ctx.out.json) {
      ctx.out.value({ events });
      return;
    }
    if (events.length === 0) {
      ctx.out.line('no audit events');
      return;
    }
    ctx.out.table([
      ['ID', 'AT', 'TENANT', 'KEY', 'ACTION', 'TARGET', 'DETAIL'],
      ...events.map((e) => [String(e.id), formatTime(e.at), e.tenant, e.keyId ?? '-', e.action, e.target, detail(e)]),
    ]);
  },
};

/** `version=2 image=skiff/functions/x@sha256:…`: the event's detail as key=value pairs. */
function detail(event: AuditEntry): string {
  const pairs = Object.entries(event.detail ?? {}).map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  return pairs.join(' ') || '-';
}
