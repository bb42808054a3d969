/**
 * Images end to end, against a real registry of this test's own (so its access log counts only
 * this file's pulls): function images share their runtime's base layers on the worker, a worker
 * without a cache pulls and one with a cache pulls nothing, a corrupt layer fails the call and
 * leaves nothing cached, functions deployed by image reference run the digest resolved at deploy,
 * and unused layers are collected while those in use stay.
 */
import t from 'tap';
import { freePort } from '../../infra/services/process.js';
import { existsSync } from 'node:fs';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { client, eventually } from '../support/api.js';
import { startPlatform, type Platform } from '../support/platform.js';
import { startRegistry, type LocalRegistry } from '../../infra/services/registry-server.js';
import { RegistryClient } from '../../infra/registry/client.js';
import { publishRuntimeImages } from '../../infra/images/base-images.js';
import { createLogger } from '../../infra/log.js';
import { loadConfig } from '../../infra/config.js';
import { digestHex, type ImageManifest } from '../../infra/images/oci/types.js';
import { functionRepository, runtimeRepository } from '../../infra/images/names.js';
import { RUNTIMES } from '../../infra/functions/version.js';
import { mountPointsUnder } from '../../worker/sandbox/mounts.js';
import { pushRuntimeImage } from '../support/images.js';

const scratch = process.env.SKIFF_TEST_STATE ?? '/tmp';
let registry: LocalRegistry;
let registryClient: RegistryClient;
let platform: Platform;
/** This platform's own layer store (not the one other test files share), so it can be emptied. */
const imagesDir = join(scratch, `images-e2e-${process.pid}`);
const registryDir = join(scratch, `registry-e2e-${process.pid}`);

t.before(async () => {
  registry = await startRegistry({ dir: registryDir, port: await freePort() });
  registryClient = new RegistryClient({ url: registry.url });
  // The runtime root file systems are built (and packed) already by the test runner: this only pushes.
  // Only the runtimes this file uses: its worker pools (and so pulls and unpacks) every runtime the registry has.
  await publishRuntimeImages(
    registryClient,
    { imagesDir: join(scratch, 'images'), nodeDir: loadConfig().nodeDir, runtimes: ['nodejs20', 'python3.11'] },
    createLogger('test', 'warn'),
  );
  platform = await startPlatform({ REGISTRY_URL: registry.url, SKIFF_IMAGES_DIR: imagesDir, SKIFF_IMAGE_GRACE_MS: '0', SKIFF_IMAGE_CACHE_MB: '64' });
});
t.teardown(async () => {
  await platform?.stop();
  await registry?.stop();
  await rm(imagesDir, { recursive: true, force: true });
  await rm(registryDir, { recursive: true, force: true });
});

const api = client(() => platform);
const hello = (word: string): Record<string, string> => ({ 'index.js': `exports.handler = async () => ({ word: ${JSON.stringify(word)} });` });

async function deployed(body: Record<string, unknown>, files?: Record<string, string>): Promise<{ image: string; version: number }> {
  const res = await api.deploy(body, files);
  const answer = (await res.json()) as { image: string; version: number };
  if (res.status !== 201) throw new Error(`deploy answered ${res.status}: ${JSON.stringify(answer)}`);
  return answer;
}

async function manifestOf(image: string): Promise<ImageManifest> {
  const [repository, digest] = image.split('@') as [string, string];
  return (await registryClient.getManifest(repository, digest)).manifest;
}

async function layersOnDisk(): Promise<Map<string, number>> {
  return new Map((await platform.worker.images.layers()).map((l) => [l.digest, l.bytes]));
}

t.test('two functions of one runtime share every base layer; the second adds only its code layer', async (t) => {
  const first = await deployed({ name: 'share-a' }, hello('a'));
  t.match(first.image, /^skiff\/functions\/share-a@sha256:[a-f0-9]{64}$/, 'the version records its image by digest');
  t.same(await (await api.invoke('share-a', {})).json(), { word: 'a' });
  const before = await layersOnDisk();

  const second = await deployed({ name: 'share-b' }, hello('b'));
  t.same(await (await api.invoke('share-b', {})).json(), { word: 'b' });
  const after = await layersOnDisk();

  const [a, b] = [await manifestOf(first.image), await manifestOf(second.image)];
  const base = (await registryClient.getManifest(runtimeRepository('nodejs20'), 'current')).manifest.layers.map((l) => l.digest);
  t.same(
    a.layers.slice(0, -1).map((l) => l.digest),
    base,
    'the first image is the runtime image plus one layer',
  );
  t.same(
    b.layers.slice(0, -1).map((l) => l.digest),
    base,
    'so is the second',
  );
  const added = [...after.keys()].filter((digest) => !before.has(digest));
  t.same(added, [b.layers.at(-1)?.digest], 'deploying and calling the second added exactly its code layer on the worker');
  const baseBytes = base.reduce((sum, digest) => sum + (after.get(digest) ?? 0), 0);
  const codeBytes = after.get(added[0] ?? '') ?? 0;
  t.ok(baseBytes > 10 * 1024 * 1024, `the base layers are on disk once (${(baseBytes / 1024 / 1024).toFixed(1)} MiB)`);
  t.ok(codeBytes > 0 && codeBytes < 4096, `the second function added ${codeBytes} bytes`);

  const again = await deployed({ name: 'share-a' }, hello('a'));
  t.equal((await manifestOf(again.image)).layers.at(-1)?.digest, a.layers.at(-1)?.digest, 'the same code deployed again makes the same layer');
  t.equal(again.version, 2);
});

t.test('a worker without a cache pulls from the registry; with its cache intact it pulls nothing', async (t) => {
  await deployed({ name: 'pull-me' }, hello('pulled'));
  t.same(await (await api.invoke('pull-me', {})).json(), { word: 'pulled' });

  const beforeEmpty = await registry.blobPulls();
  await platform.restartWorker(async () => {
    await rm(imagesDir, { recursive: true, force: true });
    await rm(join(platform.config.stateDir, 'workers', platform.config.worker.id, 'images'), { recursive: true, force: true });
  });
  const answers = await Promise.all(Array.from({ length: 5 }, async () => (await api.invoke('pull-me', {})).json()));
  t.same(answers, Array(5).fill({ word: 'pulled' }), 'five calls at once answer after pulling');
  // Each blob once: the runtimes' images the worker pools (config and layers), then the function's
  // config and code layer, whatever the number of calls that wanted them at the same time.
  const expected = new Set<string>();
  for (const runtime of RUNTIMES) {
    const current = await registryClient.getManifest(runtimeRepository(runtime), 'current').catch(() => undefined);
    for (const blob of current ? [current.manifest.config, ...current.manifest.layers] : []) expected.add(blob.digest);
  }
  const fn = await manifestOf(((await (await fetch(`${platform.url}/v1/functions/pull-me`, { headers: platform.auth })).json()) as { image: string }).image);
  for (const blob of [fn.config, ...fn.layers]) expected.add(blob.digest);
  const pulled = (await registry.blobPulls()) - beforeEmpty;
  t.equal(pulled, expected.size, `the emptied worker pulled each blob it needs once (${pulled} blobs)`);

  const beforeRestart = await registry.blobPulls();
  await platform.restartWorker();
  t.same(await (await api.invoke('pull-me', {})).json(), { word: 'pulled' });
  t.equal((await registry.blobPulls()) - beforeRestart, 0, 'a restart with the cache intact pulls no blob');
});

/** Pushes an image as a builder would: the runtime's current image plus one layer with `files` under /var/task. */
function pushImage(repository: string, tag: string, files: Record<string, string>, runtime = 'nodejs20'): Promise<{ digest: string; codeLayer: string }> {
  return pushRuntimeImage({ url: registry.url }, { repository, tag, runtime, files: Object.entries(files).map(([path, data]) => ({ path, data })) });
}

t.test('a function deployed by image reference runs the digest the tag had at deploy', async (t) => {
  const first = await pushImage('team/greeter', '1.0', { 'main.js': 'exports.greet = async () => ({ statusCode: 200, body: "from an image" });' });
  const res = await api.deploy({ name: 'by-image', image: 'team/greeter:1.0', handler: 'main.greet' });
  const body = (await res.json()) as { image: string; codeSha256: string | null };
  t.equal(res.status, 201, JSON.stringify(body));
  t.equal(body.image, `team/greeter@${first.digest}`, 'the tag is resolved to a digest');
  t.equal(body.codeSha256, null, 'no zip');
  const call = await fetch(`${platform.fnUrl}/fn/by-image`);
  t.equal(call.status, 200);
  t.equal(await call.text(), 'from an image', 'answers through /fn/');

  await pushImage('team/greeter', '1.0', { 'main.js': 'exports.greet = async () => ({ statusCode: 200, body: "moved" });' });
  t.match(await (await api.invoke('by-image', {})).json(), { body: 'from an image' }, 'a tag moved later changes nothing');

  const host = new URL(registry.url).host;
  const withHost = await api.deploy({ name: 'by-image', image: `${host}/team/greeter:1.0`, handler: 'main.greet' });
  t.equal(withHost.status, 201, 'the registry host may be named');
});

t.test('bad image references are refused with the field named, leaving nothing deployed', async (t) => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['missing image', { image: 'team/nothing-here:1' }, /not in the registry/],
    ['another registry', { image: 'registry.example.com/team/greeter:1.0' }, /registry\.example\.com/],
    ['a bad reference', { image: 'Team/UPPER case' }, /./],
    ['the wrong runtime', { image: 'team/greeter:1.0', runtime: 'python3.11', handler: 'main.greet' }, /nodejs20/],
    ['not built on a runtime image', { image: `${functionRepository('x')}:none` }, /not in the registry/],
  ];
  for (const [what, body, message] of cases) {
    const res = await api.deploy({ name: 'bad-image', handler: 'main.greet', ...body });
    const answer = (await res.json()) as { error: { code: string; field: string; message: string } };
    t.equal(res.status, 400, what);
    t.match(answer.error, { code: 'InvalidRequest', field: 'image', message }, what);
  }
  const both = await api.deploy({ name: 'bad-image', image: 'team/greeter:1.0' }, hello('x'));
  t.equal(both.status, 400, 'code and image together');
  const neither = await fetch(`${platform.url}/v1/functions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...platform.auth },
    body: JSON.stringify({ name: 'bad-image', runtime: 'nodejs20', handler: 'index.handler' }),
  });
  t.equal(neither.status, 400, 'neither code nor image');
  t.equal((await fetch(`${platform.url}/v1/functions/bad-image`, { headers: platform.auth })).status, 404, 'nothing was deployed');
});

t.test('a layer whose bytes do not match its digest fails the call clearly and leaves nothing cached', async (t) => {
  const pushed = await pushImage('team/corrupt', '1', { 'index.js': 'exports.handler = async () => "never";' });
  // The registry's own copy of the code layer is damaged: it now serves other bytes under the digest.
  const hex = digestHex(pushed.codeLayer);
  const data = join(registryDir, 'storage/docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
  t.ok(existsSync(data), 'the blob is where the registry keeps it');
  await writeFile(data, Buffer.from('not the layer that was pushed'));

  const res = await api.deploy({ name: 'corrupt', image: 'team/corrupt:1' });
  t.equal(res.status, 201, 'deploy resolves manifests and configs only');
  const call = await api.invoke('corrupt', {});
  const answer = (await call.json()) as { error: { code: string; message: string } };
  t.equal(call.status, 502);
  t.equal(answer.error.code, 'ImageCorrupt');
  t.match(answer.error.message, pushed.codeLayer, 'the message names the layer');
  t.notOk((await layersOnDisk()).has(pushed.codeLayer), 'the layer is not in the store');
  const downloads = join(platform.config.stateDir, 'workers', platform.config.worker.id, 'images', 'downloads');
  t.same(existsSync(downloads) ? await readdir(downloads) : [], [], 'no partial download is left');
  const layerDirs = await readdir(join(imagesDir, 'layers', 'sha256')).catch(() => []);
  t.notOk(
    layerDirs.some((name) => name.includes(hex)),
    'no partial layer directory is left',
  );
});

t.test('past the disk budget, layers no instance uses are removed; those in use stay', async (t) => {
  const gone = await deployed({ name: 'gc-a' }, hello('gc-a'));
  const kept = await deployed({ name: 'gc-b' }, hello('gc-b'));
  t.same(await (await api.invoke('gc-a', {})).json(), { word: 'gc-a' });
  t.same(await (await api.invoke('gc-b', {})).json(), { word: 'gc-b' });
  const goneLayer = (await manifestOf(gone.image)).layers.at(-1)?.digest ?? '';
  const keptLayer = (await manifestOf(kept.image)).layers.at(-1)?.digest ?? '';
  t.ok((await layersOnDisk()).has(goneLayer) && (await layersOnDisk()).has(keptLayer), 'both code layers are on disk');

  t.equal((await fetch(`${platform.url}/v1/functions/gc-a`, { method: 'DELETE', headers: platform.auth })).status, 200);
  t.ok(await eventually(() => !platform.worker.instances.list().some((i) => i.fn.name === 'gc-a'), 10_000), "gc-a's instance is gone");
  // Its container's mounts go a moment after the instance does (teardown): until then the layer is
  // in use, and a collection keeps it.
  const removed: string[] = [];
  const collected = await eventually(
    async () => {
      removed.push(...(await platform.worker.collectImages()));
      return removed.includes(goneLayer);
    },
    10_000,
    200,
  );
  t.ok(collected, "gc-a's code layer, unused, is removed (the budget is 64 MiB, the base alone is more)");
  const onDisk = await layersOnDisk();
  t.notOk(onDisk.has(goneLayer));
  t.ok(onDisk.has(keptLayer), "gc-b's layer, in use, stays");
  const base = (await manifestOf(kept.image)).layers.slice(0, -1);
  t.ok(
    base.every((l) => onDisk.has(l.digest)),
    'the base layers, in use, stay',
  );
  t.same(await (await api.invoke('gc-b', {})).json(), { word: 'gc-b' }, 'gc-b keeps answering');
});

t.test('a deploy makes the workers pull its image and mount its code before any call', async (t) => {
  const { image } = await deployed({ name: 'ahead' }, hello('ahead'));
  const held = await eventually(async () => {
    const res = await fetch(`${platform.url}/v1/images`, { headers: platform.auth });
    const { images } = (await res.json()) as { images: Array<{ reference: string; workers: string[] }> };
    return images.some((i) => i.reference === image && i.workers.includes(platform.config.worker.id));
  }, 10_000);
  t.ok(held, 'the worker holds the image though nothing called the function');
  const code = join(platform.config.stateDir, 'workers', platform.config.worker.id, 'code', digestHex((await manifestOf(image)).layers.at(-1)?.digest ?? ''));
  t.ok(await eventually(async () => (await mountPointsUnder([code])).length > 0, 5000), 'its code is mounted, ready to bind');
  t.same(await (await api.invoke('ahead', {})).json(), { word: 'ahead' });
});

t.test('GET /v1/images lists what the workers hold; a Python function deployed by zip answers through /fn/', async (t) => {
  await deployed(
    { name: 'py-image', runtime: 'python3.11', handler: 'app.handler' },
    { 'app.py': 'def handler(event, context):\n    return {"statusCode": 200, "body": "py"}\n' },
  );
  const call = await fetch(`${platform.fnUrl}/fn/py-image`);
  t.equal(call.status, 200);
  t.equal(await call.text(), 'py');
  const listed = await eventually(async () => {
    const res = await fetch(`${platform.url}/v1/images`, { headers: platform.auth });
    const { images } = (await res.json()) as { images: Array<{ reference: string; runtime: string; workers: string[] }> };
    return images.some(
      (i) => i.reference.startsWith('skiff/functions/py-image@') && i.runtime === 'python3.11' && i.workers.includes(platform.config.worker.id),
    );
  }, 5000);
  t.ok(listed, 'the python image is listed with the worker holding it');
  t.equal((await fetch(`${platform.url}/v1/images`)).status, 401, 'the list needs a key');
});
