/**
 * Where Skiff keeps its images in the registry. Repository names are Skiff's own and hold no
 * registry host: the host is REGISTRY_URL's, so the same names work against any registry.
 */
import type { Runtime } from '../functions/version.js';

/** The base image of a runtime: the interpreter, its libraries and the bootstrap. */
export const runtimeRepository = (runtime: Runtime | string): string => `skiff/runtime/${runtime}`;

/** The images of one function's versions. */
export const functionRepository = (name: string): string => `skiff/functions/${name}`;

/** The tag a runtime's newest base image has; functions deployed from now on are built on it. */
export const CURRENT_TAG = 'current';

/** Image config label naming the runtime an image was built for. */
export const RUNTIME_LABEL = 'dev.skiff.runtime';
