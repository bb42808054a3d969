/**
 * Secrets sealed under the platform key: they open under it (and under it as the previous key
 * after a rotation), and fail by kind under another key, for another owner, or altered.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isHostError } from '../../infra/host-error.js';
import { SecretBox } from '../../infra/secrets/secret-box.js';
import { ensurePlatformKey, openPlatformKeys } from '../../infra/secrets/platform-key.js';
import { ApiKeys } from '../../infra/db/api-keys.js';
import type { Database } from '../../infra/db/database.js';

function reason(open: () => unknown): string | undefined {
  try {
    open();
  } catch (error) {
    if (isHostError(error, 'platform-key')) return error.reason;
    throw error;
  }
  return undefined;
}

t.test('round trip; the sealed value holds no plain text', async (t) => {
  const box = new SecretBox(randomBytes(32));
  const sealed = box.seal('the secret', 'key1');
  t.notMatch(sealed, /the secret/);
  t.equal(box.open(sealed, 'key1'), 'the secret');
  t.not(box.seal('the secret', 'key1'), sealed, 'a fresh nonce each time');
});

t.test('another key, another owner, an altered value or a malformed one fail by kind', async (t) => {
  const key = randomBytes(32);
  const sealed = new SecretBox(key).seal('the secret', 'key1');
  t.equal(
    reason(() => new SecretBox(randomBytes(32)).open(sealed, 'key1')),
    'UnknownPlatformKey',
  );
  t.equal(
    reason(() => new SecretBox(key).open(sealed, 'key2')),
    'NotAuthentic',
    'moved to another row',
  );
  const parts = sealed.split('.');
  const body = Buffer.from(parts[4] ?? '', 'base64url');
  body[0] = (body[0] ?? 0) ^ 1;
  parts[4] = body.toString('base64url');
  t.equal(
    reason(() => new SecretBox(key).open(parts.join('.'), 'key1')),
    'NotAuthentic',
    'altered',
  );
  t.equal(
    reason(() => new SecretBox(key).open('plain text', 'key1')),
    'Malformed',
  );
});

t.test('rotation: the previous key opens, the current one seals', async (t) => {
  const old = randomBytes(32);
  const sealed = new SecretBox(old).seal('s', 'k');
  const rotated = new SecretBox(randomBytes(32), [old]);
  t.equal(rotated.open(sealed, 'k'), 's');
  t.ok(rotated.needsReseal(sealed));
  const again = rotated.seal('s', 'k');
  t.notOk(rotated.needsReseal(again));
  t.equal(
    reason(() => new SecretBox(old).open(again, 'k')),
    'UnknownPlatformKey',
    'the old key alone cannot open what the new one sealed',
  );
});

t.test('the key file is made once, mode 0600, and read back', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'platform-key-'));
  const file = join(dir, 'platform.key');
  t.ok(await ensurePlatformKey(file), 'made');
  const first = await readFile(file, 'utf8');
  t.notOk(await ensurePlatformKey(file), 'never overwritten');
  t.equal(await readFile(file, 'utf8'), first);
  t.equal((await stat(file)).mode & 0o777, 0o600);
  const { box, created } = await openPlatformKeys({ file, previousFile: undefined });
  t.notOk(created);
  t.equal(box.open(box.seal('x', 'y'), 'y'), 'x');
});

t.test('after a rotation, reseal moves every secret under the current key and leaves current ones alone', async (t) => {
  const old = randomBytes(32);
  const before = new SecretBox(old);
  const rows = [
    { id: 'aaaaaaaaaaaa', secret_sealed: before.seal('one', 'aaaaaaaaaaaa') },
    { id: 'bbbbbbbbbbbb', secret_sealed: before.seal('two', 'bbbbbbbbbbbb') },
  ];
  const next = randomBytes(32);
  const rotated = new SecretBox(next, [old]);
  rows.push({ id: 'cccccccccccc', secret_sealed: rotated.seal('three', 'cccccccccccc') });
  const updates: string[] = [];
  // The table, as far as reseal reads and writes it (this test is about the resealing, not PostgreSQL).
  const db = {
    query: async (text: string, values?: string[]) => {
      if (text.startsWith('SELECT')) return { rows };
      const row = rows.find((r) => r.id === values?.[0] && r.secret_sealed === values[2]);
      if (row && values?.[1]) {
        row.secret_sealed = values[1];
        updates.push(row.id);
      }
      return { rows: [], rowCount: row ? 1 : 0 };
    },
  } as unknown as Database;
  t.equal(await new ApiKeys(db, rotated).reseal(), 2);
  t.same(updates, ['aaaaaaaaaaaa', 'bbbbbbbbbbbb'], 'only those the previous key sealed');
  const only = new SecretBox(next);
  t.same(
    rows.map((r) => only.open(r.secret_sealed, r.id)),
    ['one', 'two', 'three'],
    'the new key alone opens them all',
  );
});
