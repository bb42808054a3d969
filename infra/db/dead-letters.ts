/** Asynchronous calls that failed every attempt, kept in PostgreSQL until re-driven or deleted. */
import type { ErrorBody } from '../errors.js';
import type { Database } from './database.js';
import { jsonForPostgres } from './invocation-records.js';

export interface DeadLetter {
  id: string;
  functionName: string;
  functionVersion: number;
  event: unknown;
  error: ErrorBody;
  attempts: number;
  createdAt: string;
}

export class DeadLetters {
  constructor(private readonly db: Database) {}

  async add(letter: Omit<DeadLetter, 'createdAt'>): Promise<void> {
    await this.db.query(
      `INSERT INTO dead_letters (id, function_name, function_version, event, error, attempts) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (id) DO UPDATE SET error = EXCLUDED.error, attempts = EXCLUDED.attempts, created_at = now()`,
      [letter.id, letter.functionName, letter.functionVersion, jsonForPostgres(letter.event ?? null), jsonForPostgres(letter.error), letter.attempts],
    );
  }

  async list(functionName: string, limit = 1000): Promise<DeadLetter[]> {
    const { rows } = await this.db.query('SELECT * FROM dead_letters WHERE function_name = $1 ORDER BY created_at LIMIT $2', [functionName, limit]);
    return (rows as Array<Record<string, unknown>>).map(toLetter);
  }

  /** Removes and returns the letter (to re-drive it); undefined if there is none. */
  async take(functionName: string, id: string): Promise<DeadLetter | undefined> {
    const { rows } = await this.db.query('DELETE FROM dead_letters WHERE function_name = $1 AND id = $2 RETURNING *', [functionName, id]);
    const r = rows[0] as Record<string, unknown> | undefined;
    return r ? toLetter(r) : undefined;
  }
}

function toLetter(r: Record<string, unknown>): DeadLetter {
  return {
    id: r.id as string,
    functionName: r.function_name as string,
    functionVersion: r.function_version as number,
    event: r.event,
    error: r.error as ErrorBody,
    attempts: r.attempts as number,
    createdAt: (r.created_at as Date).toISOString(),
  };
}
