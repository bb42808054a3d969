/**
 * How the registry client proves who it is: anonymously until a registry answers 401, then as its
 * challenge asks — HTTP Basic, or a bearer token from the registry's token service (the Docker
 * token protocol that Docker Hub, GHCR, ECR and Harbor speak). Tokens are cached per scope until
 * they expire, so a pull of many layers fetches one token.
 */
import { SkiffError } from '../errors.js';

export interface Credentials {
  username: string;
  password: string;
}

export interface Challenge {
  scheme: 'basic' | 'bearer';
  /** `realm`, `service`, `scope`, ... as the registry sent them. */
  params: Record<string, string>;
}

/** Parses a `WWW-Authenticate` header: its first challenge, if it is Basic or Bearer. */
export function parseChallenge(header: string | null): Challenge | undefined {
  const match = header ? /^\s*(basic|bearer)\b\s*(.*)$/i.exec(header) : null;
  if (!match) return undefined;
  const params: Record<string, string> = {};
  for (const param of (match[2] ?? '').matchAll(/([a-zA-Z_][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))/g)) {
    const [, key = '', quoted, bare] = param;
    params[key.toLowerCase()] = quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : (bare ?? '');
  }
  return { scheme: (match[1] ?? '').toLowerCase() as Challenge['scheme'], params };
}

/** Fetches a URL for the token service, with the client's timeouts and error mapping. */
export type TokenFetch = (url: URL, headers: Record<string, string>) => Promise<{ status: number; body: Buffer }>;

interface CachedToken {
  header: string;
  expiresAt: number;
}

/** Token lifetime when the token service does not say (the protocol's default). */
const DEFAULT_TOKEN_SECONDS = 60;
/** Tokens are dropped this long before they expire, so none expires in flight. */
const EXPIRY_MARGIN_MS = 5000;

export class RegistryAuth {
  /** Set once the registry has asked for Basic: every later request sends it up front. */
  private basic = false;
  /** Set once the registry has asked for a bearer token: new scopes fetch one up front. */
  private bearer: { realm: string; service: string | undefined } | undefined;
  private readonly tokens = new Map<string, CachedToken>();

  constructor(
    private readonly registry: string,
    private readonly credentials: Credentials | undefined,
    private readonly fetchToken: TokenFetch,
  ) {}

  /**
   * The Authorization header for a request needing `scope` (space-separated
   * `repository:<name>:<actions>`), or undefined while the registry has asked for none.
   */
  async authorization(scope: string): Promise<string | undefined> {
    if (this.basic) return this.basicHeader();
    if (!this.bearer) return undefined;
    const cached = this.tokens.get(scope);
    if (cached && cached.expiresAt > Date.now()) return cached.header;
    return this.newToken(scope, scope);
  }

  /**
   * Learns from a 401 what the registry wants, so that the request can be retried once.
   * Throws RegistryUnavailable when no retry can help: no credentials, or these were refused.
   */
  async challenged(header: string | null, scope: string, sent: string | undefined): Promise<void> {
    const challenge = parseChallenge(header);
    if (!challenge) throw this.unavailable(`answered 401 with no Basic or Bearer challenge (${header ?? 'no WWW-Authenticate'})`);
    if (challenge.scheme === 'basic') {
      if (!this.credentials || sent?.startsWith('Basic ')) throw this.refused();
      this.basic = true;
      return;
    }
    const realm = challenge.params.realm;
    if (!realm) throw this.unavailable('sent a Bearer challenge without a realm');
    this.bearer = { realm, service: challenge.params.service };
    this.tokens.delete(scope);
    await this.newToken(scope, mergeScopes(scope, challenge.params.scope ?? ''));
  }

  /** The error for a 401 on credentials the registry itself asked for. */
  refused(): SkiffError {
    return this.credentials
      ? this.unavailable(`refused the credentials of user "${this.credentials.username}"`)
      : this.unavailable('requires credentials, and none were given');
  }

  private basicHeader(): string {
    if (!this.credentials) throw this.refused();
    const { username, password } = this.credentials;
    return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  }

  private async newToken(cacheKey: string, scope: string): Promise<string> {
    const bearer = this.bearer;
    if (!bearer) throw new Error('newToken before any Bearer challenge');
    let url: URL;
    try {
      url = new URL(bearer.realm);
    } catch (error) {
      throw this.unavailable(`sent a Bearer realm that is not a URL: ${bearer.realm}`, error);
    }
    if (bearer.service) url.searchParams.set('service', bearer.service);
    for (const one of scope.split(' ').filter(Boolean)) url.searchParams.append('scope', one);
    const headers: Record<string, string> = {};
    if (this.credentials) headers.authorization = this.basicHeader();
    const { status, body } = await this.fetchToken(url, headers);
    if (status === 401 || status === 403) throw this.refused();
    if (status !== 200) throw this.unavailable(`token service ${url.origin}${url.pathname} answered ${status}`);
    let answer: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      answer = JSON.parse(body.toString('utf8')) as typeof answer;
    } catch (error) {
      throw this.unavailable(`token service ${url.origin}${url.pathname} answered with something other than JSON`, error);
    }
    const token = typeof answer.token === 'string' && answer.token ? answer.token : answer.access_token;
    if (typeof token !== 'string' || !token) throw this.unavailable(`token service ${url.origin}${url.pathname} answered with no token`);
    const seconds = typeof answer.expires_in === 'number' && answer.expires_in > 0 ? answer.expires_in : DEFAULT_TOKEN_SECONDS;
    const header = `Bearer ${token}`;
    this.tokens.set(cacheKey, { header, expiresAt: Date.now() + seconds * 1000 - EXPIRY_MARGIN_MS });
    return header;
  }

  private unavailable(what: string, cause?: unknown): SkiffError {
    return new SkiffError('RegistryUnavailable', `registry ${this.registry} ${what}`, cause === undefined ? {} : { cause });
  }
}

/**
 * The scopes to ask a token for: ours (what the whole operation needs, e.g. pull and push for
 * every step of a push, so one token serves them all) plus any the challenge names that ours do
 * not cover.
 */
export function mergeScopes(ours: string, challenge: string): string {
  const wanted = ours.split(' ').filter(Boolean);
  const covers = (have: string, need: string): boolean => {
    const [haveType, haveName, haveActions = ''] = splitScope(have);
    const [needType, needName, needActions = ''] = splitScope(need);
    const actions = new Set(haveActions.split(','));
    return haveType === needType && haveName === needName && needActions.split(',').every((a) => actions.has(a));
  };
  for (const need of challenge.split(' ').filter(Boolean)) {
    if (!wanted.some((have) => covers(have, need))) wanted.push(need);
  }
  return wanted.join(' ');
}

/** `type:name:actions`; the name may itself hold ':' (a registry host with a port). */
function splitScope(scope: string): [string, string, string] {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last === first) return [scope, '', ''];
  return [scope.slice(0, first), scope.slice(first + 1, last), scope.slice(last + 1)];
}
