/**
 * Verifies AWS Signature Version 4 as S3-compatible servers do: the request's credential names
 * one of Skiff's keys (access key id = the key's id, secret = the key), any region, service
 * `lambda`; its date is within 15 minutes of ours; its payload hash is the body's; and the
 * signature @smithy/signature-v4 (the AWS SDK's own signer) computes over the canonical request
 * with the key's secret equals the one sent, compared in constant time. The algorithm itself is
 * the SDK's, not restated here: what this module does is rebuild the request as the client saw it
 * (the raw, still-encoded path; the decoded query; only the headers the client signed).
 *
 * Failures are `Unauthorized` with the part at fault as `field` (`Authorization`, `Credential`,
 * `X-Amz-Date`, `X-Amz-Content-Sha256`, `Signature`), which the Lambda routes answer as AWS does.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { Hash } from '@smithy/hash-node';
import { SkiffError } from '../../infra/errors.js';

export interface SignedRequest {
  method: string;
  /** The path as sent, still percent-encoded (what the client signed, encoded once more). */
  rawPath: string;
  /** The query string as sent, without `?`. */
  rawQuery: string;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A key's signing secret: the secret; null when the key exists but keeps no secret to verify with; undefined: no such key. */
export type SecretLookup = (accessKeyId: string) => Promise<string | null | undefined>;

export const SIGV4_ALGORITHM = 'AWS4-HMAC-SHA256';
/** How far a request's date may be from ours, either way (S3's and Lambda's window). */
export const SIGV4_WINDOW_MS = 15 * 60_000;
const AUTHORIZATION = /^AWS4-HMAC-SHA256 +Credential=([^,\s]+), *SignedHeaders=([a-z0-9;._-]+), *Signature=([0-9a-f]{64})$/;
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const UNSIGNED = new Set(['UNSIGNED-PAYLOAD', 'STREAMING-UNSIGNED-PAYLOAD-TRAILER']);

/** Whether a request is signed with SigV4 (rather than carrying a Bearer key). */
export function isSigV4(authorization: string | undefined): boolean {
  return authorization?.startsWith(`${SIGV4_ALGORITHM} `) === true;
}

/** The access key id of a request whose signature is valid; `Unauthorized` otherwise. */
export async function verifySigV4(request: SignedRequest, secretOf: SecretLookup, now = Date.now()): Promise<string> {
  const auth = AUTHORIZATION.exec(one(request.headers.authorization) ?? '');
  if (!auth?.[1] || !auth[2] || !auth[3]) {
    throw refused(
      'Authorization',
      `Authorization must be ${SIGV4_ALGORITHM} Credential=<key id>/<date>/<region>/lambda/aws4_request, SignedHeaders=..., Signature=...`,
    );
  }
  const [, credential, signedList, signature] = auth;
  const [accessKeyId, day, region, service, terminator, ...extra] = credential.split('/');
  if (!accessKeyId || !day || !region || service !== 'lambda' || terminator !== 'aws4_request' || extra.length > 0) {
    throw refused('Credential', 'the credential scope must be <key id>/<yyyymmdd>/<region>/lambda/aws4_request');
  }
  const amzDate = one(request.headers['x-amz-date']) ?? '';
  const signingDate = parseAmzDate(amzDate);
  if (signingDate === undefined) throw refused('X-Amz-Date', 'X-Amz-Date must be a date of the form 20260102T030405Z');
  if (Math.abs(signingDate.getTime() - now) > SIGV4_WINDOW_MS) {
    throw refused('X-Amz-Date', `Signature expired: ${amzDate} is more than 15 minutes from the server's time ${formatAmzDate(new Date(now))}`);
  }
  if (amzDate.slice(0, 8) !== day) throw refused('Credential', `the credential's date ${day} is not that of X-Amz-Date ${amzDate}`);
  const signed = signedList.split(';');
  if (!signed.includes('host') || !signed.includes('x-amz-date')) throw refused('Authorization', 'SignedHeaders must include host and x-amz-date');
  const headers: Record<string, string> = {};
  for (const name of signed) {
    const value = request.headers[name];
    if (value === undefined) throw refused('Authorization', `signed header ${name} is not in the request`);
    headers[name] = Array.isArray(value) ? value.join(',') : value;
  }
  const bodyHash = createHash('sha256').update(request.body).digest('hex');
  const claimed = one(request.headers['x-amz-content-sha256']);
  if (claimed !== undefined && (UNSIGNED.has(claimed) || claimed !== bodyHash)) {
    throw refused('X-Amz-Content-Sha256', UNSIGNED.has(claimed) ? 'the payload must be signed' : 'X-Amz-Content-Sha256 is not the hash of the body');
  }

  const secret = await secretOf(accessKeyId);
  if (secret === undefined) throw refused('Credential', 'The security token included in the request is invalid: no such key (or it expired)');
  if (secret === null) {
    throw refused(
      'Credential',
      `key ${accessKeyId} was made before Skiff kept what signatures are verified with: make a new key to sign requests (its Bearer form keeps working)`,
    );
  }
  const signer = new SignatureV4({
    credentials: { accessKeyId, secretAccessKey: secret },
    region,
    service: 'lambda',
    sha256: Hash.bind(null, 'sha256'),
    uriEscapePath: true,
    // The client's x-amz-content-sha256, if it sent one, is among the signed headers already.
    applyChecksum: false,
  });
  const expected = await signer.sign(
    {
      method: request.method,
      protocol: 'http:',
      hostname: headers.host ?? '',
      path: request.rawPath,
      query: parseQuery(request.rawQuery),
      headers,
      body: request.body,
    },
    { signingDate, signingRegion: region, signingService: 'lambda', signableHeaders: new Set(signed) },
  );
  const computed = /Signature=([0-9a-f]{64})$/.exec(String(expected.headers.authorization ?? ''))?.[1] ?? '';
  if (computed.length !== signature.length || !timingSafeEqual(Buffer.from(computed), Buffer.from(signature))) {
    throw refused(
      'Signature',
      'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.',
    );
  }
  return accessKeyId;
}

export function formatAmzDate(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

function parseAmzDate(text: string): Date | undefined {
  const m = AMZ_DATE.exec(text);
  if (!m) return undefined;
  const date = new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** The query as the signer takes it: decoded names and values (it encodes them again, canonically). */
function parseQuery(raw: string): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  for (const pair of raw.split('&')) {
    if (pair === '') continue;
    const at = pair.indexOf('=');
    const name = decode(at < 0 ? pair : pair.slice(0, at));
    const value = decode(at < 0 ? '' : pair.slice(at + 1));
    const had = query[name];
    query[name] = had === undefined ? value : [...(Array.isArray(had) ? had : [had]), value];
  }
  return query;
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch (cause) {
    throw new SkiffError('InvalidRequest', 'the query string is not valid percent-encoding', { field: 'query', cause });
  }
}

function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function refused(field: string, message: string): SkiffError {
  return new SkiffError('Unauthorized', message, { field });
}
