/** Builds tar archives of exactly the entries given (hostile ones too), for layer tests. */
import tar, { type Headers } from 'tar-stream';

export type TarEntry = Headers & { data?: Buffer | string };

/** The tar (not gzipped) of these entries, in order. */
export async function tarOf(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const chunk of pack) chunks.push(chunk as Buffer);
  })();
  for (const { data, ...header } of entries) {
    await new Promise<void>((resolve, reject) => pack.entry({ mtime: new Date(0), ...header }, data ?? '', (error) => (error ? reject(error) : resolve())));
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}
