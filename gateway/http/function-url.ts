/**
 * The HTTP side of `/fn/:name`: an HTTP request becomes an AWS Lambda function URL event
 * (payload format 2.0), and whatever the handler returns becomes an HTTP response, both as
 * Lambda does it. Lambda adapters (serverless-http, @fastify/aws-lambda) read exactly these
 * fields, so getting them right is what lets existing apps run unchanged:
 * - serverless-http builds the request URL from `rawPath` + `rawQueryString`, the cookie header
 *   from `cookies`, the body from `body` + `isBase64Encoded`, and returns `cookies` (v2) for
 *   multiple Set-Cookie values but leaves a single one in `headers`;
 * - @fastify/aws-lambda uses `rawPath` and the already-decoded `queryStringParameters` (it
 *   splits their commas back into arrays), and trusts a `content-length` header if present.
 *
 * Two things are the platform's, not the function's (docs/SECURITY.md, "Tenants, keys and
 * roles"): a credential the platform consumed never reaches the function (the caller is named
 * instead, in Lambda's IAM authorizer shape), and `x-skiff-*` response headers cannot be set by a
 * function.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { validateHeaderName, validateHeaderValue } from 'node:http';
import { isUtf8 } from 'node:buffer';
import { SkiffError } from '../../infra/errors.js';
import type { Principal, Role } from '../../infra/tenancy/roles.js';

export interface FunctionUrlRequest {
  method: string;
  /** The raw request target, query included, e.g. `/fn/hello/users/42?x=1&x=2`. */
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer | undefined;
  remoteAddress: string;
}

/** AWS Lambda function URL event, payload format 2.0. */
export interface FunctionUrlEvent {
  version: '2.0';
  routeKey: '$default';
  rawPath: string;
  rawQueryString: string;
  cookies?: string[];
  headers: Record<string, string>;
  queryStringParameters?: Record<string, string>;
  requestContext: {
    accountId: string;
    apiId: string;
    domainName: string;
    domainPrefix: string;
    http: { method: string; path: string; protocol: string; sourceIp: string; userAgent: string };
    requestId: string;
    routeKey: '$default';
    stage: '$default';
    /** e.g. `12/Mar/2020:19:03:58 +0000` */
    time: string;
    timeEpoch: number;
    /** Who called, when the platform verified a key for an `auth: "key"` function. */
    authorizer?: { iam: IamAuthorizer };
  };
  body?: string;
  isBase64Encoded: boolean;
}

/** Lambda's IAM authorizer context (function URLs with AWS_IAM auth), plus the key's role. */
export interface IamAuthorizer {
  /** The key's id, never its secret. */
  accessKey: string;
  /** The caller's tenant. */
  accountId: string;
  callerId: string;
  cognitoIdentity: null;
  principalOrgId: null;
  /** `arn:skiff:iam::<tenant>:key/<keyId>` */
  userArn: string;
  userId: string;
  role: Role;
}

/** Whose function the event is for, and who calls it. */
export interface EventIdentity {
  /** The function's tenant: the event's `requestContext.accountId`. */
  tenant: string;
  /**
   * The caller the platform verified (an `auth: "key"` function): its `authorization` header is
   * removed from the event and the caller is named in `requestContext.authorizer.iam`. Undefined
   * (`auth: "none"`): headers pass untouched, so an app can do its own bearer auth.
   */
  caller?: Principal | undefined;
}

export interface FunctionUrlResponse {
  statusCode: number;
  /** Lowercased names, one value each; never `set-cookie` (see `cookies`). */
  headers: Record<string, string>;
  /** One Set-Cookie header each. */
  cookies: string[];
  body: Buffer;
}

/**
 * Headers that describe one connection, not the message. The gateway has read the body whole, so
 * the function sees it with a content-length, as behind Lambda's own front end; and it is the
 * gateway that frames the response, so the function's framing headers are dropped.
 */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);

/** Response headers only the platform sets. */
export const PLATFORM_HEADER_PREFIX = 'x-skiff-';

/** Media types whose bodies Lambda passes as text; everything else is base64. */
const TEXT_TYPES = new Set(['application/json', 'application/xml', 'application/x-www-form-urlencoded', 'application/javascript']);

function isTextType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const type = (contentType.split(';')[0] ?? '').trim().toLowerCase();
  return type.startsWith('text/') || TEXT_TYPES.has(type) || (type.startsWith('application/') && type.endsWith('+json'));
}

/**
 * The event for a request. `identity` absent: an anonymous event (`accountId: 'anonymous'`), as
 * Lambda gives a function URL without auth.
 */
export function toFunctionUrlEvent(
  req: FunctionUrlRequest,
  functionName: string,
  pathPrefix: string,
  requestId: string,
  now: Date,
  identity?: EventIdentity,
): FunctionUrlEvent {
  const queryAt = req.url.indexOf('?');
  const path = queryAt === -1 ? req.url : req.url.slice(0, queryAt);
  const rawQueryString = queryAt === -1 ? '' : req.url.slice(queryAt + 1);
  const prefix = pathPrefix.endsWith('/') ? pathPrefix.slice(0, -1) : pathPrefix;
  // The route matched already; a mismatch here is a gateway bug, not a bad request.
  if (path !== prefix && !path.startsWith(prefix + '/')) {
    throw new Error(`function URL ${JSON.stringify(req.url)} does not start with ${JSON.stringify(prefix)}`);
  }
  const rawPath = path.slice(prefix.length) || '/';

  const { headers, cookies } = eventHeaders(req.headers);
  const caller = identity?.caller;
  // The platform consumed this credential; the function learns who called, never the secret.
  if (caller !== undefined) delete headers['authorization'];
  const body = req.body !== undefined && req.body.length > 0 ? req.body : undefined;
  if (body !== undefined) headers['content-length'] = String(body.length);
  else delete headers['content-length'];

  const domainName = headers['host'] ?? '';
  const event: FunctionUrlEvent = {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString,
    headers,
    requestContext: {
      accountId: identity?.tenant ?? 'anonymous',
      apiId: functionName,
      domainName,
      domainPrefix: domainPrefixOf(domainName),
      http: {
        method: req.method.toUpperCase(),
        path: rawPath,
        protocol: 'HTTP/1.1',
        sourceIp: req.remoteAddress,
        userAgent: headers['user-agent'] ?? '',
      },
      requestId,
      routeKey: '$default',
      stage: '$default',
      time: formatClfTime(now),
      timeEpoch: now.getTime(),
    },
    isBase64Encoded: false,
  };
  if (caller !== undefined) event.requestContext.authorizer = { iam: iamAuthorizer(caller) };
  if (cookies.length > 0) event.cookies = cookies;
  const query = parseQuery(rawQueryString);
  if (query !== undefined) event.queryStringParameters = query;
  if (body !== undefined) {
    // Text only when it survives the round trip: adapters re-encode the string as UTF-8, so
    // bytes that are not UTF-8 (a latin1 form, say) must travel as base64 to arrive intact.
    if (isTextType(headers['content-type']) && isUtf8(body)) {
      event.body = body.toString('utf8');
    } else {
      event.body = body.toString('base64');
      event.isBase64Encoded = true;
    }
  }
  return event;
}

function iamAuthorizer(caller: Principal): IamAuthorizer {
  return {
    accessKey: caller.keyId,
    accountId: caller.tenant,
    callerId: caller.keyId,
    cognitoIdentity: null,
    principalOrgId: null,
    userArn: `arn:skiff:iam::${caller.tenant}:key/${caller.keyId}`,
    userId: caller.keyId,
    role: caller.role,
  };
}

/**
 * Lowercased names, repeated headers joined with ',' (as Lambda does); the cookie header is
 * moved to `cookies`, one entry per cookie, also as Lambda does.
 */
function eventHeaders(incoming: IncomingHttpHeaders): { headers: Record<string, string>; cookies: string[] } {
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  for (const [rawName, value] of Object.entries(incoming)) {
    if (value === undefined) continue;
    const name = rawName.toLowerCase();
    if (name === 'cookie') {
      for (const header of Array.isArray(value) ? value : [value]) {
        for (const cookie of header.split(';')) {
          const trimmed = cookie.trim();
          if (trimmed !== '') cookies.push(trimmed);
        }
      }
      continue;
    }
    if (HOP_BY_HOP.has(name)) continue;
    const joined = Array.isArray(value) ? value.join(',') : value;
    const previous = headers[name];
    headers[name] = previous === undefined ? joined : `${previous},${joined}`;
  }
  return { headers, cookies };
}

/**
 * Decoded parameters, repeated keys joined with ','; undefined when there is no query. Decoding
 * is the WHATWG form decoding (`+` is a space, malformed escapes are kept as they are).
 */
function parseQuery(rawQueryString: string): Record<string, string> | undefined {
  if (rawQueryString === '') return undefined;
  const params = new Map<string, string>();
  for (const [key, value] of new URLSearchParams(rawQueryString)) {
    const previous = params.get(key);
    params.set(key, previous === undefined ? value : `${previous},${value}`);
  }
  // fromEntries defines own properties, so a key like `__proto__` stays an ordinary key.
  return params.size === 0 ? undefined : Object.fromEntries(params);
}

/** `hello.example.com:8080` → `hello`; `[::1]:8080` → `[::1]`. */
function domainPrefixOf(host: string): string {
  const hostname = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : (host.split(':')[0] ?? '');
  return hostname.split('.')[0] ?? '';
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

/** Common Log Format time in UTC, as in Lambda events: `12/Mar/2020:19:03:58 +0000`. */
function formatClfTime(d: Date): string {
  const two = (n: number): string => String(n).padStart(2, '0');
  return `${two(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`;
}

// ---------------------------------------------------------------------------------------------

/**
 * The HTTP response for a handler's return value, as Lambda function URLs map it. A value with a
 * `statusCode` is a response description; anything else is the body of a 200 JSON response
 * (a returned string too is JSON-encoded, as Lambda does: `"Hello"` reaches the client quoted).
 * A malformed description is the function's fault: a FunctionError (502).
 */
export function fromFunctionResult(value: unknown): FunctionUrlResponse {
  if (!isRecord(value) || value['statusCode'] === undefined) {
    return {
      statusCode: 200,
      headers: { 'content-type': 'application/json' },
      cookies: [],
      body: Buffer.from(value === undefined || value === null ? '' : (JSON.stringify(value) ?? ''), 'utf8'),
    };
  }

  const statusCode = value['statusCode'];
  if (typeof statusCode !== 'number' || !Number.isInteger(statusCode) || statusCode < 100 || statusCode > 599) {
    throw invalidResponse(`statusCode ${JSON.stringify(statusCode)} is not an integer from 100 to 599`);
  }
  const { headers, cookies } = responseHeaders(value['headers']);
  cookies.push(...responseCookies(value['cookies']));
  if (headers['content-type'] === undefined) headers['content-type'] = 'application/json';
  return { statusCode, headers, cookies, body: responseBody(value['body'], value['isBase64Encoded'] === true) };
}

function responseHeaders(raw: unknown): { headers: Record<string, string>; cookies: string[] } {
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  if (raw === undefined || raw === null) return { headers, cookies };
  if (!isRecord(raw)) throw invalidResponse('headers must be an object of header names to values');
  for (const [rawName, rawValue] of Object.entries(raw)) {
    if (rawValue === undefined || rawValue === null) continue;
    const name = rawName.toLowerCase();
    const values = (Array.isArray(rawValue) ? rawValue : [rawValue]).map((v) => headerValue(name, v));
    checkHeader(name, values);
    // Set-Cookie can't be joined with commas (cookie dates contain them): it goes to `cookies`.
    if (name === 'set-cookie') {
      cookies.push(...values);
      continue;
    }
    // The gateway frames the body itself and computes its length.
    if (HOP_BY_HOP.has(name) || name === 'content-length') continue;
    // x-skiff-* are the platform's (invocation id, cold start, trace id): a function's are dropped,
    // so a client can trust them. Cookies stay: the function's own origin is theirs to set.
    if (name.startsWith(PLATFORM_HEADER_PREFIX)) continue;
    const joined = values.join(',');
    const previous = headers[name];
    headers[name] = previous === undefined ? joined : `${previous},${joined}`;
  }
  return { headers, cookies };
}

function responseCookies(raw: unknown): string[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw invalidResponse('cookies must be an array of strings');
  const cookies = raw.map((c) => headerValue('set-cookie', c));
  checkHeader('set-cookie', cookies);
  return cookies;
}

function responseBody(raw: unknown, isBase64Encoded: boolean): Buffer {
  if (raw === undefined || raw === null) return Buffer.alloc(0);
  if (typeof raw !== 'string') throw invalidResponse(`body must be a string (got ${Array.isArray(raw) ? 'array' : typeof raw}); JSON.stringify it`);
  return Buffer.from(raw, isBase64Encoded ? 'base64' : 'utf8');
}

function headerValue(name: string, value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw invalidResponse(`header ${JSON.stringify(name)} has a ${value === null ? 'null' : typeof value} value; use a string`);
}

/** Node would refuse these when writing the response; refuse them here, blaming the function. */
function checkHeader(name: string, values: string[]): void {
  try {
    validateHeaderName(name);
    for (const v of values) validateHeaderValue(name, v);
  } catch (err) {
    throw invalidResponse(`header ${JSON.stringify(name)} is not a valid HTTP header`, err);
  }
}

function invalidResponse(problem: string, cause?: unknown): SkiffError {
  return new SkiffError('FunctionError', `the function returned an invalid HTTP response: ${problem}`, {
    errorType: 'InvalidResponse',
    ...(cause === undefined ? {} : { cause }),
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
