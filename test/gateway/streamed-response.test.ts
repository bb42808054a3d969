/**
 * A streamed function URL's response (gateway/http/streamed-response.ts): the prelude read across
 * chunk boundaries, checked like a buffered response's head, the rest passed through as it came.
 */
import t from 'tap';
import { toStreamedResponse } from '../../gateway/http/streamed-response.js';
import { isSkiffError } from '../../infra/errors.js';
import { HTTP_INTEGRATION_CONTENT_TYPE } from '../../runtime/protocol/messages.js';

async function* chunks(...parts: string[]): AsyncGenerator<Buffer> {
  for (const part of parts) yield Buffer.from(part, 'latin1');
}

async function body(response: { body: AsyncIterable<Buffer> }): Promise<string[]> {
  const out: string[] = [];
  for await (const chunk of response.body) out.push(chunk.toString('latin1'));
  return out;
}

t.test('a plain stream is a 200 of its content type, passed through chunk by chunk', async (t) => {
  const response = await toStreamedResponse('text/plain', chunks('a', 'b'));
  t.match(response, { statusCode: 200, headers: { 'content-type': 'text/plain' }, cookies: [] });
  t.same(await body(response), ['a', 'b']);
});

t.test('a prelude split across chunks gives the status, headers and cookies; the body follows', async (t) => {
  const response = await toStreamedResponse(
    HTTP_INTEGRATION_CONTENT_TYPE,
    chunks(
      '{"statusCode":201,"headers":{"Content-Type":"text/event-stream","x-skiff-fake":"1"},',
      '"cookies":["a=1"]}\0\0\0',
      '\0\0\0\0\0data: 1\n\n',
      'data: 2\n\n',
    ),
  );
  t.same(response.statusCode, 201);
  t.same(response.headers, { 'content-type': 'text/event-stream' }, "a function's x-skiff-* header is dropped");
  t.same(response.cookies, ['a=1']);
  t.same(await body(response), ['data: 1\n\n', 'data: 2\n\n']);
});

t.test('a prelude that is not an object, names a bad status, or never ends is the function’s error', async (t) => {
  for (const parts of [['[1]\0\0\0\0\0\0\0\0'], ['{"statusCode":99}\0\0\0\0\0\0\0\0'], ['x'.repeat(70 * 1024)]]) {
    const error = await toStreamedResponse(HTTP_INTEGRATION_CONTENT_TYPE, chunks(...parts)).catch((e: unknown) => e);
    t.ok(isSkiffError(error, 'FunctionError'), String((error as Error).message));
  }
});
