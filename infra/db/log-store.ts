/**
 * Functions' log lines in PostgreSQL, written in batches off the call path, each batch also
 * published on the function's Redis channel for live followers (`logs?follow=1`). A batch of any
 * size is written in statements under PostgreSQL's parameter limit (chunks.ts), and published in
 * the same pieces, so no pub/sub message grows with the batch.
 */
import type { Redis } from 'ioredis';
import { chunked, rowsPerStatement } from './chunks.js';
import type { Database } from './database.js';

export interface LogLine {
  functionName: string;
  functionVersion: number;
  /** The invocation the line belongs to; null for output outside any invocation. */
  invocationId: string | null;
  sandboxId: string;
  stream: 'stdout' | 'stderr';
  text: string;
  /** ms since epoch */
  at: number;
}

export interface LogQuery {
  functionName: string;
  invocationId?: string;
  /** ms since epoch: lines at or after it */
  since?: number;
  limit: number;
}

const COLUMNS = ['function_name', 'function_version', 'invocation_id', 'sandbox_id', 'stream', 'text', 'at'];
const ROWS_PER_STATEMENT = rowsPerStatement(COLUMNS.length);
/** Text per statement (and per published message); lines are cut at the log line limit before this. */
const BYTES_PER_STATEMENT = 4 * 1024 * 1024;

export class LogStore {
  private batch: LogLine[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly db: Database,
    private readonly publisher: { redis: Redis; channel: (functionName: string) => string } | undefined,
    private readonly onError: (error: unknown) => void,
    private readonly flushDelayMs = 50,
  ) {}

  append(line: LogLine): void {
    this.batch.push(line);
    this.timer ??= setTimeout(() => void this.flush(), this.flushDelayMs);
  }

  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flushing;
    const lines = this.batch;
    this.batch = [];
    if (lines.length === 0) return;
    this.flushing = this.write(lines).catch(this.onError);
    await this.flushing;
  }

  async query(q: LogQuery): Promise<LogLine[]> {
    const where = ['function_name = $1'];
    const values: unknown[] = [q.functionName];
    if (q.invocationId !== undefined) {
      values.push(q.invocationId);
      where.push(`invocation_id = $${values.length}`);
    }
    if (q.since !== undefined) {
      values.push(new Date(q.since));
      where.push(`at >= $${values.length}`);
    }
    values.push(q.limit);
    // The newest `limit` lines, returned oldest first.
    const { rows } = await this.db.query(
      `SELECT * FROM (SELECT id, ${COLUMNS.join(', ')} FROM function_logs WHERE ${where.join(' AND ')}
       ORDER BY at DESC, id DESC LIMIT $${values.length}) newest ORDER BY at, id`,
      values,
    );
    return (rows as Array<Record<string, unknown>>).map((row) => ({
      functionName: row.function_name as string,
      functionVersion: row.function_version as number,
      invocationId: row.invocation_id as string | null,
      sandboxId: row.sandbox_id as string,
      stream: row.stream as 'stdout' | 'stderr',
      text: row.text as string,
      at: (row.at as Date).getTime(),
    }));
  }

  private async write(lines: LogLine[]): Promise<void> {
    // Characters, not bytes: a cheap bound that is close enough for sizing statements.
    for (const chunk of chunked(lines, ROWS_PER_STATEMENT, BYTES_PER_STATEMENT, (l) => l.text.length + 64)) await this.writeChunk(chunk);
  }

  private async writeChunk(lines: LogLine[]): Promise<void> {
    const values: unknown[] = [];
    const tuples: string[] = [];
    for (const l of lines) {
      const base = values.length;
      // PostgreSQL text cannot hold U+0000.
      values.push(l.functionName, l.functionVersion, l.invocationId, l.sandboxId, l.stream, l.text.replaceAll('\u0000', '\uFFFD'), new Date(l.at));
      tuples.push(`(${COLUMNS.map((_, i) => `$${base + i + 1}`).join(', ')})`);
    }
    await this.db.query(`INSERT INTO function_logs (${COLUMNS.join(', ')}) VALUES ${tuples.join(', ')}`, values);
    if (this.publisher) {
      const byFunction = new Map<string, LogLine[]>();
      for (const l of lines) {
        const group = byFunction.get(l.functionName);
        if (group) group.push(l);
        else byFunction.set(l.functionName, [l]);
      }
      for (const [name, group] of byFunction) await this.publisher.redis.publish(this.publisher.channel(name), JSON.stringify(group));
    }
  }
}
