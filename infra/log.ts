/** Structured JSON logs for every process: pino, the logger fastify itself uses. */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(component: string, level: string): Logger {
  return pino({ level, base: { component, pid: process.pid } });
}
