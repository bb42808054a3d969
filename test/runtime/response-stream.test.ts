/**
 * Response streaming in the Node.js bootstrap, without a worker: the `awslambda` global as Lambda's
 * runtime gives it, a streaming handler's bytes as chunks (prelude included, split at the chunk
 * size) or collected into one function URL response, and how its invocation ends.
 */
import t from 'tap';
import { runStreamingHandler } from '../../runtime/nodejs/invoke.js';
import {
  bufferedStreamResult,
  installAwsLambdaGlobal,
  isStreamingHandler,
  type ResponseStream,
  type StreamingHandler,
} from '../../runtime/nodejs/response-stream.js';
import type { LambdaContext } from '../../runtime/nodejs/context.js';
import { HTTP_INTEGRATION_CONTENT_TYPE, MAX_CHUNK_BYTES } from '../../runtime/protocol/messages.js';

installAwsLambdaGlobal();
const awslambda = (
  globalThis as unknown as {
    awslambda: {
      streamifyResponse(handler: StreamingHandler): StreamingHandler;
      HttpResponseStream: { from(stream: ResponseStream, prelude: unknown): ResponseStream };
    };
  }
).awslambda;
const context = {} as LambdaContext;

function sink(): { chunks: Array<[string, string | undefined]>; write: (data: Buffer, contentType: string | undefined) => void } {
  const chunks: Array<[string, string | undefined]> = [];
  return { chunks, write: (data, contentType) => chunks.push([data.toString('latin1'), contentType]) };
}

t.test('streamifyResponse marks a handler with the symbol Lambda uses', async (t) => {
  const handler = awslambda.streamifyResponse(async () => undefined);
  t.ok(isStreamingHandler(handler));
  t.equal((handler as unknown as Record<symbol, unknown>)[Symbol.for('aws.lambda.runtime.handler.streaming')], 'response');
  t.notOk(isStreamingHandler(async () => undefined));
});

t.test('streamed: the content type first, then the prelude, its 8 NULs, and the body as written', async (t) => {
  const out = sink();
  const handler = awslambda.streamifyResponse(async (_event, stream) => {
    const http = awslambda.HttpResponseStream.from(stream, { statusCode: 201, headers: { 'x-a': '1' } });
    http.write('one');
    http.end('two');
  });
  t.same(await runStreamingHandler(handler, {}, context, out.write), { ok: true, value: null });
  t.same(out.chunks, [
    ['', HTTP_INTEGRATION_CONTENT_TYPE],
    ['{"statusCode":201,"headers":{"x-a":"1"}}', undefined],
    ['\0'.repeat(8), undefined],
    ['one', undefined],
    ['two', undefined],
  ]);
});

t.test('a large write goes as chunks of at most MAX_CHUNK_BYTES; a stream left open is ended once the handler resolves', async (t) => {
  const out = sink();
  const handler = awslambda.streamifyResponse(async (_event, stream) => {
    stream.setContentType('text/plain');
    stream.write(Buffer.alloc(MAX_CHUNK_BYTES * 2 + 1, 'x'));
  });
  t.same(await runStreamingHandler(handler, {}, context, out.write), { ok: true, value: null });
  t.same(
    out.chunks.map(([data, type]) => [data.length, type]),
    [
      [0, 'text/plain'],
      [MAX_CHUNK_BYTES, undefined],
      [MAX_CHUNK_BYTES, undefined],
      [1, undefined],
    ],
  );
});

t.test('buffered: the whole output as one function URL response', async (t) => {
  const handler = awslambda.streamifyResponse(async (_event, stream) => {
    const http = awslambda.HttpResponseStream.from(stream, { statusCode: 202, headers: { 'Content-Type': 'text/event-stream' }, cookies: ['a=1'] });
    http.write('data: x\n\n');
    http.end();
  });
  const outcome = await runStreamingHandler(handler, {}, context, undefined);
  t.same(outcome, {
    ok: true,
    value: {
      statusCode: 202,
      headers: { 'Content-Type': 'text/event-stream' },
      cookies: ['a=1'],
      body: Buffer.from('data: x\n\n').toString('base64'),
      isBase64Encoded: true,
    },
  });
  t.same(bufferedStreamResult('text/plain', Buffer.from('hi')), {
    statusCode: 200,
    headers: { 'content-type': 'text/plain' },
    body: 'aGk=',
    isBase64Encoded: true,
  });
  t.match(bufferedStreamResult(HTTP_INTEGRATION_CONTENT_TYPE, Buffer.from('{}\0\0\0\0\0\0\0\0')), {
    statusCode: 200,
    headers: { 'content-type': 'application/octet-stream' },
    body: '',
  });
});

t.test('a handler that rejects, or a stream that errors, fails the invocation', async (t) => {
  const rejects = awslambda.streamifyResponse(async (_event, stream) => {
    stream.write('partial');
    throw new TypeError('boom');
  });
  t.match(await runStreamingHandler(rejects, {}, context, sink().write), { ok: false, error: { name: 'TypeError', message: 'boom' } });
  const errors = awslambda.streamifyResponse(async (_event, stream) => {
    stream.write('x');
    stream.setContentType('late'); // after the first write: the write fails
  });
  t.match(await runStreamingHandler(errors, {}, context, sink().write), { ok: false, error: { message: /before the first write/ } });
});
