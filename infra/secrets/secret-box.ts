/**
 * Secrets kept at rest encrypted under the platform key: AES-256-GCM (node:crypto), a fresh
 * 12-byte nonce per seal, and the owner's id as additional data, so a sealed value copied onto
 * another row does not open. A sealed value names the platform key it was sealed under (a short
 * fingerprint of it), so after a rotation the previous key still opens what it sealed until that
 * is sealed again under the current one (`needsReseal`).
 *
 * Format: `v1.<key fingerprint>.<nonce>.<tag>.<ciphertext>`, each part base64url.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { HostError, type SealFailure } from '../host-error.js';

export const PLATFORM_KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export class SecretBox {
  private readonly current: { id: string; key: Buffer };
  private readonly byId: Map<string, Buffer>;

  /** `current` seals and opens; `previous` keys only open (a rotation in progress). */
  constructor(current: Buffer, previous: readonly Buffer[] = []) {
    for (const key of [current, ...previous]) {
      if (key.length !== PLATFORM_KEY_BYTES) throw new Error(`a platform key is ${PLATFORM_KEY_BYTES} bytes, not ${key.length}`);
    }
    this.current = { id: fingerprint(current), key: current };
    this.byId = new Map([...previous, current].map((key) => [fingerprint(key), key]));
  }

  seal(plaintext: string, owner: string): string {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.current.key, nonce);
    cipher.setAAD(Buffer.from(owner));
    const sealed = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return ['v1', this.current.id, nonce.toString('base64url'), cipher.getAuthTag().toString('base64url'), sealed.toString('base64url')].join('.');
  }

  /** The plaintext; a HostError of kind `platform-key` (reason says which) when it cannot be opened. */
  open(sealed: string, owner: string): string {
    const parts = sealed.split('.');
    const [version, keyId, nonce, tag, body] = parts;
    if (parts.length !== 5 || version !== 'v1' || !keyId || !nonce || !tag || body === undefined)
      throw failure('Malformed', 'a sealed secret is not in the v1 format');
    const key = this.byId.get(keyId);
    if (!key) throw failure('UnknownPlatformKey', `a secret was sealed under platform key ${keyId}, which this process does not hold`);
    const nonceBytes = Buffer.from(nonce, 'base64url');
    const tagBytes = Buffer.from(tag, 'base64url');
    if (nonceBytes.length !== NONCE_BYTES || tagBytes.length !== TAG_BYTES) throw failure('Malformed', 'a sealed secret has a nonce or tag of the wrong size');
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, nonceBytes, { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(owner));
      decipher.setAuthTag(tagBytes);
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
    } catch (cause) {
      throw failure('NotAuthentic', 'a sealed secret does not open under its platform key (altered, or sealed for another owner)', cause);
    }
  }

  /** Whether a sealed value was sealed under a key other than the current one. */
  needsReseal(sealed: string): boolean {
    return sealed.split('.')[1] !== this.current.id;
  }
}

/** A short public name of a key: which key sealed a value, never enough to learn the key. */
function fingerprint(key: Buffer): string {
  return createHash('sha256').update('skiff-platform-key\0').update(key).digest('base64url').slice(0, 12);
}

function failure(reason: SealFailure, message: string, cause?: unknown): HostError {
  return new HostError('platform-key', message, { reason, cause });
}
