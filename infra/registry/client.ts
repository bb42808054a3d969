/**
 * Skiff's client for OCI distribution registries (the `/v2/` HTTP API): blobs in and out, verified
 * against their digests, and manifests by tag or digest, resolving multi-platform indexes to this
 * machine's image. Every byte taken from a registry is checked against the digest it was asked
 * for before anyone else sees it: a blob lands at its destination only once its sha256 matched.
 *
 * Errors: ImageNotFound (the registry has no such manifest or blob), ImageCorrupt (bytes that do
 * not match their digest, or a manifest that is not one), RegistryUnavailable (unreachable, no
 * answer within `timeoutMs`, 5xx, credentials missing or refused), InvalidRequest (a repository,
 * tag or digest argument outside the distribution grammar).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, stat, unlink } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SkiffError, invalidRequest, isSkiffError } from '../errors.js';
import {
  IMAGE_MANIFEST_TYPES,
  INDEX_TYPES,
  MediaType,
  hostPlatform,
  isDigest,
  sha256Digest,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
  type Platform,
} from '../images/oci/types.js';
import { RegistryAuth, type Credentials } from './auth.js';
import { isRepository, isTag } from './reference.js';

export interface RegistryClientOptions {
  /** `http(s)://host[:port]`; any path is ignored (the API lives at `/v2/`). */
  url: string;
  username?: string;
  password?: string;
  /** The longest wait for an answer, or for the next bytes of one. Default 30 s. */
  timeoutMs?: number;
}

export interface PulledManifest {
  /** Digest of the image manifest itself (not of the index it was picked from). */
  digest: string;
  mediaType: string;
  manifest: ImageManifest;
  /** The manifest exactly as served: its sha256 is `digest`. */
  bytes: Buffer;
}

const DEFAULT_TIMEOUT_MS = 30_000;
/** Distribution refuses manifests above 4 MiB; so does this client. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MANIFEST_ACCEPT = [...IMAGE_MANIFEST_TYPES, ...INDEX_TYPES].join(', ');

type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';

interface Call {
  method: Method;
  url: URL;
  /** Token scope(s) the request needs, space-separated: `repository:<name>:<actions>`. */
  scope: string;
  headers?: Record<string, string>;
  /** Made anew for each attempt: a retry after a 401 needs the whole body again. */
  body?: () => Buffer | ReadableStream<Uint8Array>;
}

export class RegistryClient {
  /** `host[:port]` of the registry, as image references name it. */
  readonly host: string;
  private readonly origin: string;
  private readonly timeoutMs: number;
  private readonly auth: RegistryAuth;

  constructor(options: RegistryClientOptions) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch (error) {
      throw invalidRequest('registry', `registry URL "${options.url}" is not a URL`, error);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidRequest('registry', `registry URL "${options.url}" is not http(s)`);
    if ((options.username === undefined) !== (options.password === undefined)) {
      throw invalidRequest('registry', 'registry username and password must be given together');
    }
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw invalidRequest('registry', `registry timeoutMs must be positive, not ${timeoutMs}`);
    this.host = url.host;
    this.origin = url.origin;
    this.timeoutMs = timeoutMs;
    const credentials: Credentials | undefined =
      options.username !== undefined && options.password !== undefined ? { username: options.username, password: options.password } : undefined;
    this.auth = new RegistryAuth(this.origin, credentials, (tokenUrl, headers) => this.fetchToken(tokenUrl, headers));
  }

  async hasBlob(repository: string, digest: string): Promise<boolean> {
    return this.blobExists(repository, digest, pullScope(repository));
  }

  /**
   * Uploads a blob in one request, unless the repository has it already. `source` is the data or
   * the path of a file holding it; it must hash to `digest` (a mismatch is a bug: plain Error).
   */
  async pushBlob(repository: string, digest: string, source: Buffer | string): Promise<void> {
    checkRepository(repository);
    checkDigest(digest);
    const { digest: actual, size } = typeof source === 'string' ? await fileDigest(source) : { digest: sha256Digest(source), size: source.length };
    if (actual !== digest) throw new Error(`pushBlob: the data has digest ${actual}, not ${digest}`);
    const scope = pushScope(repository);
    if (await this.blobExists(repository, digest, scope)) return;
    const started = await this.exchange({ method: 'POST', url: this.url(`/v2/${repository}/blobs/uploads/`), scope });
    await started.settle([202]);
    const upload = started.location();
    upload.searchParams.set('digest', digest);
    const put = await this.exchange({
      method: 'PUT',
      url: upload,
      scope,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      body: () => (typeof source === 'string' ? (Readable.toWeb(createReadStream(source)) as ReadableStream<Uint8Array>) : source),
    });
    await put.settle([201]);
  }

  /**
   * Asks the registry to link a blob it holds in `fromRepository` into `repository`, with no
   * upload. False when it would not (no such blob there, or no read access to it).
   */
  async mountBlob(repository: string, digest: string, fromRepository: string): Promise<boolean> {
    checkRepository(repository);
    checkRepository(fromRepository);
    checkDigest(digest);
    const url = this.url(`/v2/${repository}/blobs/uploads/`);
    url.searchParams.set('mount', digest);
    url.searchParams.set('from', fromRepository);
    const scope = `${pushScope(repository)} ${pullScope(fromRepository)}`;
    const answer = await this.exchange({ method: 'POST', url, scope });
    const status = await answer.settle([201, 202]);
    if (status === 201) return true;
    // 202: the registry opened an upload session instead; close it rather than leave it to expire.
    const cancel = await this.exchange({ method: 'DELETE', url: answer.location(), scope });
    await cancel.discard();
    return false;
  }

  /**
   * Downloads a blob to `destFile` (whose directory must exist), returning its size. The bytes go
   * to a private partial file first and are renamed into place only when their sha256 matches;
   * otherwise the partial file is removed and ImageCorrupt thrown.
   */
  async pullBlob(repository: string, digest: string, destFile: string): Promise<number> {
    const answer = await this.blobDownload(repository, digest);
    const partial = `${destFile}.partial-${process.pid}-${randomBytes(6).toString('hex')}`;
    const hash = createHash('sha256');
    let size = 0;
    try {
      await pipeline(
        async function* () {
          for await (const chunk of answer.chunks()) {
            hash.update(chunk);
            size += chunk.length;
            yield chunk;
          }
        },
        createWriteStream(partial, { flags: 'wx', mode: 0o644 }),
      );
      this.checkBlobDigest(repository, digest, `sha256:${hash.digest('hex')}`, size);
      await rename(partial, destFile);
      return size;
    } catch (error) {
      await answer.discard();
      await unlink(partial).catch(() => undefined);
      throw error;
    }
  }

  /** A whole blob in memory (a config), verified like `pullBlob`. */
  async getBlob(repository: string, digest: string): Promise<Buffer> {
    const data = await (await this.blobDownload(repository, digest)).bytes();
    this.checkBlobDigest(repository, digest, sha256Digest(data), data.length);
    return data;
  }

  /**
   * Stores a manifest or index under a tag or its digest, sent as `JSON.stringify(manifest)`,
   * and returns the digest of those bytes.
   */
  async putManifest(repository: string, reference: string, manifest: ImageManifest | ImageIndex, mediaType: string): Promise<string> {
    checkRepository(repository);
    checkManifestReference(reference);
    const bytes = Buffer.from(JSON.stringify(manifest));
    const digest = sha256Digest(bytes);
    if (isDigest(reference) && reference !== digest) throw new Error(`putManifest: the manifest has digest ${digest}, not ${reference}`);
    const answer = await this.exchange({
      method: 'PUT',
      url: this.url(`/v2/${repository}/manifests/${reference}`),
      scope: pushScope(repository),
      headers: { 'content-type': mediaType },
      body: () => bytes,
    });
    await answer.settle([201]);
    const stored = answer.response.headers.get('docker-content-digest');
    if (stored && stored !== digest) {
      throw new SkiffError('ImageCorrupt', `registry ${this.origin} stored manifest ${digest} of ${repository} as ${stored}`);
    }
    return digest;
  }

  /**
   * The image manifest a tag or digest names for `platform`: when it names a multi-platform
   * index, the platform's entry is picked and fetched. Bytes fetched by digest are checked
   * against it, and any bytes against the registry's Docker-Content-Digest.
   */
  async getManifest(repository: string, reference: string, platform: Platform = hostPlatform()): Promise<PulledManifest> {
    checkRepository(repository);
    checkManifestReference(reference);
    const top = await this.fetchManifest(repository, reference);
    if (!INDEX_TYPES.includes(top.mediaType)) return this.imageManifest(repository, top);
    const index = this.parsed<ImageIndex>(repository, top, checkIndex);
    const entry = pickManifest(index, platform);
    if (!entry) {
      const has = index.manifests.map((m) => (m.platform ? platformName(m.platform) : '(no platform)')).join(', ');
      throw new SkiffError(
        'ImageNotFound',
        `image ${this.name(repository, reference)} has no manifest for ${platformName(platform)} (it has: ${has || 'none'})`,
      );
    }
    return this.imageManifest(repository, await this.fetchManifest(repository, entry.digest));
  }

  /** The digest of the image manifest a tag (or digest) names for this machine, now. */
  async resolve(repository: string, reference: string): Promise<string> {
    return (await this.getManifest(repository, reference)).digest;
  }

  private async blobExists(repository: string, digest: string, scope: string): Promise<boolean> {
    checkRepository(repository);
    checkDigest(digest);
    const answer = await this.exchange({ method: 'HEAD', url: this.url(`/v2/${repository}/blobs/${digest}`), scope });
    return (await answer.settle([200, 404])) === 200;
  }

  private async blobDownload(repository: string, digest: string): Promise<Exchange> {
    checkRepository(repository);
    checkDigest(digest);
    const answer = await this.exchange({ method: 'GET', url: this.url(`/v2/${repository}/blobs/${digest}`), scope: pullScope(repository) });
    await answer.expect([200], () => new SkiffError('ImageNotFound', `blob ${digest} not found in ${this.host}/${repository}`));
    return answer;
  }

  private checkBlobDigest(repository: string, digest: string, received: string, size: number): void {
    if (received === digest) return;
    throw new SkiffError(
      'ImageCorrupt',
      `blob ${digest} of ${this.host}/${repository} does not match its digest: received ${size} bytes with digest ${received}`,
    );
  }

  private async fetchManifest(repository: string, reference: string): Promise<{ digest: string; mediaType: string; bytes: Buffer; json: unknown }> {
    const name = this.name(repository, reference);
    const answer = await this.exchange({
      method: 'GET',
      url: this.url(`/v2/${repository}/manifests/${reference}`),
      scope: pullScope(repository),
      headers: { accept: MANIFEST_ACCEPT },
    });
    await answer.expect([200], () => new SkiffError('ImageNotFound', `image ${name} not found`));
    const bytes = await answer.bytes(MAX_MANIFEST_BYTES);
    const digest = sha256Digest(bytes);
    if (isDigest(reference) && digest !== reference) {
      throw new SkiffError('ImageCorrupt', `manifest ${name} does not match its digest: received ${bytes.length} bytes with digest ${digest}`);
    }
    const claimed = answer.response.headers.get('docker-content-digest');
    if (claimed?.startsWith('sha256:') && claimed !== digest) {
      throw new SkiffError(
        'ImageCorrupt',
        `manifest ${name} does not match the registry's Docker-Content-Digest ${claimed}: received ${bytes.length} bytes with digest ${digest}`,
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch (error) {
      throw new SkiffError('ImageCorrupt', `manifest ${name} is not JSON`, { cause: error });
    }
    return { digest, mediaType: manifestMediaType(answer.response.headers.get('content-type'), json), bytes, json };
  }

  private imageManifest(repository: string, fetched: { digest: string; mediaType: string; bytes: Buffer; json: unknown }): PulledManifest {
    if (!IMAGE_MANIFEST_TYPES.includes(fetched.mediaType)) {
      throw new SkiffError(
        'ImageCorrupt',
        `manifest ${this.name(repository, fetched.digest)} has media type ${fetched.mediaType}, not an image manifest Skiff can run`,
      );
    }
    const manifest = this.parsed<ImageManifest>(repository, fetched, checkImageManifest);
    return { digest: fetched.digest, mediaType: fetched.mediaType, manifest, bytes: fetched.bytes };
  }

  private parsed<T>(repository: string, fetched: { digest: string; json: unknown }, check: (json: unknown) => string | undefined): T {
    const fault = check(fetched.json);
    if (fault) throw new SkiffError('ImageCorrupt', `manifest ${this.name(repository, fetched.digest)} is malformed: ${fault}`);
    return fetched.json as T;
  }

  private name(repository: string, reference: string): string {
    return `${this.host}/${repository}${isDigest(reference) ? '@' : ':'}${reference}`;
  }

  private url(path: string): URL {
    return new URL(path, this.origin);
  }

  /** Sends a call, answering one 401 challenge by authenticating and sending it again. */
  private async exchange(call: Call): Promise<Exchange> {
    for (let attempt = 0; ; attempt++) {
      const authorization = await this.auth.authorization(call.scope);
      const answer = await this.send(call, authorization);
      if (answer.response.status !== 401) return answer;
      await answer.discard();
      if (attempt > 0) throw this.auth.refused();
      await this.auth.challenged(answer.response.headers.get('www-authenticate'), call.scope, authorization);
    }
  }

  private async send(call: Call, authorization: string | undefined): Promise<Exchange> {
    const headers: Record<string, string> = { ...call.headers };
    // Credentials go only to the registry itself, never to an upload URL elsewhere.
    if (authorization && call.url.origin === this.origin) headers.authorization = authorization;
    const body = call.body?.();
    const watchdog = new Watchdog(this.timeoutMs);
    try {
      const response = await fetch(call.url, {
        method: call.method,
        headers,
        body: body ?? null,
        redirect: 'follow',
        signal: watchdog.signal,
        ...(body instanceof ReadableStream ? { duplex: 'half' as const } : {}),
      });
      watchdog.kick();
      return new Exchange(response, watchdog, `${call.method} ${call.url.pathname}`, this.origin, this.timeoutMs);
    } catch (error) {
      watchdog.stop();
      throw unreachable(this.origin, `${call.method} ${call.url.pathname}`, error, watchdog.fired ? this.timeoutMs : undefined);
    }
  }

  private async fetchToken(url: URL, headers: Record<string, string>): Promise<{ status: number; body: Buffer }> {
    const answer = await this.send({ method: 'GET', url, scope: '', headers }, undefined);
    // The token service is usually on another host; the origin check in `send` would drop the
    // credentials it needs, so they travel in `headers` here.
    return { status: answer.response.status, body: await answer.bytes(MAX_MANIFEST_BYTES) };
  }
}

/**
 * The entry of an index for `platform`: same os and architecture, and same variant when the
 * platform names one. Attestations and other entries without a platform are skipped.
 */
export function pickManifest(index: ImageIndex, platform: Platform): Descriptor | undefined {
  return index.manifests.find(
    (m) =>
      m.platform !== undefined &&
      m.platform.os === platform.os &&
      m.platform.architecture === platform.architecture &&
      (platform.variant === undefined || m.platform.variant === platform.variant) &&
      IMAGE_MANIFEST_TYPES.includes(m.mediaType),
  );
}

/** A response whose body is read under the idle timeout, with the call it answers for messages. */
class Exchange {
  constructor(
    readonly response: Response,
    private readonly watchdog: Watchdog,
    private readonly what: string,
    private readonly origin: string,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Returns the status when it is one of `ok`; otherwise discards the body and throws: 404 as
   * `notFound` makes it, 400 as Internal (a request this client should not have made),
   * anything else as RegistryUnavailable.
   */
  async expect(ok: number[], notFound?: () => SkiffError): Promise<number> {
    const status = this.response.status;
    if (ok.includes(status)) return status;
    const detail = await this.errorDetail();
    if (status === 404 && notFound) throw notFound();
    const message = `registry ${this.origin} answered ${status} to ${this.what}${detail ? `: ${detail}` : ''}`;
    throw new SkiffError(status === 400 ? 'Internal' : 'RegistryUnavailable', message);
  }

  /** `expect`, then drops the body: for answers whose status and headers say it all. */
  async settle(ok: number[]): Promise<number> {
    const status = await this.expect(ok);
    await this.discard();
    return status;
  }

  /** The URL the registry said to continue at: absolute, or relative to the answer's URL. */
  location(): URL {
    const location = this.response.headers.get('location');
    if (!location) throw new SkiffError('RegistryUnavailable', `registry ${this.origin} answered ${this.what} with no Location`);
    return new URL(location, this.response.url);
  }

  async *chunks(): AsyncGenerator<Uint8Array> {
    try {
      if (!this.response.body) return;
      for await (const chunk of this.response.body) {
        this.watchdog.kick();
        yield chunk;
      }
    } catch (error) {
      throw unreachable(this.origin, this.what, error, this.watchdog.fired ? this.timeoutMs : undefined);
    } finally {
      this.watchdog.stop();
    }
  }

  async bytes(maxBytes = Infinity): Promise<Buffer> {
    const parts: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of this.chunks()) {
      size += chunk.length;
      if (size > maxBytes) {
        await this.discard();
        throw new SkiffError('ImageCorrupt', `registry ${this.origin} answered ${this.what} with more than ${maxBytes} bytes`);
      }
      parts.push(chunk);
    }
    return Buffer.concat(parts);
  }

  async discard(): Promise<void> {
    this.watchdog.stop();
    await this.response.body?.cancel().catch(() => undefined);
  }

  /** `CODE: message` of the registry's error body, if it sent one (it is small). */
  private async errorDetail(): Promise<string> {
    try {
      const body = JSON.parse((await this.bytes(64 * 1024)).toString('utf8')) as { errors?: { code?: string; message?: string }[] };
      return (body.errors ?? []).map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; ');
    } catch {
      await this.discard();
      return '';
    }
  }
}

/** Aborts a request that stays silent for `ms`: no answer, or no next bytes, for that long. */
class Watchdog {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  fired = false;

  constructor(private readonly ms: number) {
    this.kick();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  kick(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.fired = true;
      this.controller.abort(new Error(`no answer for ${this.ms} ms`));
    }, this.ms);
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}

function unreachable(origin: string, what: string, error: unknown, timedOutMs: number | undefined): SkiffError {
  if (isSkiffError(error)) return error;
  const reason = timedOutMs !== undefined ? `no answer within ${timedOutMs} ms` : describeNetworkError(error);
  return new SkiffError('RegistryUnavailable', `registry ${origin} unreachable (${what}): ${reason}`, { cause: error });
}

/** fetch says only "fetch failed"; the reason (ECONNREFUSED, ENOTFOUND, ...) is in its cause. */
function describeNetworkError(error: unknown): string {
  const cause = error instanceof Error ? (error.cause as { code?: unknown; message?: unknown } | undefined) : undefined;
  if (cause && typeof cause.code === 'string') return cause.code;
  if (cause && typeof cause.message === 'string') return cause.message;
  return error instanceof Error ? error.message : String(error);
}

/** The media type of a fetched manifest: the Content-Type when it is one, else the JSON's own. */
function manifestMediaType(contentType: string | null, json: unknown): string {
  const header = contentType?.split(';')[0]?.trim().toLowerCase();
  if (header && (IMAGE_MANIFEST_TYPES.includes(header) || INDEX_TYPES.includes(header))) return header;
  const own = typeof json === 'object' && json !== null ? (json as { mediaType?: unknown; manifests?: unknown }) : {};
  if (typeof own.mediaType === 'string') return own.mediaType;
  // OCI lets mediaType be absent; the shape tells an index from an image manifest.
  return Array.isArray(own.manifests) ? MediaType.index : header || MediaType.manifest;
}

function checkImageManifest(json: unknown): string | undefined {
  const m = json as Partial<ImageManifest> | null;
  if (typeof m !== 'object' || m === null) return 'not an object';
  if (m.schemaVersion !== 2) return `schemaVersion is ${String(m.schemaVersion)}, not 2`;
  if (!isDescriptor(m.config)) return 'config is not a descriptor with a sha256 digest';
  if (!Array.isArray(m.layers) || !m.layers.every(isDescriptor)) return 'layers are not descriptors with sha256 digests';
  return undefined;
}

function checkIndex(json: unknown): string | undefined {
  const i = json as Partial<ImageIndex> | null;
  if (typeof i !== 'object' || i === null) return 'not an object';
  if (i.schemaVersion !== 2) return `schemaVersion is ${String(i.schemaVersion)}, not 2`;
  if (!Array.isArray(i.manifests) || !i.manifests.every(isDescriptor)) return 'manifests are not descriptors with sha256 digests';
  return undefined;
}

function isDescriptor(value: unknown): value is Descriptor {
  const d = value as Partial<Descriptor> | null;
  return (
    typeof d === 'object' && d !== null && typeof d.mediaType === 'string' && typeof d.digest === 'string' && isDigest(d.digest) && typeof d.size === 'number'
  );
}

function platformName(platform: Platform): string {
  return `${platform.os}/${platform.architecture}${platform.variant ? `/${platform.variant}` : ''}`;
}

function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`;
}

function checkRepository(repository: string): void {
  if (!isRepository(repository)) throw invalidRequest('image', `repository "${repository}" is not a valid repository name`);
}

function checkDigest(digest: string): void {
  if (!isDigest(digest)) throw invalidRequest('image', `"${digest}" is not a sha256 digest`);
}

function checkManifestReference(reference: string): void {
  if (!isDigest(reference) && !isTag(reference)) throw invalidRequest('image', `"${reference}" is neither a tag nor a sha256 digest`);
}

async function fileDigest(path: string): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return { digest: `sha256:${hash.digest('hex')}`, size: (await stat(path)).size };
}
