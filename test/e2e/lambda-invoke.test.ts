/**
 * The Lambda Invoke API through the real AWS SDK (@aws-sdk/client-lambda) against a real gateway:
 * the three invocation types, log tails, function errors, Lambda's error types for unknown
 * functions, bad signatures, unknown keys and refused roles, qualifiers and ARNs, and
 * InvokeWithResponseStream over a buffered function and over a streaming one (its bytes as
 * PayloadChunks; a failure part way named in InvokeComplete).
 */
import t, { type Test } from 'tap';
import { openDatabase } from '../../infra/db/database.js';
import {
  InvokeCommand,
  InvokeWithResponseStreamCommand,
  LambdaClient,
  type InvokeCommandOutput,
  type InvokeWithResponseStreamResponseEvent,
} from '@aws-sdk/client-lambda';
import { startPlatform, type Platform } from '../support/platform.js';
import { client, eventually } from '../support/api.js';

let platform: Platform;
t.before(async () => {
  // Long enough that a slow log batch is never what a test sees; a Tail call waits only for its lines.
  platform = await startPlatform({ SKIFF_LAMBDA_LOG_TAIL_WAIT_MS: '10000' });
});
t.teardown(async () => {
  await platform?.stop();
});

const { deploy } = client(() => platform);

const V1 = `exports.handler = async (event) => {
  console.log('called with', JSON.stringify(event));
  if (event && event.fail) throw new TypeError('asked to fail');
  return { v: 1, got: event };
};`;

function lambda(accessKeyId: string, secretAccessKey: string): LambdaClient {
  return new LambdaClient({ endpoint: platform.url, region: 'us-east-1', credentials: { accessKeyId, secretAccessKey }, maxAttempts: 1 });
}

const admin = (): LambdaClient => lambda(platform.keyId, platform.key);
const payloadOf = (out: InvokeCommandOutput): unknown => JSON.parse(Buffer.from(out.Payload ?? new Uint8Array()).toString('utf8'));

async function makeKey(t: Test, tenant: string, role: string): Promise<{ id: string; key: string }> {
  const res = await fetch(`${platform.url}/v1/keys`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...platform.auth },
    body: JSON.stringify({ name: `${tenant}-${role}`, tenant, role }),
  });
  t.equal(res.status, 201, `made a ${role} key of ${tenant}`);
  return (await res.json()) as { id: string; key: string };
}

/** The exception the SDK threw, by its name and HTTP status. */
async function refusal(promise: Promise<unknown>): Promise<{ name: string; status: number | undefined; message: string }> {
  try {
    await promise;
  } catch (error) {
    const e = error as { name: string; message: string; $metadata?: { httpStatusCode?: number } };
    return { name: e.name, status: e.$metadata?.httpStatusCode, message: e.message };
  }
  throw new Error('the call was not refused');
}

t.test('deploy the function', async (t) => {
  t.equal((await deploy({ name: 'lam' }, { 'index.js': V1 })).status, 201);
});

t.test('RequestResponse: the payload, the executed version, and the log tail', async (t) => {
  const out = await admin().send(new InvokeCommand({ FunctionName: 'lam', Payload: Buffer.from(JSON.stringify({ a: 1 })), LogType: 'Tail' }));
  t.equal(out.StatusCode, 200);
  t.same(payloadOf(out), { v: 1, got: { a: 1 } });
  t.equal(out.ExecutedVersion, '1');
  t.equal(out.FunctionError, undefined, 'no function error');
  t.match(Buffer.from(out.LogResult ?? '', 'base64').toString('utf8'), /called with \{"a":1\}/, 'the tail holds the call’s log line');
});

t.test('a function error is a 200 with X-Amz-Function-Error and Lambda’s error payload', async (t) => {
  const out = await admin().send(new InvokeCommand({ FunctionName: 'lam', Payload: Buffer.from(JSON.stringify({ fail: true })) }));
  t.equal(out.StatusCode, 200);
  t.equal(out.FunctionError, 'Unhandled');
  const body = payloadOf(out) as { errorMessage: string; errorType: string; stackTrace: unknown };
  t.equal(body.errorMessage, 'asked to fail');
  t.equal(body.errorType, 'TypeError');
  t.ok(Array.isArray(body.stackTrace), 'stackTrace is an array');
});

t.test('Event is accepted (202) and runs as an asynchronous call; DryRun is 204', async (t) => {
  const out = await admin().send(new InvokeCommand({ FunctionName: 'lam', InvocationType: 'Event', Payload: Buffer.from('{"async":true}') }));
  t.equal(out.StatusCode, 202);
  const id = out.$metadata.requestId ?? '';
  t.ok(id, 'the request id names the call');
  const done = await eventually(async () => {
    const record = (await (await fetch(`${platform.url}/v1/invocations/${id}`, { headers: platform.auth })).json()) as { status: string };
    return record.status === 'succeeded';
  }, 60_000);
  t.ok(done, 'the asynchronous call ran');
  const dry = await admin().send(new InvokeCommand({ FunctionName: 'lam', InvocationType: 'DryRun' }));
  t.equal(dry.StatusCode, 204);
});

t.test('Lambda’s errors: unknown function, bad signature, unknown key, too large, not JSON', async (t) => {
  t.match(await refusal(admin().send(new InvokeCommand({ FunctionName: 'nope' }))), { name: 'ResourceNotFoundException', status: 404 });
  t.match(await refusal(lambda(platform.keyId, `${platform.key}x`).send(new InvokeCommand({ FunctionName: 'lam' }))), {
    name: 'InvalidSignatureException',
    status: 403,
  });
  t.match(await refusal(lambda('AAAAAAAAAAAA', platform.key).send(new InvokeCommand({ FunctionName: 'lam' }))), {
    name: 'UnrecognizedClientException',
    status: 403,
  });
  const big = Buffer.alloc(platform.config.gateway.asyncEventLimitBytes + 1, 0x20);
  t.match(await refusal(admin().send(new InvokeCommand({ FunctionName: 'lam', InvocationType: 'Event', Payload: big }))), {
    name: 'RequestTooLargeException',
    status: 413,
  });
  t.match(await refusal(admin().send(new InvokeCommand({ FunctionName: 'lam', Payload: Buffer.from('{not json') }))), {
    name: 'InvalidRequestContentException',
    status: 400,
  });
});

t.test('the key’s role and tenant apply: a viewer is refused, another tenant sees no function; Bearer works', async (t) => {
  const viewer = await makeKey(t, 'default', 'viewer');
  t.match(await refusal(lambda(viewer.id, viewer.key).send(new InvokeCommand({ FunctionName: 'lam' }))), { name: 'AccessDeniedException', status: 403 });
  t.equal(
    (await fetch(`${platform.url}/v1/tenants`, { method: 'POST', headers: { 'content-type': 'application/json', ...platform.auth }, body: '{"name":"other"}' }))
      .status,
    201,
  );
  const other = await makeKey(t, 'other', 'developer');
  t.match(await refusal(lambda(other.id, other.key).send(new InvokeCommand({ FunctionName: 'lam' }))), { name: 'ResourceNotFoundException', status: 404 });
  const developer = await makeKey(t, 'default', 'invoker');
  const bearer = await fetch(`${platform.url}/2015-03-31/functions/lam/invocations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${developer.key}` },
    body: '{"b":2}',
  });
  t.equal(bearer.status, 200);
  t.same(await bearer.json(), { v: 1, got: { b: 2 } });
  // A key made before secrets were sealed (its row has none): SigV4 says to make a new key; Bearer works.
  const old = await makeKey(t, 'default', 'invoker');
  const db = openDatabase(platform.config.databaseUrl, platform.config.databaseSchema, 1);
  await db.query('UPDATE api_keys SET secret_sealed = NULL WHERE id = $1', [old.id]);
  await db.end();
  const unsealed = await refusal(lambda(old.id, old.key).send(new InvokeCommand({ FunctionName: 'lam' })));
  t.match(unsealed, { name: 'UnrecognizedClientException', status: 403, message: /make a new key/ });
  const oldBearer = await fetch(`${platform.url}/2015-03-31/functions/lam/invocations`, { method: 'POST', headers: { authorization: `Bearer ${old.key}` } });
  t.equal(oldBearer.status, 200, 'its Bearer form still works');
  const unsigned = await fetch(`${platform.url}/2015-03-31/functions/lam/invocations`, { method: 'POST', body: '{}' });
  t.equal(unsigned.status, 403);
  t.equal(unsigned.headers.get('x-amzn-errortype'), 'MissingAuthenticationTokenException');
});

t.test('Qualifier and ARNs name a version; the ARN’s account is the tenant', async (t) => {
  t.equal((await deploy({ name: 'lam' }, { 'index.js': V1.replace('v: 1', 'v: 2') })).status, 201);
  const current = await admin().send(new InvokeCommand({ FunctionName: 'lam' }));
  t.match(payloadOf(current), { v: 2 });
  t.equal(current.ExecutedVersion, '2');
  const first = await admin().send(new InvokeCommand({ FunctionName: 'lam', Qualifier: '1' }));
  t.match(payloadOf(first), { v: 1 });
  t.equal(first.ExecutedVersion, '1');
  const latest = await admin().send(new InvokeCommand({ FunctionName: 'arn:aws:lambda:eu-west-1:default:function:lam:$LATEST' }));
  t.match(payloadOf(latest), { v: 2 });
  t.match(await refusal(admin().send(new InvokeCommand({ FunctionName: 'arn:aws:lambda:us-east-1:other:function:lam' }))), {
    name: 'ResourceNotFoundException',
    status: 404,
  });
  t.match(await refusal(admin().send(new InvokeCommand({ FunctionName: 'lam', Qualifier: '9' }))), { name: 'ResourceNotFoundException', status: 404 });
});

t.test('InvokeWithResponseStream streams a buffered function’s payload as one chunk, then InvokeComplete', async (t) => {
  const out = await admin().send(new InvokeWithResponseStreamCommand({ FunctionName: 'lam', Payload: Buffer.from('{"s":1}') }));
  t.equal(out.StatusCode, 200);
  t.equal(out.ExecutedVersion, '2');
  const events: InvokeWithResponseStreamResponseEvent[] = [];
  for await (const event of out.EventStream ?? []) events.push(event);
  const chunks = events.filter((e) => e.PayloadChunk !== undefined);
  t.equal(chunks.length, 1, 'one PayloadChunk');
  t.same(JSON.parse(Buffer.from(chunks[0]?.PayloadChunk?.Payload ?? new Uint8Array()).toString('utf8')), { v: 2, got: { s: 1 } });
  t.ok(events.at(-1)?.InvokeComplete, 'InvokeComplete ends the stream');
  t.equal(events.at(-1)?.InvokeComplete?.ErrorCode, undefined, 'with no error');
});

const STREAMING = `export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  for (const part of ['one,', 'two,', 'three']) {
    responseStream.write(part);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  if (event.fail) throw new RangeError('failed part way');
  responseStream.end();
});`;

t.test('InvokeWithResponseStream streams a RESPONSE_STREAM function’s bytes; a failure part way ends it with InvokeComplete naming it', async (t) => {
  const deployed = await deploy({ name: 'lam-stream', handler: 'index.handler', invokeMode: 'RESPONSE_STREAM' }, { 'index.mjs': STREAMING });
  t.equal(deployed.status, 201, await deployed.clone().text());
  const read = async (payload: unknown): Promise<{ bytes: string; chunks: number; complete: InvokeWithResponseStreamResponseEvent['InvokeComplete'] }> => {
    const out = await admin().send(new InvokeWithResponseStreamCommand({ FunctionName: 'lam-stream', Payload: Buffer.from(JSON.stringify(payload)) }));
    t.equal(out.StatusCode, 200);
    const events: InvokeWithResponseStreamResponseEvent[] = [];
    for await (const event of out.EventStream ?? []) events.push(event);
    const chunks = events.filter((e) => e.PayloadChunk !== undefined);
    return {
      bytes: chunks.map((e) => Buffer.from(e.PayloadChunk?.Payload ?? new Uint8Array()).toString('utf8')).join(''),
      chunks: chunks.length,
      complete: events.at(-1)?.InvokeComplete,
    };
  };
  const ok = await read({});
  t.equal(ok.bytes, 'one,two,three', 'the bytes the handler wrote, in order');
  t.ok(ok.chunks >= 1, `in ${ok.chunks} PayloadChunk(s)`);
  t.ok(ok.complete, 'InvokeComplete ends the stream');
  t.equal(ok.complete?.ErrorCode, undefined, 'with no error');
  const failed = await read({ fail: true });
  t.equal(failed.complete?.ErrorCode, 'RangeError', 'a handler that throws part way: InvokeComplete names the error');
  t.match(JSON.parse(failed.complete?.ErrorDetails ?? '{}'), { errorMessage: 'failed part way', errorType: 'RangeError' });
});
