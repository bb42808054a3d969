/**
 * Lays out a Node.js function directory with some of this repository's installed npm packages
 * (and everything they depend on) in its node_modules, as `npm install` in the function's own
 * directory would: for deploying real Lambda apps (Express behind serverless-http) in tests.
 */
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export async function functionDirectory(dir: string, files: Record<string, string>, packages: string[], from = 'node_modules'): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  const needed = new Set<string>();
  const visit = async (name: string): Promise<void> => {
    if (needed.has(name)) return;
    const manifest = join(from, name, 'package.json');
    if (!existsSync(manifest)) throw new Error(`${name} is not installed under ${from}`);
    needed.add(name);
    const pkg = JSON.parse(await readFile(manifest, 'utf8')) as { dependencies?: Record<string, string> };
    for (const dep of Object.keys(pkg.dependencies ?? {})) await visit(dep);
  };
  for (const name of packages) await visit(name);
  for (const name of needed) await cp(join(from, name), join(dir, 'node_modules', name), { recursive: true, dereference: true });
}
