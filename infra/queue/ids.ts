/**
 * Invocation ids: 21 random characters (as nanoid's default, ~125 bits) from letters, digits and
 * `_`, never `-`: ids are pasted on command lines (`skiff logs --invocation <id>`), where one that
 * starts with a dash reads as an option.
 */
import { customAlphabet } from 'nanoid';

export const invocationId: () => string = customAlphabet('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_', 21);
