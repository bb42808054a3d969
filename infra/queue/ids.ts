/**
 * Invocation ids: 21 random characters (as nanoid's default, ~125 bits) from letters, digits and
 * `_`, never `-`: ids are pasted on command lines (`skiff logs --invocation <id>`), where one that
 * starts with a dash reads as an option.
 */
import { customAlphabet } from 'nanoid';
import type { InvocationJob } from './jobs.js';

export const invocationId: () => string = customAlphabet('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_', 21);

/** A node queue's job id for one attempt of a call: placing it again (another scheduler, a retry) is a no-op. */
export function nodeJobId(data: Pick<InvocationJob, 'id' | 'attempt' | 'enqueuedAt'>): string {
  return `${data.id}-${data.attempt}-${data.enqueuedAt}`;
}
