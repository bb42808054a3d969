/**
 * The platform key: 32 random bytes, base64 in a file of the state directory (mode 0600), that
 * seals the secrets Skiff must keep to verify signatures (infra/secrets/secret-box.ts). The
 * bring-up, or a gateway that finds none, makes it; a rotation names the old file as the previous
 * key, and gateways seal everything again under the new one when they start (docs/SECURITY.md).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ConfigError, type PlatformKeyConfig } from '../config.js';
import { isErrnoError } from '../host-error.js';
import { PLATFORM_KEY_BYTES, SecretBox } from './secret-box.js';

/** Makes the key file if there is none; true when it made one. Never overwrites a key. */
export async function ensurePlatformKey(file: string): Promise<boolean> {
  await mkdir(dirname(file), { recursive: true });
  try {
    // 'wx': two processes starting at once cannot both write a key (one wins, the other reads it).
    await writeFile(file, `${randomBytes(PLATFORM_KEY_BYTES).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
    return true;
  } catch (error) {
    if (isErrnoError(error) && error.code === 'EEXIST') return false;
    throw error;
  }
}

/** The box of the configured keys: the current one (made if missing), and the previous one if named. */
export async function openPlatformKeys(config: PlatformKeyConfig): Promise<{ box: SecretBox; created: boolean }> {
  const created = await ensurePlatformKey(config.file);
  const current = await readKey(config.file);
  const previous = config.previousFile === undefined ? [] : [await readKey(config.previousFile)];
  return { box: new SecretBox(current, previous), created };
}

async function readKey(file: string): Promise<Buffer> {
  const info = await stat(file);
  if ((info.mode & 0o077) !== 0) throw new ConfigError(`platform key ${file} must be readable by its owner only (chmod 600)`);
  const text = (await readFile(file, 'utf8')).trim();
  const key = Buffer.from(text, 'base64');
  if (key.length !== PLATFORM_KEY_BYTES || key.toString('base64') !== text) {
    throw new ConfigError(`platform key ${file} must hold ${PLATFORM_KEY_BYTES} bytes in base64 (openssl rand -base64 32)`);
  }
  return key;
}
