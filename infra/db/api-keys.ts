/**
 * API keys: `sk_<id>_<secret>`. Each names a tenant and a role (infra/tenancy/roles.ts), may expire
 * and may be limited to some functions. Only a SHA-256 of the secret is stored (the secret is 32
 * random bytes, so a slow hash adds nothing); the id finds the row, a constant-time comparison
 * checks the secret, and only then is the key's use recorded. Verified keys are remembered for a
 * short while (a bounded map) so the check costs no query on the hot path; a deleted key stops
 * working within that time on every gateway, at once on the one that deleted it.
 *
 * AWS Signature Version 4 (the Lambda Invoke API, gateway/lambda/) is an HMAC keyed by the secret
 * itself, which a digest cannot give back: so each key made since also keeps its secret sealed
 * under the platform key (infra/secrets/secret-box.ts, AES-256-GCM, the key's id as additional
 * data), never in plain text. A key made before has none and cannot sign; its Bearer form works.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { nanoid } from 'nanoid';
import type { Database } from './database.js';
import type { Principal, Role } from '../tenancy/roles.js';
import type { SecretBox } from '../secrets/secret-box.js';

export interface ApiKeyInfo {
  id: string;
  name: string;
  tenant: string;
  role: Role;
  expiresAt: string | null;
  functions: string[] | null;
  createdAt: string;
  lastUsedAt: string | null;
}

export interface NewKey {
  name: string;
  tenant: string;
  role: Role;
  expiresAt?: Date | null;
  functions?: string[] | null;
}

const KEY = /^sk_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
const CACHE_MS = 10_000;
/** Verified keys remembered at once: a flood of distinct valid keys cannot grow the map past it. */
const CACHE_ENTRIES = 10_000;
/** Use is written at most this often per key: a hot key is not an UPDATE per call. */
const LAST_USED_EVERY_MS = 60_000;

interface Row {
  id: string;
  name: string;
  tenant: string;
  role: Role;
  expires_at: Date | null;
  functions: string[] | null;
  created_at: Date;
  last_used_at: Date | null;
}

/** What verifying a signature needs of a key: its caller, and the key (the signing secret) if it was sealed. */
export interface SigningKey {
  who: Principal;
  /** The whole key `sk_<id>_<secret>`; null for a key made before secrets were sealed. */
  key: string | null;
}

export class ApiKeys {
  private readonly verified = new Map<string, { who: Principal; until: number; expiresAt: number }>();
  private readonly signing = new Map<string, { key: SigningKey; until: number; expiresAt: number }>();
  private readonly usedAt = new Map<string, number>();

  constructor(
    private readonly db: Database,
    private readonly box: SecretBox,
    private readonly onError: (error: unknown) => void = () => undefined,
  ) {}

  /** Makes a key; the returned `key` is shown once and never stored. */
  async create(input: NewKey): Promise<{ id: string; key: string; info: ApiKeyInfo }> {
    const id = nanoid(12).replace(/[^A-Za-z0-9]/g, 'x');
    const secret = randomBytes(32).toString('base64url');
    const { rows } = await this.db.query<Row>(
      `INSERT INTO api_keys (id, name, secret_hash, secret_sealed, tenant, role, expires_at, functions) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       RETURNING id, name, tenant, role, expires_at, functions, created_at, last_used_at`,
      [id, input.name, digest(secret), this.box.seal(secret, id), input.tenant, input.role, input.expiresAt ?? null, input.functions ?? null],
    );
    const row = rows[0];
    if (!row) throw new Error('key insert returned no row');
    return { id, key: `sk_${id}_${secret}`, info: toInfo(row) };
  }

  /** The caller the key names if it is valid and not expired, else undefined. */
  async verify(key: string): Promise<Principal | undefined> {
    const now = Date.now();
    const cached = this.verified.get(key);
    if (cached && cached.until > now && cached.expiresAt > now) {
      this.noteUse(cached.who.keyId, now);
      return cached.who;
    }
    const match = KEY.exec(key);
    if (!match?.[1] || !match[2]) return undefined;
    const { rows } = await this.db.query<Row & { secret_hash: string }>({
      name: 'skiff-key-verify',
      text: 'SELECT id, name, tenant, role, expires_at, functions, created_at, last_used_at, secret_hash FROM api_keys WHERE id = $1',
      values: [match[1]],
    });
    const row = rows[0];
    if (!row) return undefined;
    if (!timingSafeEqual(Buffer.from(digest(match[2]), 'hex'), Buffer.from(row.secret_hash, 'hex'))) return undefined;
    const expiresAt = row.expires_at?.getTime() ?? Number.POSITIVE_INFINITY;
    if (expiresAt <= now) return undefined;
    const who: Principal = { keyId: row.id, tenant: row.tenant, role: row.role, functions: row.functions };
    if (this.verified.size >= CACHE_ENTRIES) this.verified.delete(this.verified.keys().next().value as string);
    this.verified.set(key, { who, until: now + CACHE_MS, expiresAt });
    this.noteUse(row.id, now);
    return who;
  }

  /**
   * The key of id `id` for verifying a signature made with it, if it exists and has not expired;
   * its use is recorded by `recordUse` once the signature matched. Remembered like verified keys.
   */
  async signingKey(id: string): Promise<SigningKey | undefined> {
    const now = Date.now();
    const cached = this.signing.get(id);
    if (cached && cached.until > now && cached.expiresAt > now) return cached.key;
    if (!/^[A-Za-z0-9]{12}$/.test(id)) return undefined;
    const { rows } = await this.db.query<Row & { secret_sealed: string | null }>({
      name: 'skiff-key-signing',
      text: 'SELECT id, name, tenant, role, expires_at, functions, created_at, last_used_at, secret_sealed FROM api_keys WHERE id = $1',
      values: [id],
    });
    const row = rows[0];
    if (!row) return undefined;
    const expiresAt = row.expires_at?.getTime() ?? Number.POSITIVE_INFINITY;
    if (expiresAt <= now) return undefined;
    const who: Principal = { keyId: row.id, tenant: row.tenant, role: row.role, functions: row.functions };
    const key: SigningKey = { who, key: row.secret_sealed === null ? null : `sk_${row.id}_${this.box.open(row.secret_sealed, row.id)}` };
    if (this.signing.size >= CACHE_ENTRIES) this.signing.delete(this.signing.keys().next().value as string);
    this.signing.set(id, { key, until: now + CACHE_MS, expiresAt });
    return key;
  }

  /**
   * Seals again under the current platform key every secret sealed under a previous one (a
   * rotation, docs/SECURITY.md); the number sealed again.
   */
  async reseal(): Promise<number> {
    const { rows } = await this.db.query<{ id: string; secret_sealed: string }>('SELECT id, secret_sealed FROM api_keys WHERE secret_sealed IS NOT NULL');
    let count = 0;
    for (const row of rows) {
      if (!this.box.needsReseal(row.secret_sealed)) continue;
      const secret = this.box.open(row.secret_sealed, row.id);
      // Only if unchanged meanwhile: another gateway resealing at once writes the same secret.
      await this.db.query('UPDATE api_keys SET secret_sealed = $2 WHERE id = $1 AND secret_sealed = $3', [
        row.id,
        this.box.seal(secret, row.id),
        row.secret_sealed,
      ]);
      count++;
    }
    return count;
  }

  async list(tenant?: string): Promise<ApiKeyInfo[]> {
    const { rows } = await this.db.query<Row>(
      `SELECT id, name, tenant, role, expires_at, functions, created_at, last_used_at FROM api_keys
       WHERE $1::text IS NULL OR tenant = $1 ORDER BY created_at, id`,
      [tenant ?? null],
    );
    return rows.map(toInfo);
  }

  async get(id: string): Promise<ApiKeyInfo | undefined> {
    const { rows } = await this.db.query<Row>('SELECT id, name, tenant, role, expires_at, functions, created_at, last_used_at FROM api_keys WHERE id = $1', [
      id,
    ]);
    return rows[0] ? toInfo(rows[0]) : undefined;
  }

  async count(): Promise<number> {
    const { rows } = await this.db.query<{ n: string }>('SELECT count(*) AS n FROM api_keys');
    return Number(rows[0]?.n ?? 0);
  }

  async delete(id: string): Promise<boolean> {
    for (const [key, entry] of this.verified) if (entry.who.keyId === id) this.verified.delete(key);
    this.signing.delete(id);
    const { rowCount } = await this.db.query('DELETE FROM api_keys WHERE id = $1', [id]);
    return (rowCount ?? 0) > 0;
  }

  /** Forgets the verified keys of a deleted tenant at once (its rows went with it). */
  forgetTenant(tenant: string): void {
    for (const [key, entry] of this.verified) if (entry.who.tenant === tenant) this.verified.delete(key);
    for (const [id, entry] of this.signing) if (entry.key.who.tenant === tenant) this.signing.delete(id);
  }

  /** Records that a key signed a request whose signature matched. */
  recordUse(id: string): void {
    this.noteUse(id, Date.now());
  }

  /** Records that the key was used (after its secret matched), off the call path and throttled. */
  private noteUse(id: string, now: number): void {
    const last = this.usedAt.get(id);
    if (last !== undefined && now - last < LAST_USED_EVERY_MS) return;
    if (this.usedAt.size >= CACHE_ENTRIES) this.usedAt.clear();
    this.usedAt.set(id, now);
    this.db.query('UPDATE api_keys SET last_used_at = now() WHERE id = $1', [id]).catch(this.onError);
  }
}

function toInfo(r: Row): ApiKeyInfo {
  return {
    id: r.id,
    name: r.name,
    tenant: r.tenant,
    role: r.role,
    expiresAt: r.expires_at?.toISOString() ?? null,
    functions: r.functions,
    createdAt: r.created_at.toISOString(),
    lastUsedAt: r.last_used_at?.toISOString() ?? null,
  };
}

function digest(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}
