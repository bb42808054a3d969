/**
 * CORS for function URLs, as Lambda's function URL `Cors` setting does it: the platform answers a
 * browser's preflight (OPTIONS with `Origin` and `Access-Control-Request-Method`) itself, without
 * calling the function, and adds the CORS headers to every answer to an allowed origin (the
 * function's own answers and the platform's errors alike). A function with CORS settings does not
 * set `access-control-*` headers itself: the platform's are the ones sent. Without settings the
 * platform adds nothing and the function answers preflights as it likes.
 *
 * Origins compare as the browser sends them (scheme, host and port, case-insensitive); header
 * names case-insensitively; `*` allows any origin (never together with credentials: browsers
 * refuse `Access-Control-Allow-Origin: *` on credentialed requests, so it is refused at deploy),
 * any method or any header. Pure: the route (gateway/routes/function-url.ts) sends what this says.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { invalidRequest } from '../../infra/errors.js';
import type { Cors } from '../../infra/functions/version.js';

/** Lambda's bounds on the setting. */
export const CORS_LIMITS = { origins: 100, originLength: 253, methods: 6, methodLength: 6, headers: 100, headerLength: 1024, maxAge: 86_400 } as const;

/** The deploy schema of `cors` (gateway/routes/functions.ts): shapes and bounds; `corsOf` checks the rest. */
export const CORS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    allowOrigins: { type: 'array', maxItems: CORS_LIMITS.origins, items: { type: 'string', minLength: 1, maxLength: CORS_LIMITS.originLength } },
    allowMethods: { type: 'array', maxItems: CORS_LIMITS.methods, items: { type: 'string', minLength: 1, maxLength: CORS_LIMITS.methodLength } },
    allowHeaders: { type: 'array', maxItems: CORS_LIMITS.headers, items: { type: 'string', minLength: 1, maxLength: CORS_LIMITS.headerLength } },
    exposeHeaders: { type: 'array', maxItems: CORS_LIMITS.headers, items: { type: 'string', minLength: 1, maxLength: CORS_LIMITS.headerLength } },
    maxAge: { type: 'integer', minimum: 0, maximum: CORS_LIMITS.maxAge },
    allowCredentials: { type: 'boolean' },
  },
} as const;

/** RFC 9110 token: what a method or header name may be made of. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** An origin as a browser sends it: scheme, host, optional port; no path. */
const ORIGIN = /^[a-z][a-z0-9+.-]*:\/\/(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)(:\d{1,5})?$/;

/** A deploy's `cors`, checked and normalized (origins and methods in canonical case, no repeats); InvalidRequest naming the field. */
export function corsOf(input: Partial<Cors>): Cors {
  const allowOrigins = unique(
    (input.allowOrigins ?? []).map((origin, i) => {
      const value = origin.trim().toLowerCase();
      if (value !== '*' && !ORIGIN.test(value)) {
        throw invalidRequest(
          `cors.allowOrigins[${i}]`,
          `${JSON.stringify(origin)} is not * nor an origin such as https://www.example.com or http://localhost:8080 (no path)`,
        );
      }
      return value;
    }),
  );
  const allowMethods = unique(
    (input.allowMethods ?? []).map((method, i) => {
      const value = method.trim().toUpperCase();
      if (value !== '*' && !/^[A-Z]+$/.test(value))
        throw invalidRequest(`cors.allowMethods[${i}]`, `${JSON.stringify(method)} is not * nor an HTTP method such as GET`);
      return value;
    }),
  );
  const headers = (field: 'allowHeaders' | 'exposeHeaders'): string[] =>
    unique(
      (input[field] ?? []).map((header, i) => {
        const value = header.trim();
        if (!TOKEN.test(value)) throw invalidRequest(`cors.${field}[${i}]`, `${JSON.stringify(header)} is not a header name`);
        return value;
      }),
      (h) => h.toLowerCase(),
    );
  const allowCredentials = input.allowCredentials ?? false;
  if (allowCredentials && allowOrigins.includes('*')) {
    throw invalidRequest('cors.allowCredentials', 'allowCredentials cannot be true while allowOrigins has *: list the origins that may send credentials');
  }
  return {
    allowOrigins,
    allowMethods,
    allowHeaders: headers('allowHeaders'),
    exposeHeaders: headers('exposeHeaders'),
    maxAge: input.maxAge ?? 0,
    allowCredentials,
  };
}

/** Whether `request` is a CORS preflight (which the platform answers for a function with CORS settings). */
export function isPreflight(method: string, headers: IncomingHttpHeaders): boolean {
  return method === 'OPTIONS' && typeof headers.origin === 'string' && typeof headers['access-control-request-method'] === 'string';
}

/** Methods a browser never asks a preflight to allow (CORS-safelisted). */
const SAFELISTED_METHODS = new Set(['GET', 'HEAD', 'POST']);

/**
 * The headers answering a preflight: the grant, if the origin, the method and every requested
 * header are allowed; otherwise none but `Vary` (the browser then refuses the request).
 */
export function preflightHeaders(cors: Cors, headers: IncomingHttpHeaders): Record<string, string> {
  const origin = headers.origin;
  const method = headers['access-control-request-method'];
  const vary = { vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers' };
  if (typeof origin !== 'string' || typeof method !== 'string') return vary;
  const allowOrigin = allowedOrigin(cors, origin);
  if (allowOrigin === undefined) return vary;
  const wanted = method.trim().toUpperCase();
  const anyMethod = cors.allowMethods.includes('*');
  if (!anyMethod && !SAFELISTED_METHODS.has(wanted) && !cors.allowMethods.includes(wanted)) return vary;
  const requested = listOf(headers['access-control-request-headers']);
  const anyHeader = cors.allowHeaders.includes('*');
  const allowed = new Set(cors.allowHeaders.map((h) => h.toLowerCase()));
  if (!anyHeader && requested.some((h) => !allowed.has(h.toLowerCase()))) return vary;
  return {
    'access-control-allow-origin': allowOrigin,
    // With credentials a browser reads `*` literally, so the request's own method and headers are named.
    'access-control-allow-methods': anyMethod ? (cors.allowCredentials ? wanted : '*') : cors.allowMethods.join(', ') || wanted,
    ...(requested.length > 0 ? { 'access-control-allow-headers': anyHeader ? requested.join(', ') : cors.allowHeaders.join(', ') } : {}),
    ...(cors.allowCredentials ? { 'access-control-allow-credentials': 'true' } : {}),
    ...(cors.maxAge > 0 ? { 'access-control-max-age': String(cors.maxAge) } : {}),
    ...vary,
  };
}

/** The headers an answer to an actual request carries: the grant and the exposed headers, for an allowed origin. */
export function responseHeaders(cors: Cors, headers: IncomingHttpHeaders): Record<string, string> {
  const origin = headers.origin;
  // The answer depends on the Origin unless every origin gets the same `*`.
  const vary: Record<string, string> = cors.allowOrigins.includes('*') && !cors.allowCredentials ? {} : { vary: 'Origin' };
  if (typeof origin !== 'string') return vary;
  const allowOrigin = allowedOrigin(cors, origin);
  if (allowOrigin === undefined) return vary;
  return {
    'access-control-allow-origin': allowOrigin,
    ...(cors.exposeHeaders.length > 0 ? { 'access-control-expose-headers': cors.exposeHeaders.join(', ') } : {}),
    ...(cors.allowCredentials ? { 'access-control-allow-credentials': 'true' } : {}),
    ...vary,
  };
}

/** Whether `name` is one of the headers the platform owns for a function with CORS settings. */
export function isCorsHeader(name: string): boolean {
  return name.toLowerCase().startsWith('access-control-');
}

/** `Vary` values joined without repeats (case-insensitive). */
export function joinVary(...values: Array<string | undefined>): string {
  return unique(
    values.flatMap((v) => listOf(v)),
    (v) => v.toLowerCase(),
  ).join(', ');
}

/** What `Access-Control-Allow-Origin` answers `origin` with; undefined: not allowed. */
function allowedOrigin(cors: Cors, origin: string): string | undefined {
  if (cors.allowOrigins.includes('*') && !cors.allowCredentials) return '*';
  return cors.allowOrigins.includes(origin.trim().toLowerCase()) ? origin : undefined;
}

function listOf(value: string | string[] | undefined): string[] {
  const joined = Array.isArray(value) ? value.join(',') : (value ?? '');
  return joined
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v.length > 0);
}

function unique(values: string[], key: (v: string) => string = (v) => v): string[] {
  const seen = new Set<string>();
  return values.filter((v) => {
    const k = key(v);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
