/**
 * The registry client against a real registry (Debian's docker-registry, started privately):
 * push and pull, digest verification, indexes, Basic auth on the registry itself, and the bearer
 * token handshake through a small token-checking proxy in front of it.
 */
import t from 'tap';
import { freePort } from '../../infra/services/process.js';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isSkiffError, type ErrorCode } from '../../infra/errors.js';
import { MediaType, digestHex, hostPlatform, sha256Digest, type ImageConfig, type ImageIndex, type ImageManifest } from '../../infra/images/oci/types.js';
import { mergeScopes, parseChallenge } from '../../infra/registry/auth.js';
import { RegistryClient } from '../../infra/registry/client.js';
import { startRegistry, type LocalRegistry } from '../../infra/services/registry-server.js';

await ensureCommand('docker-registry', 'docker-registry');
await ensureCommand('htpasswd', 'apache2-utils');

const dir = await mkdtemp(join(process.env.SKIFF_TEST_STATE ?? tmpdir(), 'registry-client-'));
const stops: (() => Promise<void>)[] = [];
t.teardown(async () => {
  for (const stop of stops.reverse()) await stop();
  await rm(dir, { recursive: true, force: true });
});

const registry = await startRegistry({ dir: join(dir, 'open'), port: await freePort() });
stops.push(() => registry.stop());
const client = new RegistryClient({ url: registry.url });

t.test('push blobs, config and manifest by tag; pull back by tag and by digest', async (t) => {
  t.equal(client.host, new URL(registry.url).host);
  const image = await pushImage(client, 'team/app', 'v1');
  t.ok(await client.hasBlob('team/app', image.layer.digest));
  t.notOk(await client.hasBlob('team/app', sha256Digest('never pushed')));

  const byTag = await client.getManifest('team/app', 'v1');
  t.equal(byTag.digest, image.digest);
  t.equal(byTag.mediaType, MediaType.manifest);
  t.same(byTag.manifest, image.manifest);
  t.equal(sha256Digest(byTag.bytes), image.digest, 'the bytes as served');
  const byDigest = await client.getManifest('team/app', image.digest);
  t.equal(byDigest.digest, image.digest);
  t.equal(await client.resolve('team/app', 'v1'), image.digest);

  const dest = join(dir, 'layer-v1');
  t.equal(await client.pullBlob('team/app', image.layer.digest, dest), image.layer.data.length);
  t.ok((await readFile(dest)).equals(image.layer.data));
  t.same(JSON.parse((await client.getBlob('team/app', image.config.digest)).toString()), image.configJson);

  // A new tag on a new manifest moves what the tag resolves to.
  const v2 = await pushImage(client, 'team/app', 'v1');
  t.not(v2.digest, image.digest);
  t.equal(await client.resolve('team/app', 'v1'), v2.digest);
  t.equal((await client.getManifest('team/app', image.digest)).digest, image.digest, 'the old one stays by digest');
});

t.test('pushBlob: from a file, a no-op when present, and a wrong digest is a bug', async (t) => {
  const data = randomBytes(200_000);
  const file = join(dir, 'upload.bin');
  await writeFile(file, data);
  const digest = sha256Digest(data);
  await client.pushBlob('files/app', digest, file);
  t.ok(await client.hasBlob('files/app', digest));
  const before = await postsToUploads(registry);
  await client.pushBlob('files/app', digest, data);
  t.equal(await postsToUploads(registry), before, 'no upload started for a blob already there');
  await t.rejects(client.pushBlob('files/app', sha256Digest('other'), data), /has digest sha256:[a-f0-9]{64}, not sha256:/);
  t.notOk(await client.hasBlob('files/app', sha256Digest('other')));
  await t.rejects(client.pushBlob('files/app', sha256Digest('x'), join(dir, 'no-such-file')), { code: 'ENOENT' });
});

t.test('bytes changed on the registry fail ImageCorrupt and leave nothing at the destination', async (t) => {
  const image = await pushImage(client, 'tamper/app', 'v1');
  const layerFile = blobDataFile(join(dir, 'open'), image.layer.digest);
  const flipped = Buffer.from(image.layer.data);
  flipped[1000] = (flipped[1000] ?? 0) ^ 0xff;
  await writeFile(layerFile, flipped);

  const destDir = join(dir, 'tampered');
  await mkdir(destDir);
  const error = await rejection(client.pullBlob('tamper/app', image.layer.digest, join(destDir, 'layer')), 'ImageCorrupt');
  t.match(error.message, image.layer.digest, 'names the digest asked for');
  t.match(error.message, `received ${flipped.length} bytes with digest ${sha256Digest(flipped)}`, 'and what came');
  t.same(await readdir(destDir), [], 'no file at dest, no partial file');

  const configFile = blobDataFile(join(dir, 'open'), image.config.digest);
  await writeFile(configFile, Buffer.from(image.config.data.toString().replace('linux', 'LINUX')));
  await rejection(client.getBlob('tamper/app', image.config.digest), 'ImageCorrupt');

  // Manifests are blobs too: changed bytes fail by digest and by tag (Docker-Content-Digest).
  const manifestFile = blobDataFile(join(dir, 'open'), image.digest);
  await writeFile(manifestFile, Buffer.from(image.manifestBytes.toString().replace('"schemaVersion":2', '"schemaVersion":2 ')));
  await rejection(client.getManifest('tamper/app', image.digest), 'ImageCorrupt');
  await rejection(client.getManifest('tamper/app', 'v1'), 'ImageCorrupt');
});

t.test('missing tags, repositories and blobs are ImageNotFound', async (t) => {
  await pushImage(client, 'found/app', 'v1');
  const missingTag = await rejection(client.getManifest('found/app', 'v404'), 'ImageNotFound');
  t.match(missingTag.message, `${client.host}/found/app:v404`);
  await rejection(client.resolve('nobody/here', 'latest'), 'ImageNotFound');
  const absent = sha256Digest('absent');
  const byDigest = await rejection(client.getManifest('found/app', absent), 'ImageNotFound');
  t.match(byDigest.message, `found/app@${absent}`);
  const dest = join(dir, 'missing-blob');
  const blob = await rejection(client.pullBlob('found/app', absent, dest), 'ImageNotFound');
  t.match(blob.message, absent);
  t.notOk(existsSync(dest));
  await rejection(client.getBlob('found/app', absent), 'ImageNotFound');
});

t.test('mountBlob links a blob from another repository, and says false when it cannot', async (t) => {
  const image = await pushImage(client, 'mount/source', 'v1');
  t.notOk(await client.hasBlob('mount/target', image.layer.digest));
  t.equal(await client.mountBlob('mount/target', image.layer.digest, 'mount/source'), true);
  t.ok(await client.hasBlob('mount/target', image.layer.digest));
  t.equal(await client.mountBlob('mount/target', sha256Digest('nowhere'), 'mount/source'), false);
});

t.test('an index resolves to the manifest of the platform asked for', async (t) => {
  const amd64 = await pushImage(client, 'multi/app', 'amd64', 'amd64');
  const arm64 = await pushImage(client, 'multi/app', 'arm64', 'arm64');
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaType.index,
    manifests: [
      {
        mediaType: MediaType.manifest,
        digest: arm64.digest,
        size: arm64.manifestBytes.length,
        platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
      },
      { mediaType: MediaType.manifest, digest: amd64.digest, size: amd64.manifestBytes.length, platform: { os: 'linux', architecture: 'amd64' } },
    ],
  };
  const indexDigest = await client.putManifest('multi/app', 'latest', index, MediaType.index);
  t.equal(indexDigest, sha256Digest(JSON.stringify(index)));

  const picked = await client.getManifest('multi/app', 'latest', { os: 'linux', architecture: 'amd64' });
  t.equal(picked.digest, amd64.digest, 'the amd64 manifest, not the index');
  t.equal(picked.mediaType, MediaType.manifest);
  t.same(picked.manifest, amd64.manifest);
  t.equal((await client.getManifest('multi/app', indexDigest, { os: 'linux', architecture: 'arm64' })).digest, arm64.digest, 'by the index digest');
  t.equal((await client.getManifest('multi/app', 'latest', { os: 'linux', architecture: 'arm64', variant: 'v8' })).digest, arm64.digest);
  if (hostPlatform().architecture === 'amd64') t.equal(await client.resolve('multi/app', 'latest'), amd64.digest, 'resolve uses this machine');
  const none = await rejection(client.getManifest('multi/app', 'latest', { os: 'linux', architecture: 's390x' }), 'ImageNotFound');
  t.match(none.message, /no manifest for linux\/s390x \(it has: linux\/arm64\/v8, linux\/amd64\)/);

  // Docker's media types, as registries and builders still serve them.
  const docker = await pushImage(client, 'multi/docker', 'amd64', 'amd64', MediaType.dockerManifest);
  const list: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaType.dockerManifestList,
    manifests: [
      { mediaType: MediaType.dockerManifest, digest: docker.digest, size: docker.manifestBytes.length, platform: { os: 'linux', architecture: 'amd64' } },
    ],
  };
  await client.putManifest('multi/docker', 'latest', list, MediaType.dockerManifestList);
  const fromList = await client.getManifest('multi/docker', 'latest', { os: 'linux', architecture: 'amd64' });
  t.equal(fromList.digest, docker.digest);
  t.equal(fromList.mediaType, MediaType.dockerManifest);
});

t.test('Basic auth against a registry with htpasswd', async (t) => {
  const locked = await startRegistry({ dir: join(dir, 'locked'), port: await freePort(), htpasswd: { username: 'skiff', password: 's3cret pass' } });
  stops.push(() => locked.stop());
  const right = new RegistryClient({ url: locked.url, username: 'skiff', password: 's3cret pass' });
  const image = await pushImage(right, 'private/app', 'v1');
  t.equal(await right.resolve('private/app', 'v1'), image.digest);
  const dest = join(dir, 'private-layer');
  await right.pullBlob('private/app', image.layer.digest, dest);
  t.ok((await readFile(dest)).equals(image.layer.data));

  const wrong = new RegistryClient({ url: locked.url, username: 'skiff', password: 'guess' });
  const refused = await rejection(wrong.getManifest('private/app', 'v1'), 'RegistryUnavailable');
  t.match(refused.message, `registry ${locked.url} refused the credentials of user "skiff"`);
  await rejection(wrong.hasBlob('private/app', image.layer.digest), 'RegistryUnavailable');
  const anonymous = new RegistryClient({ url: locked.url });
  const needs = await rejection(anonymous.resolve('private/app', 'v1'), 'RegistryUnavailable');
  t.match(needs.message, 'requires credentials, and none were given');
});

t.test('Bearer tokens: fetched from the realm with credentials, cached per scope', async (t) => {
  const proxy = await startTokenProxy(registry.url, { username: 'robot', password: 'hunter2' });
  stops.push(() => proxy.close());
  const bearer = new RegistryClient({ url: proxy.url, username: 'robot', password: 'hunter2' });
  const image = await pushImage(bearer, 'tokens/app', 'v1');
  t.same(proxy.tokenScopes, [['repository:tokens/app:pull,push']], 'one token for the whole push');
  t.equal(await bearer.resolve('tokens/app', 'v1'), image.digest);
  const dest = join(dir, 'bearer-layer');
  await bearer.pullBlob('tokens/app', image.layer.digest, dest);
  t.ok((await readFile(dest)).equals(image.layer.data));
  await bearer.getBlob('tokens/app', image.config.digest);
  t.same(proxy.tokenScopes[1], ['repository:tokens/app:pull'], 'one more for pulling');
  t.equal(proxy.tokenScopes.length, 2);
  t.equal(await bearer.mountBlob('tokens/other', image.layer.digest, 'tokens/app'), true);
  t.same(proxy.tokenScopes[2], ['repository:tokens/other:pull,push', 'repository:tokens/app:pull'], 'a mount asks for both repositories');

  const wrong = new RegistryClient({ url: proxy.url, username: 'robot', password: 'nope' });
  const refused = await rejection(wrong.resolve('tokens/app', 'v1'), 'RegistryUnavailable');
  t.match(refused.message, 'refused the credentials of user "robot"');
  const anonymous = new RegistryClient({ url: proxy.url });
  const needs = await rejection(anonymous.resolve('tokens/app', 'v1'), 'RegistryUnavailable');
  t.match(needs.message, 'requires credentials');
});

t.test('challenges and scopes, as Docker Hub sends them', async (t) => {
  t.same(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull,push"'), {
    scheme: 'bearer',
    params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/ubuntu:pull,push' },
  });
  t.same(parseChallenge('Basic realm="Registry Realm"'), { scheme: 'basic', params: { realm: 'Registry Realm' } });
  t.equal(parseChallenge('Negotiate abc'), undefined);
  t.equal(parseChallenge(null), undefined);
  t.equal(mergeScopes('repository:a:pull,push', 'repository:a:pull'), 'repository:a:pull,push', 'covered: one token for the push');
  t.equal(mergeScopes('repository:a:pull', 'repository:a:pull,push'), 'repository:a:pull repository:a:pull,push');
  t.equal(mergeScopes('repository:a:pull,push', 'repository:b:pull'), 'repository:a:pull,push repository:b:pull');
  t.equal(mergeScopes('repository:localhost:5000/a:pull', 'repository:localhost:5000/a:pull'), 'repository:localhost:5000/a:pull');
});

t.test('RegistryUnavailable when nothing listens, on 5xx and on silence', async (t) => {
  const nothing = `http://127.0.0.1:${await freePort()}`;
  const refused = await rejection(new RegistryClient({ url: nothing }).resolve('any/app', 'v1'), 'RegistryUnavailable');
  t.match(refused.message, `registry ${nothing} unreachable`);
  t.match(refused.message, 'ECONNREFUSED');

  const failing = await listen((_req, res) => {
    res.writeHead(503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [{ code: 'UNAVAILABLE', message: 'down for maintenance' }] }));
  });
  stops.push(() => failing.close());
  const down = await rejection(new RegistryClient({ url: failing.url }).pullBlob('any/app', sha256Digest('x'), join(dir, 'never')), 'RegistryUnavailable');
  t.match(down.message, `registry ${failing.url} answered 503 to GET /v2/any/app/blobs/`);
  t.match(down.message, 'UNAVAILABLE: down for maintenance');

  const silent = await listen(() => undefined);
  stops.push(() => silent.close());
  const timedOut = await rejection(new RegistryClient({ url: silent.url, timeoutMs: 300 }).hasBlob('any/app', sha256Digest('x')), 'RegistryUnavailable');
  t.match(timedOut.message, `registry ${silent.url} unreachable (HEAD /v2/any/app/blobs/sha256:`);
  t.match(timedOut.message, 'no answer within 300 ms');

  // Stops after the headers, mid-body: the idle timeout applies to the bytes too.
  const stalls = await listen((_req, res) => {
    res.writeHead(200, { 'content-length': '1000', 'content-type': 'application/octet-stream' });
    res.write(Buffer.alloc(10));
  });
  stops.push(() => stalls.close());
  const destDir = join(dir, 'stalled');
  await mkdir(destDir);
  const stalled = await rejection(
    new RegistryClient({ url: stalls.url, timeoutMs: 300 }).pullBlob('any/app', sha256Digest('x'), join(destDir, 'blob')),
    'RegistryUnavailable',
  );
  t.match(stalled.message, 'no answer within 300 ms');
  t.same(await readdir(destDir), [], 'the partial file is removed');
});

t.test('redirects are followed to where the bytes are', async (t) => {
  const image = await pushImage(client, 'redirect/app', 'v1');
  const redirector = await listen((req, res) => {
    res.writeHead(307, { location: `${registry.url}${req.url ?? '/'}` });
    res.end();
  });
  stops.push(() => redirector.close());
  const via = new RegistryClient({ url: redirector.url });
  const dest = join(dir, 'redirected-layer');
  t.equal(await via.pullBlob('redirect/app', image.layer.digest, dest), image.layer.data.length);
  t.equal(await via.resolve('redirect/app', 'v1'), image.digest);
});

t.test('arguments outside the distribution grammar are InvalidRequest', async (t) => {
  await rejection(client.hasBlob('Bad/Name', sha256Digest('x')), 'InvalidRequest');
  await rejection(client.hasBlob('ok/name', 'sha256:abc'), 'InvalidRequest');
  await rejection(client.getManifest('ok/name', '../../etc'), 'InvalidRequest');
  t.throws(() => new RegistryClient({ url: 'ftp://example.com' }), { code: 'InvalidRequest', field: 'registry' });
  t.throws(() => new RegistryClient({ url: registry.url, username: 'only-a-name' }), { code: 'InvalidRequest' });
});

t.test('blobPulls counts the blob downloads the registry served', async (t) => {
  const image = await pushImage(client, 'counted/app', 'v1');
  const before = await registry.blobPulls();
  await client.pullBlob('counted/app', image.layer.digest, join(dir, 'counted-1'));
  await client.pullBlob('counted/app', image.layer.digest, join(dir, 'counted-2'));
  await client.getBlob('counted/app', image.config.digest);
  await client.hasBlob('counted/app', image.layer.digest); // HEAD: not a download
  await client.getManifest('counted/app', 'v1'); // a manifest: not a blob
  await rejection(client.getBlob('counted/app', sha256Digest('absent')), 'ImageNotFound'); // 404: nothing served
  t.equal(await registry.blobPulls(), before + 3);
});

// ---------------------------------------------------------------------------------------------

interface Blob {
  data: Buffer;
  digest: string;
}

interface PushedImage {
  digest: string;
  manifest: ImageManifest;
  manifestBytes: Buffer;
  layer: Blob;
  config: Blob;
  configJson: ImageConfig;
}

function blob(data: Buffer): Blob {
  return { data, digest: sha256Digest(data) };
}

/** A one-layer image of random bytes (several network chunks), pushed as `repository:tag`. */
async function pushImage(
  on: RegistryClient,
  repository: string,
  tag: string,
  architecture = 'amd64',
  mediaType: string = MediaType.manifest,
): Promise<PushedImage> {
  const docker = mediaType === MediaType.dockerManifest;
  const layer = blob(randomBytes(300_000));
  const configJson: ImageConfig = { architecture, os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] }, config: { Cmd: ['/bin/true'] } };
  const config = blob(Buffer.from(JSON.stringify(configJson)));
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType,
    config: { mediaType: docker ? MediaType.dockerConfig : MediaType.config, digest: config.digest, size: config.data.length },
    layers: [{ mediaType: docker ? MediaType.dockerLayerGzip : MediaType.layerGzip, digest: layer.digest, size: layer.data.length }],
  };
  await on.pushBlob(repository, layer.digest, layer.data);
  await on.pushBlob(repository, config.digest, config.data);
  const digest = await on.putManifest(repository, tag, manifest, mediaType);
  return { digest, manifest, manifestBytes: Buffer.from(JSON.stringify(manifest)), layer, config, configJson };
}

/** Where the filesystem driver keeps a blob's bytes. */
function blobDataFile(registryDir: string, digest: string): string {
  const hex = digestHex(digest);
  return join(registryDir, 'storage', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
}

/** Upload sessions the registry has started, from its access log. */
async function postsToUploads(on: LocalRegistry): Promise<number> {
  await on.blobPulls(); // waits until the log has caught up
  const log = await readFile(on.logFile, 'utf8');
  return log.split('\n').filter((line) => /"POST \/v2\/\S+\/blobs\/uploads\//.test(line)).length;
}

async function rejection(promise: Promise<unknown>, code: ErrorCode): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    if (isSkiffError(error) && error.code === code) return error;
    throw new Error(`expected a SkiffError ${code}, got: ${String(error)}`, { cause: error });
  }
  throw new Error(`expected a SkiffError ${code}, but it resolved`);
}

interface TokenProxy {
  url: string;
  /** The scopes each token request asked for, in order. */
  tokenScopes: string[][];
  close(): Promise<void>;
}

/**
 * A registry front that wants bearer tokens, as Docker Hub or Harbor do: `/token` hands out a
 * token naming the scopes asked for (to the right Basic credentials), and `/v2/` requests pass
 * through to the real registry only with a token covering what they need; otherwise 401 with a
 * Bearer challenge. Locations are rewritten relative, to exercise that too.
 */
async function startTokenProxy(upstream: string, credentials: { username: string; password: string }): Promise<TokenProxy> {
  const tokenScopes: string[][] = [];
  const expected = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
  let url = '';
  const server = await listen((req, res) => {
    const target = new URL(req.url ?? '/', url);
    if (target.pathname === '/token') {
      if (req.headers.authorization !== expected) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
        return;
      }
      const scopes = target.searchParams.getAll('scope');
      tokenScopes.push(scopes);
      const token = Buffer.from(JSON.stringify(scopes)).toString('base64url');
      // Both field names occur in the wild: `token` (Docker) and `access_token` (OAuth2).
      const body = tokenScopes.length % 2 === 0 ? { access_token: token, expires_in: 300 } : { token, expires_in: 300 };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      return;
    }
    const needed = neededScopes(req.method ?? 'GET', target);
    const granted = grantedScopes(req.headers.authorization);
    if (!needed.every((scope) => granted.some((have) => covers(have, scope)))) {
      const challenge = `Bearer realm="${url}/token",service="skiff-test",scope="${needed.join(' ')}"`;
      res.writeHead(401, { 'www-authenticate': challenge, 'content-type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    forward(req, res, upstream, url);
  });
  url = server.url;
  return { url, tokenScopes, close: () => server.close() };
}

function neededScopes(method: string, target: URL): string[] {
  const match = /^\/v2\/(.+)\/(?:blobs|manifests|tags)\//.exec(target.pathname);
  if (!match) return [];
  const write = method !== 'GET' && method !== 'HEAD';
  const scopes = [`repository:${match[1]}:${write ? 'pull,push' : 'pull'}`];
  const from = target.searchParams.get('from');
  if (from) scopes.push(`repository:${from}:pull`);
  return scopes;
}

/** Whether a granted `repository:<name>:<actions>` allows all of a needed one's actions. */
function covers(have: string, need: string): boolean {
  const split = (scope: string) => /^repository:(.+):([a-z,]+)$/.exec(scope);
  const [, haveName, haveActions = ''] = split(have) ?? [];
  const [, needName, needActions = ''] = split(need) ?? [];
  return haveName !== undefined && haveName === needName && needActions.split(',').every((a) => haveActions.split(',').includes(a));
}

function grantedScopes(authorization: string | undefined): string[] {
  if (!authorization?.startsWith('Bearer ')) return [];
  try {
    return JSON.parse(Buffer.from(authorization.slice('Bearer '.length), 'base64url').toString()) as string[];
  } catch {
    return [];
  }
}

function forward(req: IncomingMessage, res: ServerResponse, upstream: string, self: string): void {
  const headers = { ...req.headers };
  delete headers.authorization;
  const out = request(new URL(req.url ?? '/', upstream), { method: req.method, headers }, (answer) => {
    const location = answer.headers.location;
    if (location) {
      const absolute = new URL(location, self);
      answer.headers.location = `${absolute.pathname}${absolute.search}`;
    }
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  out.on('error', () => res.destroy());
  req.pipe(out);
}

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('no address');
  return {
    url: `http://127.0.0.1:${address.port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Installs a Debian package when its command is missing (the test runs as root, like npm test). */
async function ensureCommand(command: string, pkg: string): Promise<void> {
  if (existsSync(`/usr/bin/${command}`)) return;
  const run = promisify(execFile);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', '-o', 'DPkg::Lock::Timeout=300', pkg], { env });
  await install().catch(async () => {
    await run('apt-get', ['update', '-qq'], { env });
    await install();
  });
}
