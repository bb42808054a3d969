/**
 * The SigV4 verifier against requests signed by the AWS SDK's own signer: a valid one passes;
 * a date out of the window, a payload that is not the one hashed, a tampered signed header, a
 * wrong secret and an unknown key are refused, each naming the part at fault.
 */
import t from 'tap';
import { SignatureV4 } from '@smithy/signature-v4';
import { Hash } from '@smithy/hash-node';
import { isSkiffError } from '../../infra/errors.js';
import { verifySigV4, type SignedRequest } from '../../gateway/lambda/sigv4.js';

const ID = 'AbCdEfGhIjKl';
const KEY = `sk_${ID}_${'s'.repeat(43)}`;
const NOW = Date.parse('2026-12-02T01:00:00Z');
const secretOf = async (id: string): Promise<string | null | undefined> => (id === ID ? KEY : id === 'OldKeyOldKey' ? null : undefined);

/** A request as the SDK sends one: path encoded once, signed with the path encoded again. */
async function signed(options: { body?: string; at?: number; secret?: string; id?: string; contentSha?: boolean } = {}): Promise<SignedRequest> {
  const body = options.body ?? '{"a":1}';
  const signer = new SignatureV4({
    credentials: { accessKeyId: options.id ?? ID, secretAccessKey: options.secret ?? KEY },
    region: 'eu-west-3',
    service: 'lambda',
    sha256: Hash.bind(null, 'sha256'),
    applyChecksum: options.contentSha ?? false,
  });
  const path = '/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-3%3Adefault%3Afunction%3Alam/invocations';
  const out = await signer.sign(
    {
      method: 'POST',
      protocol: 'http:',
      hostname: '127.0.0.1',
      port: 8080,
      path,
      query: { Qualifier: '$LATEST' },
      headers: { host: '127.0.0.1:8080', 'content-type': 'application/json', 'x-amz-invocation-type': 'RequestResponse' },
      body,
    },
    { signingDate: new Date(options.at ?? NOW) },
  );
  return { method: 'POST', rawPath: path, rawQuery: 'Qualifier=%24LATEST', headers: out.headers, body: Buffer.from(body) };
}

async function refusedField(request: SignedRequest, now = NOW): Promise<string | undefined> {
  try {
    await verifySigV4(request, secretOf, now);
  } catch (error) {
    if (isSkiffError(error, 'Unauthorized')) return error.field;
    throw error;
  }
  return undefined;
}

t.test('a request the SDK signed verifies, with or without x-amz-content-sha256', async (t) => {
  t.equal(await verifySigV4(await signed(), secretOf, NOW), ID);
  t.equal(await verifySigV4(await signed({ contentSha: true }), secretOf, NOW), ID);
  t.equal(await verifySigV4(await signed({ at: NOW - 14 * 60_000 }), secretOf, NOW), ID, '14 minutes off is inside the window');
});

t.test('the date window is 15 minutes either way', async (t) => {
  t.equal(await refusedField(await signed({ at: NOW - 16 * 60_000 })), 'X-Amz-Date', 'too old');
  t.equal(await refusedField(await signed({ at: NOW + 16 * 60_000 })), 'X-Amz-Date', 'from the future');
});

t.test('the payload must be the one signed', async (t) => {
  const request = await signed();
  t.equal(await refusedField({ ...request, body: Buffer.from('{"a":2}') }), 'Signature', 'another body, hashed by the server');
  const withSha = await signed({ contentSha: true });
  t.equal(await refusedField({ ...withSha, body: Buffer.from('{"a":2}') }), 'X-Amz-Content-Sha256', 'a claimed hash that is not the body’s');
  t.equal(await refusedField({ ...withSha, headers: { ...withSha.headers, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } }), 'X-Amz-Content-Sha256');
});

t.test('a tampered signed header, path or query breaks the signature', async (t) => {
  const request = await signed();
  t.equal(await refusedField({ ...request, headers: { ...request.headers, 'x-amz-invocation-type': 'Event' } }), 'Signature');
  t.equal(await refusedField({ ...request, rawPath: request.rawPath.replace('lam', 'lab') }), 'Signature');
  t.equal(await refusedField({ ...request, rawQuery: 'Qualifier=1' }), 'Signature');
  // An unsigned header may change: it is no part of the signature (as on AWS).
  t.equal(await verifySigV4({ ...request, headers: { ...request.headers, 'user-agent': 'other' } }, secretOf, NOW), ID);
});

t.test('a wrong secret, an unknown key, a key without a sealed secret, a malformed header', async (t) => {
  t.equal(await refusedField(await signed({ secret: `${KEY}x` })), 'Signature');
  t.equal(await refusedField(await signed({ id: 'NoSuchKeyAbc' })), 'Credential');
  t.equal(await refusedField(await signed({ id: 'OldKeyOldKey' })), 'Credential');
  const request = await signed();
  t.equal(await refusedField({ ...request, headers: { ...request.headers, authorization: 'AWS4-HMAC-SHA256 nonsense' } }), 'Authorization');
  const otherService = String(request.headers.authorization).replace('/lambda/', '/s3/');
  t.equal(await refusedField({ ...request, headers: { ...request.headers, authorization: otherService } }), 'Credential');
});
