/** The role × action table: pure, read by every route's check, and printed in docs/SECURITY.md. */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { ACTIONS, ROLES, can, functionAccess, seesTenant, type Principal } from '../../infra/tenancy/roles.js';

const key = (role: Principal['role'], tenant = 'acme', functions: string[] | null = null): Principal => ({ keyId: 'k', tenant, role, functions });

t.test('what each role may do', async (t) => {
  t.ok(
    ROLES.every((role) => can('admin', 'functions:read') && (role === 'admin' || !can(role, 'tenants:manage'))),
    'only admins manage tenants',
  );
  t.notOk(can('viewer', 'functions:readEnv'), 'a viewer never reads env values');
  t.notOk(can('viewer', 'functions:invoke'), 'a viewer does not call');
  t.ok(can('invoker', 'functions:invoke'));
  t.notOk(can('invoker', 'functions:read'), 'an invoker reads nothing but its calls');
  t.notOk(can('developer', 'keys:manage'), 'a developer makes no keys');
  t.ok(can('owner', 'keys:manage'));
  for (const action of ['workers:manage', 'images:read', 'metrics:read'] as const) {
    t.same(
      ROLES.filter((role) => can(role, action)),
      ['admin'],
      `${action}: the platform's, admins only`,
    );
  }
});

t.test("another tenant's functions are hidden; a key's function list forbids the rest", async (t) => {
  t.equal(functionAccess(key('developer'), { name: 'a', tenant: 'acme' }), 'ok');
  t.equal(functionAccess(key('owner'), { name: 'a', tenant: 'rival' }), 'hidden');
  t.equal(functionAccess(key('admin', 'default'), { name: 'a', tenant: 'rival' }), 'ok', 'an admin sees every tenant');
  t.equal(functionAccess(key('invoker', 'acme', ['a']), { name: 'b', tenant: 'acme' }), 'forbidden');
  t.equal(functionAccess(key('invoker', 'acme', ['a']), { name: 'b', tenant: 'rival' }), 'hidden', 'hidden wins: nothing is said of another tenant');
  t.ok(seesTenant(key('admin', 'default'), 'rival'));
  t.notOk(seesTenant(key('owner'), 'rival'));
});

t.test('docs/SECURITY.md prints the same table', async (t) => {
  const doc = await readFile(new URL('../../../docs/SECURITY.md', import.meta.url), 'utf8');
  const table = doc.split('<!-- roles-table -->')[1]?.split('<!-- /roles-table -->')[0] ?? '';
  const rows = table.trim().split('\n').slice(2);
  const documented = Object.fromEntries(
    rows.map((row) => {
      const cells = row
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim());
      const action = (cells[0] ?? '').replaceAll('`', '');
      return [action, ROLES.filter((_, i) => cells[i + 1] === '✓')];
    }),
  );
  t.same(documented, Object.fromEntries(Object.entries(ACTIONS).map(([a, roles]) => [a, [...roles]])));
});
