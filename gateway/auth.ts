/**
 * API key checks. Managing functions, keys and reading logs needs a key
 * (`Authorization: Bearer sk_...`); calling a function does not, unless it was deployed with
 * `"auth": "key"`. Health and metrics are open (protect them at the network).
 */
import type { FastifyRequest } from 'fastify';
import { SkiffError } from '../infra/errors.js';
import type { ApiKeys } from '../infra/db/api-keys.js';

export async function requireKey(apiKeys: ApiKeys, request: FastifyRequest): Promise<string> {
  const header = request.headers.authorization;
  if (header === undefined) throw new SkiffError('Unauthorized', 'an API key is required: Authorization: Bearer <key>');
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  const id = match?.[1] ? await apiKeys.verify(match[1]) : undefined;
  if (id === undefined) throw new SkiffError('Unauthorized', 'the API key is not valid');
  return id;
}
