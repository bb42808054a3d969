/**
 * The dashboard's files (index.html, app.js, app.css in this directory of the source tree), served
 * as they are: no build step. tsc does not copy them next to the compiled module, so they are
 * found from it by walking up to the directory that holds `gateway/ui/index.html` (the repository
 * root, from dist/ or any other output directory), read once, and kept.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const UI_FILES = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
} as const;

export type UiFile = keyof typeof UI_FILES;

/** The directory holding the dashboard's files, or undefined if no ancestor of `from` has them. */
export function findUiDir(from: string = dirname(fileURLToPath(import.meta.url))): string | undefined {
  if (existsSync(join(from, 'index.html')) && existsSync(join(from, 'app.js'))) return from;
  for (let dir = from; ;) {
    const candidate = join(dir, 'gateway', 'ui');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

export class UiAssets {
  private readonly loaded = new Map<UiFile, Promise<string>>();

  constructor(private readonly dir: string | undefined = findUiDir()) {}

  /** The file's text; rejects when the files are not there (a gateway installed without its source tree). */
  get(file: UiFile): Promise<string> {
    let text = this.loaded.get(file);
    if (text === undefined) {
      const dir = this.dir;
      text =
        dir === undefined
          ? Promise.reject(new Error('the dashboard files (gateway/ui/) are not found above the gateway module'))
          : readFile(join(dir, file), 'utf8');
      // A failed read is not kept: the next request tries again.
      text.catch(() => this.loaded.delete(file));
      this.loaded.set(file, text);
    }
    return text;
  }
}
