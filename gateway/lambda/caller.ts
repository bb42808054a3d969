/**
 * Who calls a Lambda route: a request signed with AWS Signature Version 4 by one of Skiff's keys
 * (gateway/lambda/sigv4.ts), or one carrying the key itself as `Authorization: Bearer`. Either
 * way the caller is the key's principal, and its tenant and role are checked as on every other
 * route (gateway/auth.ts). Failures are `Unauthorized` with the part at fault as `field`, answered
 * as AWS does (gateway/lambda/errors.ts).
 */
import type { FastifyRequest } from 'fastify';
import { SkiffError, isSkiffError } from '../../infra/errors.js';
import { isHostError } from '../../infra/host-error.js';
import type { ApiKeys, SigningKey } from '../../infra/db/api-keys.js';
import type { Principal } from '../../infra/tenancy/roles.js';
import { authenticate } from '../auth.js';
import { isSigV4, verifySigV4 } from './sigv4.js';

export async function lambdaCaller(apiKeys: ApiKeys, request: FastifyRequest, body: Buffer): Promise<Principal> {
  const authorization = request.headers.authorization;
  if (authorization === undefined) {
    throw new SkiffError('Unauthorized', 'Missing Authentication Token: sign the request with AWS Signature Version 4, or send Authorization: Bearer <key>');
  }
  if (!isSigV4(authorization)) {
    try {
      return await authenticate(apiKeys, request);
    } catch (error) {
      if (isSkiffError(error, 'Unauthorized')) throw new SkiffError('Unauthorized', error.message, { field: 'Credential', cause: error });
      throw error;
    }
  }
  const [path = '', query = ''] = (request.raw.url ?? '').split('?', 2);
  let found: SigningKey | undefined;
  await verifySigV4({ method: request.method, rawPath: path, rawQuery: query, headers: request.headers, body }, async (id) => {
    found = await signingKey(apiKeys, id);
    return found === undefined ? undefined : found.key;
  });
  if (found === undefined) throw new SkiffError('Internal', 'a signature verified without its key');
  apiKeys.recordUse(found.who.keyId);
  return found.who;
}

async function signingKey(apiKeys: ApiKeys, id: string): Promise<SigningKey | undefined> {
  try {
    return await apiKeys.signingKey(id);
  } catch (error) {
    if (!isHostError(error, 'platform-key')) throw error;
    throw new SkiffError('Unavailable', `this gateway cannot open the secret of key ${id}: ${error.message} (SKIFF_PLATFORM_KEY_FILE, docs/SECURITY.md)`, {
      cause: error,
    });
  }
}
