/**
 * Resolves a Lambda-style handler string (`path/to/file.exportName`) inside the task root and
 * loads it. Dynamic import() serves both module kinds: ESM directly, CommonJS via Node's
 * interop (module.exports becomes `default`, statically visible names become named exports).
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Handler } from './context.js';
import { runtimeError } from './errors.js';

/** Tried in this order, as Lambda's Node.js runtime does. */
const MODULE_EXTENSIONS = ['.js', '.mjs', '.cjs'] as const;

export interface HandlerName {
  /** The file without its extension, relative to the task root. */
  modulePath: string;
  exportName: string;
}

/** The export name is after the last dot, so module paths may themselves contain dots. */
export function parseHandlerName(handler: string): HandlerName {
  const dot = handler.lastIndexOf('.');
  const modulePath = handler.slice(0, Math.max(dot, 0));
  const exportName = handler.slice(dot + 1);
  if (dot <= 0 || exportName === '' || modulePath.endsWith('/')) {
    throw runtimeError('Runtime.MalformedHandlerName', `Bad handler '${handler}': expected 'path/to/file.exportName'`);
  }
  return { modulePath, exportName };
}

/**
 * The module's path without extension. Handlers must stay inside the task root: the handler
 * string comes from configuration, and `../` or an absolute path would load code from elsewhere.
 */
export function resolveModuleBase(taskRoot: string, modulePath: string): string {
  const root = path.resolve(taskRoot);
  const base = path.resolve(root, modulePath);
  const relative = path.relative(root, base);
  if (relative === '' || relative === '..' || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative)) {
    throw runtimeError('Runtime.MalformedHandlerName', `Handler module '${modulePath}' is outside the task root`);
  }
  return base;
}

async function findModuleFile(base: string, modulePath: string): Promise<string> {
  for (const extension of MODULE_EXTENSIONS) {
    const file = base + extension;
    const found = await stat(file).then(
      (s) => s.isFile(),
      () => false,
    );
    if (found) return file;
  }
  throw runtimeError('Runtime.ImportModuleError', `Cannot find module '${modulePath}' (tried ${MODULE_EXTENSIONS.join(', ')} in the task root)`);
}

/** Import failures keep the user's error, except a missing dependency, which Lambda names specially. */
function importFailure(error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (!(error instanceof Error) || (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND')) return error;
  const wrapped = runtimeError('Runtime.ImportModuleError', `${error.name}: ${error.message}`, { cause: error });
  // The user needs the trace of their own import, not of the bootstrap's wrapper.
  if (error.stack !== undefined) wrapped.stack = error.stack;
  return wrapped;
}

/** For CommonJS, names that Node could not detect statically are only reachable through `default`. */
function pickExport(namespace: Record<string, unknown>, exportName: string): unknown {
  const direct = namespace[exportName];
  if (direct !== undefined) return direct;
  const fallback = namespace['default'];
  if ((typeof fallback === 'object' && fallback !== null) || typeof fallback === 'function') {
    return (fallback as Record<string, unknown>)[exportName];
  }
  return undefined;
}

export async function loadHandler(taskRoot: string, handler: string): Promise<Handler> {
  const { modulePath, exportName } = parseHandlerName(handler);
  const file = await findModuleFile(resolveModuleBase(taskRoot, modulePath), modulePath);
  let namespace: Record<string, unknown>;
  try {
    namespace = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (error) {
    throw importFailure(error);
  }
  const exported = pickExport(namespace, exportName);
  if (typeof exported !== 'function') {
    throw runtimeError('Runtime.HandlerNotFound', `${modulePath}.${exportName} is undefined or not a function`);
  }
  return exported as Handler;
}
