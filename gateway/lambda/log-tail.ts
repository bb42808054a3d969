/**
 * `X-Amz-Log-Type: Tail`: the last 4 KiB of a call's log, as Lambda gives it in
 * `X-Amz-Log-Result`. Workers write log lines to the log store in batches off the call path, and
 * publish each batch on the function's log channel (infra/db/log-store.ts): so the gateway
 * listens on that channel from before the call is queued, keeps the lines of its own call, and
 * once the outcome is back waits for the worker's next batch with lines of the call, or at most
 * `logTailWaitMs` (a call that logs nothing has no batch to wait for).
 */
import type { Redis } from 'ioredis';
import type { LogLine } from '../../infra/db/log-store.js';
import { closeRedis, openRedis, type OpenRedisOptions } from '../../infra/queue/connections.js';
import type { GatewayContext } from '../context.js';

/** Lambda's bound on X-Amz-Log-Result: the last 4 KiB of the log. */
export const LOG_TAIL_BYTES = 4096;
/** Lines kept while a call runs: the tail needs only the last ones, whatever the function writes. */
const LINES_KEPT = 2000;

export class LogTail {
  private readonly lines: LogLine[] = [];
  private outcomeSeen = false;
  private settle: (() => void) | undefined;

  private constructor(private readonly subscriber: Redis) {
    subscriber.on('message', (_channel: string, message: string) => {
      const batch = JSON.parse(message) as LogLine[];
      this.lines.push(...batch);
      if (this.lines.length > LINES_KEPT) this.lines.splice(0, this.lines.length - LINES_KEPT);
      if (this.outcomeSeen) this.settle?.();
    });
  }

  /** Listens for `functionName`'s log lines; call before the call is queued. */
  static async open(ctx: GatewayContext, functionName: string, log: OpenRedisOptions['log']): Promise<LogTail> {
    const subscriber = openRedis(ctx.config.redisUrl, 'subscriber', ctx.config.redisClient, { log, component: 'gateway-log-tail' });
    const tail = new LogTail(subscriber);
    try {
      await subscriber.subscribe(ctx.keys.logs(functionName));
    } catch (error) {
      await closeRedis(subscriber);
      throw error;
    }
    return tail;
  }

  /** The base64 tail of invocation `id`'s log, once its outcome is back; closes the listener. */
  async take(id: string, waitMs: number): Promise<string> {
    try {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, waitMs);
        this.settle = () => {
          if (!this.lines.some((l) => l.invocationId === id)) return;
          clearTimeout(timer);
          resolve();
        };
        this.outcomeSeen = true;
      });
      const text = this.lines
        .filter((l) => l.invocationId === id)
        .map((l) => `${l.text}\n`)
        .join('');
      const bytes = Buffer.from(text);
      return bytes.subarray(Math.max(0, bytes.length - LOG_TAIL_BYTES)).toString('base64');
    } finally {
      await this.close();
    }
  }

  async close(): Promise<void> {
    this.subscriber.removeAllListeners('message');
    await closeRedis(this.subscriber);
  }
}
