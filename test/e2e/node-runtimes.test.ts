/**
 * The Node.js runtimes end to end: `nodejs22` and `nodejs24` functions run in their own base images
 * (official Node.js releases), and a handler wrapped in `awslambda.streamifyResponse` streams
 * through the function URL of a `RESPONSE_STREAM` function: chunk by chunk (the first chunk arrives
 * while the handler still waits for the test), with the prelude's status and headers (SSE), cut
 * with FunctionResponseTooLarge past the stream limit; buffered functions answer as before.
 */
import t from 'tap';
import { client, eventually } from '../support/api.js';
import { startPlatform, type Platform } from '../support/platform.js';

/** Small, so the over-limit case is quick. */
const STREAM_LIMIT_BYTES = 256 * 1024;

let platform: Platform;
t.before(async () => {
  platform = await startPlatform({ SKIFF_STREAM_LIMIT_BYTES: String(STREAM_LIMIT_BYTES) });
});
t.teardown(async () => {
  await platform?.stop();
});

const api = client(() => platform);

const VERSION = `
export const handler = async () => ({ version: process.version, executionEnv: process.env.AWS_EXECUTION_ENV });
`;

/**
 * One instance serving two calls at once: `/sse` writes its first event and waits until a call
 * with `{release: true}` (made by the test, once it has read that event) lets it write the second.
 */
const STREAMER = `
let release;
const released = new Promise((resolve) => (release = resolve));

export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  if (event.release) {
    release();
    responseStream.write('released');
    responseStream.end();
    return;
  }
  if (event.rawPath === '/sse') {
    const stream = awslambda.HttpResponseStream.from(responseStream, {
      statusCode: 201,
      headers: { 'content-type': 'text/event-stream', 'x-kind': 'sse' },
    });
    stream.write('data: one\\n\\n');
    await released;
    stream.write('data: two\\n\\n');
    stream.end();
    return;
  }
  // /big: more than the stream limit, written with backpressure.
  const piece = 'x'.repeat(64 * 1024);
  for (let i = 0; i < 64; i++) {
    if (!responseStream.write(piece)) await new Promise((resolve) => responseStream.once('drain', resolve));
  }
  responseStream.end();
});
`;

for (const [runtime, major] of [
  ['nodejs22', 22],
  ['nodejs24', 24],
] as const) {
  t.test(`a ${runtime} function runs on Node.js ${major}`, async (t) => {
    const name = `version-${major}`;
    const res = await api.deploy({ name, runtime }, { 'index.mjs': VERSION });
    t.equal(res.status, 201, 'deploy answers 201');
    t.match(await res.json(), { name, runtime });
    const call = await api.invoke(name, {}, platform.auth);
    t.equal(call.status, 200);
    const body = (await call.json()) as { version: string; executionEnv: string };
    t.match(body.version, new RegExp(`^v${major}\\.`), `process.version is ${body.version}`);
    t.equal(body.executionEnv, `AWS_Lambda_${runtime}.x`);
  });
}

t.test('a buffered function URL answers whole, with its length, as before', async (t) => {
  const res = await fetch(`${platform.fnUrl}/fn/version-22`);
  t.equal(res.status, 200);
  t.equal(res.headers.get('content-type'), 'application/json');
  t.ok(res.headers.get('content-length'), 'a content-length, not chunked');
  t.match(await res.json(), { version: /^v22\./ });
});

t.test('a streamed function URL sends its first chunk before the handler ends, with the prelude’s status and headers', async (t) => {
  const res = await api.deploy(
    { name: 'streamer', runtime: 'nodejs22', handler: 'index.handler', invokeMode: 'RESPONSE_STREAM', concurrency: 2, maxInstances: 1 },
    { 'index.mjs': STREAMER },
  );
  t.equal(res.status, 201, 'deploy answers 201');
  t.match(await res.json(), { invokeMode: 'RESPONSE_STREAM' });

  const stream = await fetch(`${platform.fnUrl}/fn/streamer/sse`);
  t.equal(stream.status, 201, "the prelude's status");
  t.equal(stream.headers.get('content-type'), 'text/event-stream', 'Server-Sent Events pass through');
  t.equal(stream.headers.get('x-kind'), 'sse');
  t.equal(stream.headers.get('content-length'), null, 'no length: chunked');
  t.ok(stream.headers.get('x-skiff-invocation-id'));
  const reader = (stream.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!text.includes('\n\n')) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  // The handler cannot have ended: it waits for the release, which is only sent now.
  t.equal(text, 'data: one\n\n', 'the first event arrived while the handler waited');

  // A streaming handler called without streaming (the invoke API) has its output buffered whole.
  const release = await api.invoke('streamer', { release: true }, platform.auth);
  t.equal(release.status, 200);
  const released = (await release.json()) as { statusCode: number; headers: Record<string, string>; body: string; isBase64Encoded: boolean };
  t.match(released, { statusCode: 200, headers: { 'content-type': 'application/octet-stream' }, isBase64Encoded: true });
  t.equal(Buffer.from(released.body, 'base64').toString(), 'released');

  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  t.equal(text, 'data: one\n\ndata: two\n\n', 'the second event followed, and the stream ended');
});

t.test('a stream past the limit is cut, and the call fails FunctionResponseTooLarge', async (t) => {
  const res = await fetch(`${platform.fnUrl}/fn/streamer/big`);
  t.equal(res.status, 200, 'the stream had started');
  t.equal(res.headers.get('content-type'), 'application/octet-stream', 'the default content type of a stream');
  const id = res.headers.get('x-skiff-invocation-id');
  let received = 0;
  const read = async (): Promise<void> => {
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      received += value.length;
    }
  };
  await t.rejects(read(), 'the response is cut, not ended');
  t.ok(received <= STREAM_LIMIT_BYTES, `at most the limit arrived (${received} bytes)`);
  let record: { status?: string; error?: { code: string; message: string } } = {};
  t.ok(
    await eventually(async () => {
      const r = await fetch(`${platform.url}/v1/invocations/${id}`, { headers: platform.auth });
      record = (await r.json()) as typeof record;
      return record.status === 'failed';
    }),
    'the call is recorded failed',
  );
  t.match(record.error, { code: 'FunctionResponseTooLarge', message: /streamed more than the limit of 262144 bytes/ });
});
