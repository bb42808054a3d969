/**
 * InvokeWithResponseStream's body: AWS event-stream messages (@smithy/eventstream-codec, the
 * SDK's own codec), `PayloadChunk` events carrying the payload's bytes, then one `InvokeComplete`
 * with the error (if the function failed) and the log tail. What produces the chunks is a
 * `ChunkSource`: a buffered function's whole payload is one chunk (as Lambda streams a function
 * not deployed for streaming); a streaming call path plugs in as another source.
 */
import { EventStreamCodec, type Message } from '@smithy/eventstream-codec';

/** The payload's bytes in order; the source ends with what InvokeComplete reports. */
export interface ChunkSource {
  chunks: AsyncIterable<Uint8Array>;
  /** Read once the chunks are done. */
  complete(): Promise<InvokeCompleteEvent>;
}

/** InvokeComplete's fields, as the SDK reads them. */
export interface InvokeCompleteEvent {
  ErrorCode?: string;
  ErrorDetails?: string;
  LogResult?: string;
}

const codec = new EventStreamCodec(
  (bytes) => Buffer.from(bytes).toString('utf8'),
  (text) => Buffer.from(text, 'utf8'),
);

export function eventMessage(eventType: 'PayloadChunk' | 'InvokeComplete', body: Uint8Array): Uint8Array {
  const message: Message = {
    headers: {
      ':event-type': { type: 'string', value: eventType },
      ':message-type': { type: 'string', value: 'event' },
      ':content-type': { type: 'string', value: eventType === 'PayloadChunk' ? 'application/octet-stream' : 'application/json' },
    },
    body,
  };
  return codec.encode(message);
}

/** A source of one chunk: a buffered call's whole payload. */
export function wholePayload(payload: Uint8Array, complete: InvokeCompleteEvent): ChunkSource {
  return {
    chunks: (async function* () {
      if (payload.length > 0) yield payload;
    })(),
    complete: async () => complete,
  };
}

/** The source as event-stream messages: a PayloadChunk per chunk, then InvokeComplete (a response body). */
export async function* eventStream(source: ChunkSource): AsyncGenerator<Uint8Array> {
  for await (const chunk of source.chunks) yield eventMessage('PayloadChunk', chunk);
  yield eventMessage('InvokeComplete', Buffer.from(JSON.stringify(await source.complete())));
}
