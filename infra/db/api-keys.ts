/**
 * API keys: `sk_<id>_<secret>`. Only a SHA-256 of the secret is stored (the secret is 32 random
 * bytes, so a slow hash adds nothing); the id finds the row, a constant-time comparison checks
 * the secret. Verified keys are remembered for a short while so the check costs no query on the
 * hot path; a deleted key stops working within that time on every gateway.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { nanoid } from 'nanoid';
import type { Database } from './database.js';

export interface ApiKeyInfo {
  id: string;
  name: string;
  createdAt: string;
  lastUsedAt: string | null;
}

const KEY = /^sk_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
const CACHE_MS = 10_000;

export class ApiKeys {
  private readonly verified = new Map<string, { id: string; until: number }>();

  constructor(private readonly db: Database) {}

  /** Makes a key; the returned `key` is shown once and never stored. */
  async create(name: string): Promise<{ id: string; key: string }> {
    const id = nanoid(12).replace(/[^A-Za-z0-9]/g, 'x');
    const secret = randomBytes(32).toString('base64url');
    await this.db.query('INSERT INTO api_keys (id, name, secret_hash) VALUES ($1, $2, $3)', [id, name, digest(secret)]);
    return { id, key: `sk_${id}_${secret}` };
  }

  /** The id of the key if it is valid, else undefined. */
  async verify(key: string): Promise<string | undefined> {
    const cached = this.verified.get(key);
    if (cached && cached.until > Date.now()) return cached.id;
    const match = KEY.exec(key);
    if (!match?.[1] || !match[2]) return undefined;
    const { rows } = await this.db.query<{ secret_hash: string }>(
      'UPDATE api_keys SET last_used_at = now() WHERE id = $1 RETURNING secret_hash',
      [match[1]],
    );
    const stored = rows[0]?.secret_hash;
    if (!stored) return undefined;
    const given = Buffer.from(digest(match[2]), 'hex');
    if (!timingSafeEqual(given, Buffer.from(stored, 'hex'))) return undefined;
    this.verified.set(key, { id: match[1], until: Date.now() + CACHE_MS });
    return match[1];
  }

  async list(): Promise<ApiKeyInfo[]> {
    const { rows } = await this.db.query('SELECT id, name, created_at, last_used_at FROM api_keys ORDER BY created_at');
    return (rows as Array<{ id: string; name: string; created_at: Date; last_used_at: Date | null }>).map((r) => ({
      id: r.id,
      name: r.name,
      createdAt: r.created_at.toISOString(),
      lastUsedAt: r.last_used_at?.toISOString() ?? null,
    }));
  }

  async count(): Promise<number> {
    const { rows } = await this.db.query<{ n: string }>('SELECT count(*) AS n FROM api_keys');
    return Number(rows[0]?.n ?? 0);
  }

  async delete(id: string): Promise<boolean> {
    for (const [key, entry] of this.verified) if (entry.id === id) this.verified.delete(key);
    const { rowCount } = await this.db.query('DELETE FROM api_keys WHERE id = $1', [id]);
    return (rowCount ?? 0) > 0;
  }
}

function digest(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}
