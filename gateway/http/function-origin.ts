/**
 * Where function URLs live. Functions are served on an origin of their own, never the one of the
 * management API and the dashboard, so no function can run script or set cookies where an
 * operator's key is used (docs/SECURITY.md, "Origins"). Two shapes, from `config.gateway.functions`:
 * - path-based, the development default: `<origin>/fn/<name>`, one origin for every function
 *   (`publicUrl`, else the listener's own `http://host:port`);
 * - host-based, for production (`domain` set): `<scheme>://<name>.<domain>/`, one origin per
 *   function, so one function's page cannot read another's cookies or storage either.
 * Pure: the listener's bound port is passed in (port 0 in tests is only known after listen).
 */
import type { Config } from '../../infra/config.js';

type Functions = Config['gateway']['functions'];

/** Function names, as deploy accepts them (and as a DNS label must be). */
const NAME = /^[a-z][a-z0-9-]{0,62}$/;

/**
 * The origin serving `/fn/<name>` paths: `publicUrl` when set (no trailing slash), else the
 * listener's address with `boundPort` standing in for a configured port 0.
 */
export function functionsOrigin(config: Readonly<Config>, boundPort?: number): string {
  const fns = config.gateway.functions;
  if (fns.publicUrl !== undefined) return fns.publicUrl;
  return `http://${urlHost(fns.host)}:${listenerPort(fns, boundPort)}`;
}

/**
 * The absolute URL of function `name`: `<scheme>://<name>.<domain>[:port]/` with a domain
 * (scheme and port from `publicUrl` when set, else http and the listener's port), else
 * `<functionsOrigin>/fn/<name>`.
 */
export function functionUrl(config: Readonly<Config>, name: string, boundPort?: number): string {
  const fns = config.gateway.functions;
  if (fns.domain === undefined) return `${functionsOrigin(config, boundPort)}/fn/${encodeURIComponent(name)}`;
  const url = new URL(fns.publicUrl ?? `http://${fns.domain}:${listenerPort(fns, boundPort)}`);
  url.hostname = `${name}.${fns.domain}`;
  // URL drops the scheme's default port by itself (http://x:80 → http://x).
  return url.href;
}

/** Which function a request to the functions listener calls, and the path prefix that names it. */
export interface FunctionRoute {
  name: string;
  /** What precedes the function's own path: `/fn/<name>`, or '' on the function's own host. */
  prefix: string;
}

/**
 * The function a request calls: on `<name>.<domain>` (when a domain is configured) the whole path
 * is the function's, `/fn/...` included, so no other function can be reached from its origin;
 * on any other host, `/fn/<name>[/...]`. Undefined: not a function URL (404).
 */
export function routeFunction(domain: string | undefined, host: string | undefined, path: string): FunctionRoute | undefined {
  if (!path.startsWith('/')) return undefined; // `*` or an absolute-form target: no function's
  if (domain !== undefined && host !== undefined) {
    const hostname = hostnameOf(host);
    if (hostname.endsWith(`.${domain}`)) {
      const name = hostname.slice(0, -domain.length - 1);
      // A deeper name (a.b.<domain>) or one deploy would refuse is no function: 404, not a lookup.
      return NAME.test(name) ? { name, prefix: '' } : undefined;
    }
  }
  const match = /^\/fn\/([^/?]+)(?:[/?]|$)/.exec(path);
  const name = match?.[1];
  return name !== undefined && NAME.test(name) ? { name, prefix: `/fn/${name}` } : undefined;
}

/** `Hello.FN.test:8081` → `hello.fn.test`; a trailing dot (absolute DNS name) is dropped too. */
function hostnameOf(host: string): string {
  const bare = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : (host.split(':')[0] ?? '');
  return bare.toLowerCase().replace(/\.$/, '');
}

/**
 * Port 0 asks for any free port: only the bound one names the listener. Before it listens (an app
 * used with inject()) the URL says :0 rather than failing the request that wanted it.
 */
function listenerPort(fns: Functions, boundPort: number | undefined): number {
  return fns.port !== 0 ? fns.port : (boundPort ?? 0);
}

/** A listen address as a URL host: a wildcard is reached on loopback, IPv6 is bracketed. */
function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}
