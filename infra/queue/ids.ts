/**
 * Invocation ids: 21 random characters (as nanoid's default, ~125 bits) from letters, digits and
 * `_`, never `-`: ids are pasted on command lines (`skiff logs --invocation <id>`), where one that
 * starts with a dash reads as an option.
 */
import { createHash } from 'node:crypto';
import { customAlphabet } from 'nanoid';
import type { InvocationJob } from './jobs.js';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_';
const LENGTH = 21;

export const invocationId: () => string = customAlphabet(ALPHABET, LENGTH);

/**
 * An invocation id of the same shape, made from `seed`: the same seed always gives the same id.
 * A schedule's tick is one call however often its job is retried (scheduler/schedule-ticks.ts).
 */
export function derivedInvocationId(seed: string): string {
  const digest = createHash('sha256').update(seed).digest();
  let id = '';
  for (let i = 0; i < LENGTH; i++) id += ALPHABET[(digest[i] ?? 0) % ALPHABET.length];
  return id;
}

/** A node queue's job id for one attempt of a call: placing it again (another scheduler, a retry) is a no-op. */
export function nodeJobId(data: Pick<InvocationJob, 'id' | 'attempt' | 'enqueuedAt'>): string {
  return `${data.id}-${data.attempt}-${data.enqueuedAt}`;
}
