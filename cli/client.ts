/**
 * The CLI's HTTP client for the gateway's API v1. Every failure is typed: ApiError carries the
 * gateway's `{"error":{"code","message","field"}}` (or a client-side code when the answer was
 * not one), ConnectionError says the gateway could not be reached.
 *
 * node:http rather than fetch: Node's fetch gives up on an answer after 300 s (a synchronous
 * invoke may wait up to the function's 900 s timeout), and it cannot report upload progress.
 */
import http from 'node:http';
import https from 'node:https';
import type { VersionSummary } from '../infra/db/function-store.js';
import type { DeployBody, FunctionDescription, WorkerListing } from '../infra/contracts/api.js';
import type { ApiKeyInfo } from '../infra/db/api-keys.js';
import type { AuditEvent } from '../infra/db/audit-log.js';
import type { TenantInfo } from '../infra/db/tenants.js';
import type { TenantQuotas } from '../infra/tenancy/quotas.js';
import type { Principal, Role } from '../infra/tenancy/roles.js';

/** The error body the gateway sends with every non-2xx answer. */
export interface ErrorBody {
  code: string;
  message: string;
  field?: string;
  /** For FunctionError: what the handler threw. */
  errorType?: string;
  stack?: string[];
}

/** The gateway answered with an error (or with something that is not the API's JSON). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | undefined;
  readonly errorType: string | undefined;
  readonly handlerStack: string[] | undefined;
  /** What to do about it, when the command knows better than the code's general hint. */
  hint: string | undefined;

  constructor(status: number, body: ErrorBody, hint?: string) {
    super(body.message);
    this.name = 'ApiError';
    this.status = status;
    this.code = body.code;
    this.field = body.field;
    this.errorType = body.errorType;
    this.handlerStack = body.stack;
    this.hint = hint;
  }

  toBody(): ErrorBody {
    const body: ErrorBody = { code: this.code, message: this.message };
    if (this.field !== undefined) body.field = this.field;
    if (this.errorType !== undefined) body.errorType = this.errorType;
    if (this.handlerStack !== undefined) body.stack = this.handlerStack;
    return body;
  }
}

/** No answer: connection refused, DNS, reset, TLS. Its code is `Unreachable`. */
export class ConnectionError extends Error {
  readonly code = 'Unreachable';

  constructor(gateway: string, cause: unknown, message?: string) {
    const reason = (cause as { code?: string }).code ?? (cause as Error).message;
    super(message ?? `cannot reach the gateway at ${gateway} (${reason}); is it running? Set --gateway or SKIFF_GATEWAY`, { cause });
    this.name = 'ConnectionError';
  }
}

// The API's own types: one definition for the server and this client.
/** What GET /v1/functions/:name and POST /v1/functions answer. */
export type FunctionInfo = FunctionDescription;
/** The body of POST /v1/functions. */
export type DeployRequest = DeployBody;
/** One element of GET /v1/functions/:name/versions, newest first. */
export type VersionInfo = VersionSummary;

/** One line of a function's output, as GET /v1/functions/:name/logs gives it. */
export interface LogLine {
  /** ISO time */
  at: string;
  version: number;
  /** null for output outside any invocation (while the code loads). */
  invocationId: string | null;
  instance: string;
  stream: 'stdout' | 'stderr';
  text: string;
}

export interface LogsQuery {
  invocation?: string | undefined;
  /** ISO date or ms since the epoch, as the gateway takes it. */
  since?: string | undefined;
  limit?: number | undefined;
}

/** What a worker reports in its heartbeat, with the gateway's view of it (GET /v1/workers). */
export type WorkerInfo = WorkerListing;

export type WorkerAction = 'drain' | 'cordon' | 'uncordon';

export interface InvokeResult {
  /** The handler's return value, as the JSON text the gateway sent. */
  body: string;
  invocationId: string | undefined;
  coldStart: boolean | undefined;
}

/** Who the key is (GET /v1/whoami): its id, tenant, role and the functions it is limited to (null: all). */
export type WhoAmI = Principal;
/** A tenant as GET /v1/tenants lists it: effective quotas, the ones it set itself, its function count. */
export type TenantView = TenantInfo;
/** PATCH /v1/tenants/:name: a quota's new value, or null to follow the platform's default again. */
export type QuotaChanges = Partial<Record<keyof TenantQuotas, number | null>>;
/** A key as GET /v1/keys lists it (never its secret). */
export type KeyView = ApiKeyInfo;
/** POST /v1/keys answers the key itself, this once. */
export type CreatedKey = ApiKeyInfo & { key: string };
export type AuditEntry = AuditEvent;

export interface NewKeyRequest {
  name: string;
  role: Role;
  /** The key's tenant; the calling key's own when left out. */
  tenant?: string;
  /** ISO date-time. */
  expiresAt?: string;
  functions?: string[];
}

export interface AuditQuery {
  tenant?: string | undefined;
  limit?: number | undefined;
  /** Events older than this event id (paging back). */
  before?: number | undefined;
}

export interface ClientOptions {
  /** Base URL of the gateway, without a trailing slash. */
  gateway: string;
  key?: string | undefined;
  userAgent?: string;
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export type UploadProgress = (sentBytes: number, totalBytes: number) => void;

const UPLOAD_CHUNK = 64 * 1024;

export class SkiffClient {
  readonly gateway: string;
  private readonly key: string | undefined;
  private readonly userAgent: string;

  constructor(options: ClientOptions) {
    this.gateway = options.gateway.replace(/\/+$/, '');
    this.key = options.key;
    this.userAgent = options.userAgent ?? 'skiff-cli';
  }

  /**
   * The absolute URL of a function: the `url` the gateway describes it with (on the functions'
   * own origin, never the API's). A gateway from before separate origins answered a path, and a
   * bare name has none: those are the gateway's address + `/fn/<name>`, as it was then.
   */
  functionUrl(fn: string | { name: string; url?: string }): string {
    const { name, url } = typeof fn === 'string' ? { name: fn, url: undefined } : fn;
    if (url !== undefined && /^https?:\/\//i.test(url)) return url;
    return url?.startsWith('/') ? `${this.gateway}${url}` : `${this.gateway}/fn/${encodeURIComponent(name)}`;
  }

  async listFunctions(): Promise<FunctionInfo[]> {
    return (await this.json<{ functions: FunctionInfo[] }>('GET', '/v1/functions')).functions;
  }

  getFunction(name: string): Promise<FunctionInfo> {
    return this.json<FunctionInfo>('GET', `/v1/functions/${encodeURIComponent(name)}`);
  }

  deleteFunction(name: string): Promise<{ name: string; deleted: boolean }> {
    return this.json('DELETE', `/v1/functions/${encodeURIComponent(name)}`);
  }

  async listVersions(name: string): Promise<VersionInfo[]> {
    return (await this.json<{ versions: VersionInfo[] }>('GET', `/v1/functions/${encodeURIComponent(name)}/versions`)).versions;
  }

  /** Makes an existing version current again; answers the function as getFunction does. */
  rollback(name: string, version: number): Promise<FunctionInfo> {
    return this.json<FunctionInfo>('POST', `/v1/functions/${encodeURIComponent(name)}/rollback`, { body: Buffer.from(JSON.stringify({ version })) });
  }

  /** The newest log lines (at most `limit`, the gateway's default 1000), oldest first. */
  async logs(name: string, query: LogsQuery): Promise<LogLine[]> {
    return (await this.json<{ lines: LogLine[] }>('GET', logsPath(name, query, false))).lines;
  }

  /**
   * Follows the function's log: `onLine` gets each line (its JSON text as sent, and parsed) as
   * it arrives, stored ones first. The stream has no end of its own: the promise settles when
   * the gateway ends it (resolved) or the connection fails (rejected).
   */
  followLogs(name: string, query: LogsQuery, onLine: (raw: string, line: LogLine) => void): Promise<void> {
    const path = logsPath(name, query, true);
    let buffered = '';
    const take = (text: string, final: boolean): void => {
      buffered += text;
      const lines = buffered.split('\n');
      buffered = final ? '' : (lines.pop() ?? '');
      for (const raw of lines) {
        if (raw.trim() === '') continue;
        let line: LogLine;
        try {
          line = JSON.parse(raw) as LogLine;
        } catch {
          throw new ApiError(200, {
            code: 'BadResponse',
            message: `GET ${path} sent a line that is not JSON: ${raw.slice(0, 200)}; is ${this.gateway} a Skiff gateway?`,
          });
        }
        onLine(raw, line);
      }
    };
    return this.stream('GET', path, (chunk) => take(chunk, false)).then(() => take('', true));
  }

  async listWorkers(): Promise<WorkerInfo[]> {
    return (await this.json<{ workers: WorkerInfo[] }>('GET', '/v1/workers')).workers;
  }

  /** Orders a worker to drain, cordon or uncordon; answers `{id, order}`. */
  orderWorker(id: string, action: WorkerAction): Promise<{ id: string; order: string | null }> {
    return this.json('POST', `/v1/workers/${encodeURIComponent(id)}/${action}`);
  }

  deploy(request: DeployRequest, onUpload?: UploadProgress): Promise<FunctionInfo> {
    return this.json<FunctionInfo>('POST', '/v1/functions', { body: Buffer.from(JSON.stringify(request)), onUpload });
  }

  /** A synchronous call: the handler's value as JSON text. `event` is JSON text, or undefined for none. */
  async invoke(name: string, event: string | undefined): Promise<InvokeResult> {
    const response = await this.send('POST', `/v1/functions/${encodeURIComponent(name)}/invoke`, {
      body: event === undefined ? undefined : Buffer.from(event),
    });
    const body = this.checked(response).toString('utf8');
    const cold = header(response.headers, 'x-skiff-cold-start');
    return { body, invocationId: header(response.headers, 'x-skiff-invocation-id'), coldStart: cold === undefined ? undefined : cold === 'true' };
  }

  /** An asynchronous call: queued, answered with its id (poll GET /v1/invocations/:id). */
  invokeAsync(name: string, event: string | undefined): Promise<{ id: string; status: string }> {
    return this.json('POST', `/v1/functions/${encodeURIComponent(name)}/invoke`, {
      body: event === undefined ? undefined : Buffer.from(event),
      headers: { 'x-skiff-invocation-type': 'async' },
    });
  }

  whoami(): Promise<WhoAmI> {
    return this.json<WhoAmI>('GET', '/v1/whoami');
  }

  /** Functions of one tenant (admin keys; any other key gets its own tenant's whatever it asks). */
  async listFunctionsOf(tenant: string): Promise<FunctionInfo[]> {
    return (await this.json<{ functions: FunctionInfo[] }>('GET', `/v1/functions?${new URLSearchParams({ tenant }).toString()}`)).functions;
  }

  async listTenants(): Promise<TenantView[]> {
    return (await this.json<{ tenants: TenantView[] }>('GET', '/v1/tenants')).tenants;
  }

  getTenant(name: string): Promise<TenantView> {
    return this.json<TenantView>('GET', `/v1/tenants/${encodeURIComponent(name)}`);
  }

  createTenant(name: string, quotas: Partial<TenantQuotas> = {}): Promise<TenantView> {
    const body = Object.keys(quotas).length > 0 ? { name, quotas } : { name };
    return this.json<TenantView>('POST', '/v1/tenants', { body: Buffer.from(JSON.stringify(body)) });
  }

  setTenantQuotas(name: string, changes: QuotaChanges): Promise<TenantView> {
    return this.json<TenantView>('PATCH', `/v1/tenants/${encodeURIComponent(name)}`, { body: Buffer.from(JSON.stringify(changes)) });
  }

  /** 409 Conflict while the tenant owns functions; its keys go with it. */
  deleteTenant(name: string): Promise<{ name: string; deleted: boolean }> {
    return this.json('DELETE', `/v1/tenants/${encodeURIComponent(name)}`);
  }

  createKey(request: NewKeyRequest): Promise<CreatedKey> {
    return this.json<CreatedKey>('POST', '/v1/keys', { body: Buffer.from(JSON.stringify(request)) });
  }

  async listKeys(tenant?: string): Promise<KeyView[]> {
    const search = tenant === undefined ? '' : `?${new URLSearchParams({ tenant }).toString()}`;
    return (await this.json<{ keys: KeyView[] }>('GET', `/v1/keys${search}`)).keys;
  }

  deleteKey(id: string): Promise<{ id: string; deleted: boolean }> {
    return this.json('DELETE', `/v1/keys/${encodeURIComponent(id)}`);
  }

  /** Audit events, newest first. */
  async audit(query: AuditQuery = {}): Promise<AuditEntry[]> {
    const params = new URLSearchParams();
    if (query.tenant !== undefined) params.set('tenant', query.tenant);
    if (query.limit !== undefined) params.set('limit', String(query.limit));
    if (query.before !== undefined) params.set('before', String(query.before));
    const search = params.toString();
    return (await this.json<{ events: AuditEntry[] }>('GET', `/v1/audit${search ? `?${search}` : ''}`)).events;
  }

  private async json<T>(method: string, path: string, options: SendOptions = {}): Promise<T> {
    const response = await this.send(method, path, options);
    const body = this.checked(response);
    try {
      return JSON.parse(body.toString('utf8')) as T;
    } catch {
      throw new ApiError(response.status, {
        code: 'BadResponse',
        message: `${method} ${path} answered ${response.status} with a body that is not JSON; is ${this.gateway} a Skiff gateway?`,
      });
    }
  }

  /** The body of a 2xx answer; any other answer becomes an ApiError. */
  private checked(response: RawResponse): Buffer {
    if (response.status >= 200 && response.status < 300) return response.body;
    throw new ApiError(response.status, errorBody(response, this.gateway));
  }

  private send(method: string, path: string, options: SendOptions): Promise<RawResponse> {
    const url = new URL(this.gateway + path);
    const transport = url.protocol === 'https:' ? https : http;
    const body = options.body;
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': this.userAgent, ...options.headers };
    if (this.key !== undefined) headers.authorization = `Bearer ${this.key}`;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(body.length);
    }
    return new Promise<RawResponse>((resolve, reject) => {
      // No keep-alive: one request per command, and the process must exit right after it.
      const request = transport.request(url, { method, headers, agent: false });
      let answered = false;
      request.on('response', (response) => {
        answered = true;
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          // An early answer (a body refused half-way) leaves the upload unfinished: drop it.
          if (!request.writableFinished) request.destroy();
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) });
        });
        response.on('error', (error) => reject(new ConnectionError(this.gateway, error)));
      });
      // An error after the answer (the gateway closing on a body it refused) is not the story.
      request.on('error', (error) => {
        if (!answered) reject(new ConnectionError(this.gateway, error));
      });
      if (body === undefined) {
        request.end();
        return;
      }
      void upload(request, body, options.onUpload);
    });
  }

  /**
   * A request whose 2xx answer is read as it arrives (text chunks to `onChunk`) instead of
   * whole; any other answer becomes an ApiError as in `send`.
   */
  private stream(method: string, path: string, onChunk: (text: string) => void): Promise<void> {
    const url = new URL(this.gateway + path);
    const transport = url.protocol === 'https:' ? https : http;
    const headers: Record<string, string> = { accept: 'application/x-ndjson, application/json', 'user-agent': this.userAgent };
    if (this.key !== undefined) headers.authorization = `Bearer ${this.key}`;
    return new Promise<void>((resolve, reject) => {
      const request = transport.request(url, { method, headers, agent: false });
      let settled = false;
      const fail = (error: unknown): void => {
        if (settled) return;
        settled = true;
        request.destroy();
        reject(error);
      };
      request.on('response', (response) => {
        const status = response.statusCode ?? 0;
        if (status < 200 || status >= 300) {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => fail(new ApiError(status, errorBody({ status, headers: response.headers, body: Buffer.concat(chunks) }, this.gateway))));
          response.on('error', (error) => fail(new ConnectionError(this.gateway, error)));
          return;
        }
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          try {
            onChunk(chunk);
          } catch (error) {
            fail(error);
          }
        });
        response.on('end', () => {
          if (settled) return;
          settled = true;
          resolve();
        });
        // A reset, or a gateway that went away mid-stream: 'error', or a 'close' without 'end'.
        const broken = (cause: unknown): void =>
          fail(new ConnectionError(this.gateway, cause, `the gateway at ${this.gateway} broke off the stream; is it still running?`));
        response.on('error', broken);
        response.on('close', () => broken(new Error('closed')));
      });
      request.on('error', (error) => fail(new ConnectionError(this.gateway, error)));
      request.end();
    });
  }
}

function logsPath(name: string, query: LogsQuery, follow: boolean): string {
  const params = new URLSearchParams();
  if (query.invocation !== undefined) params.set('invocation', query.invocation);
  if (query.since !== undefined) params.set('since', query.since);
  if (query.limit !== undefined) params.set('limit', String(query.limit));
  if (follow) params.set('follow', '1');
  const search = params.toString();
  return `/v1/functions/${encodeURIComponent(name)}/logs${search ? `?${search}` : ''}`;
}

interface SendOptions {
  body?: Buffer | undefined;
  headers?: Record<string, string>;
  onUpload?: UploadProgress | undefined;
}

/** Writes the body in chunks, waiting for the socket to drain, so progress follows the network. */
async function upload(request: http.ClientRequest, body: Buffer, onUpload: UploadProgress | undefined): Promise<void> {
  try {
    for (let sent = 0; sent < body.length && !request.destroyed;) {
      const chunk = body.subarray(sent, sent + UPLOAD_CHUNK);
      const flushed = request.write(chunk);
      sent += chunk.length;
      onUpload?.(sent, body.length);
      if (!flushed && !request.destroyed) await drained(request);
    }
    if (body.length === 0) onUpload?.(0, 0);
    if (!request.destroyed) request.end();
  } catch {
    // The request's own 'error' (or an early answer) settles the call.
  }
}

/** Until the request can take more, or is gone. */
function drained(request: http.ClientRequest): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      request.off('drain', done);
      request.off('close', done);
      resolve();
    };
    request.on('drain', done);
    request.on('close', done);
  });
}

function header(headers: http.IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The gateway's error body, or a description of whatever else answered. */
function errorBody(response: RawResponse, gateway: string): ErrorBody {
  const text = response.body.toString('utf8');
  try {
    const parsed = JSON.parse(text) as { error?: Partial<ErrorBody> };
    const error = parsed.error;
    if (error && typeof error.code === 'string' && typeof error.message === 'string') {
      const body: ErrorBody = { code: error.code, message: error.message };
      if (typeof error.field === 'string') body.field = error.field;
      if (typeof error.errorType === 'string') body.errorType = error.errorType;
      if (Array.isArray(error.stack)) body.stack = error.stack.filter((line): line is string => typeof line === 'string');
      return body;
    }
  } catch {
    // Not JSON: described below.
  }
  const excerpt = text.replace(/\s+/g, ' ').trim().slice(0, 200);
  return {
    code: 'BadResponse',
    message: `the gateway at ${gateway} answered ${response.status} without a Skiff error${excerpt ? `: ${excerpt}` : ''}`,
  };
}
