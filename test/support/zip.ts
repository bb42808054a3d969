/** Builds zip archives for deploy tests (yazl, the writer twin of the yauzl reader the gateway uses). */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import yazl from 'yazl';

export type Files = Record<string, string | Buffer>;

/** `executable` names the entries zipped with mode 0755 (the others get yazl's default, 0644). */
export function zipFiles(files: Files, executable: readonly string[] = []): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const [name, content] of Object.entries(files)) {
    zip.addBuffer(Buffer.from(content), name, { mtime: new Date(0), ...(executable.includes(name) ? { mode: 0o100755 } : {}) });
  }
  return finish(zip);
}

/** Zips a directory tree, e.g. an app with its node_modules. */
export async function zipDirectory(dir: string, filter: (path: string) => boolean = () => true): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  const walk = async (current: string): Promise<void> => {
    for (const entry of await readdir(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      const name = relative(dir, path);
      if (!filter(name)) continue;
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) zip.addBuffer(await readFile(path), name, { mtime: new Date(0), mode: (await stat(path)).mode });
    }
  };
  await walk(dir);
  return finish(zip);
}

function finish(zip: yazl.ZipFile): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    zip.outputStream.on('data', (chunk: Buffer) => chunks.push(chunk));
    zip.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
    zip.outputStream.on('error', reject);
    zip.end();
  });
}

/**
 * yazl refuses hostile names, so a hostile zip is made with a harmless placeholder of the same
 * length, then patched in place (local header and central directory; names carry no checksum).
 */
export function patchName(zip: Buffer, placeholder: string, hostile: string): Buffer {
  const from = Buffer.from(placeholder);
  const to = Buffer.from(hostile);
  if (from.length !== to.length) throw new Error('placeholder and hostile name must have the same length');
  const out = Buffer.from(zip);
  let found = 0;
  for (let at = out.indexOf(from); at !== -1; at = out.indexOf(from, at + 1)) {
    to.copy(out, at);
    found++;
  }
  if (found === 0) throw new Error(`placeholder ${placeholder} not found`);
  return out;
}
