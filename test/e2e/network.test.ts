/**
 * Network egress: a function deployed with "network": "egress" reaches a host outside (a test
 * host in its own network namespace, made here), but not this host's services, not private
 * addresses, and not other containers; functions without it have loopback only. The one
 * exception on this host: the gateway's functions listener, so functions can call functions.
 * Once an egress container is gone (destroyed, killed, or left by a worker that was killed), no
 * NAT rule, address lease, held namespace or bridge port of it remains.
 */
import t, { type Test } from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Sandbox } from '../../worker/sandbox/sandbox.js';
import { masqueradeChain } from '../../worker/sandbox/egress-network.js';
import { mountPointsUnder } from '../../worker/sandbox/mounts.js';
import { client, eventually } from '../support/api.js';
import { startPlatform, type Platform } from '../support/platform.js';

const PROBE = `
const net = require('net');
const os = require('os');
function connect(host, port) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, timeout: 1500 });
    let data = '';
    s.on('data', (d) => (data += d));
    s.on('end', () => resolve({ ok: true, data }));
    s.on('timeout', () => { s.destroy(); resolve({ ok: false, code: 'TIMEOUT' }); });
    s.on('error', (e) => resolve({ ok: false, code: e.code }));
  });
}
async function get(url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
    return { ok: true, status: res.status, data: await res.text() };
  } catch (e) {
    return { ok: false, code: (e.cause && e.cause.code) || e.name };
  }
}
let server;
exports.handler = async (e) => {
  if (e.listen && !server) { server = net.createServer((s) => s.end('neighbour')); await new Promise((r) => server.listen(7000, r)); }
  const interfaces = Object.keys(os.networkInterfaces()).sort();
  const address = (os.networkInterfaces().eth0 || []).find((a) => a.family === 'IPv4')?.address;
  const results = {};
  for (const [name, target] of Object.entries(e.targets || {})) results[name] = await connect(target.host, target.port);
  for (const [name, url] of Object.entries(e.urls || {})) results[name] = await get(url);
  return { interfaces, address, results };
};`;

/** Lines of the nat table that name one of `ids` (the CNI bridge plugin tags its rules with the container id) or one of `chains`. */
function natLinesOf(ids: string[], chains: Iterable<string> = []): string[] {
  const names = [...ids.map((id) => `id: \\"${id}\\"`), ...chains];
  return execFileSync('iptables', ['-w', '-t', 'nat', '-S'], { encoding: 'utf8' })
    .split('\n')
    .filter((line) => names.some((name) => line.includes(name)));
}

/** The CNI chains those lines jump to or fill. */
function chainsIn(lines: string[]): Set<string> {
  return new Set(lines.flatMap((line) => line.match(/CNI-[0-9a-f]+/g) ?? []));
}

/** host-local's lease files (`<dataDir>/<network>/<address>`, holding the container id) of `ids`. */
async function leasesOf(platform: Platform, ids: string[]): Promise<string[]> {
  const dataDir = join(platform.config.worker.runDir, 'cni');
  const found: string[] = [];
  for (const network of await readdir(dataDir).catch(() => [])) {
    if (network === 'netns') continue;
    for (const file of await readdir(join(dataDir, network)).catch(() => [])) {
      const holder = (await readFile(join(dataDir, network, file), 'utf8').catch(() => '')).split(/\r?\n/)[0] ?? '';
      if (ids.includes(holder)) found.push(join(network, file));
    }
  }
  return found;
}

/** Mounts holding a network namespace of `ids` (the egress network's handles). */
async function heldNamespacesOf(platform: Platform, ids: string[]): Promise<string[]> {
  const dir = join(platform.config.worker.runDir, 'cni', 'netns');
  return (await mountPointsUnder([dir])).filter((point) => ids.some((id) => point === join(dir, id)));
}

/** The bridge whose address is `gateway`, and the host ends of veths on it. */
function bridgeOf(gateway: string): string {
  const line = execFileSync('ip', ['-o', '-4', 'addr', 'show'], { encoding: 'utf8' })
    .split('\n')
    .find((l) => l.includes(` ${gateway}/`));
  const name = line?.split(/\s+/)[1];
  if (!name) throw new Error(`no bridge has address ${gateway}`);
  return name;
}

function portsOf(bridge: string): string[] {
  return execFileSync('ip', ['-o', 'link', 'show', 'master', bridge], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

/** The live sandboxes of the worker's instances of `names`. */
function sandboxesOf(platform: Platform, ...names: string[]): Sandbox[] {
  return platform.worker.instances
    .list()
    .filter((i) => names.includes(i.fn.name))
    .map((i) => i.sandbox);
}

/** What the egress network made for `sandboxes`, for a check that it is all gone later. */
async function networkOf(t: Test, platform: Platform, sandboxes: Sandbox[]): Promise<{ ids: string[]; chains: Set<string> }> {
  const ids = sandboxes.map((s) => s.id);
  const lines = natLinesOf(ids);
  for (const id of ids)
    t.ok(
      lines.some((line) => line.includes(`id: \\"${id}\\"`)),
      `${id} has masquerade rules while it runs`,
    );
  t.equal((await leasesOf(platform, ids)).length, ids.length, 'and an address lease each');
  t.equal((await heldNamespacesOf(platform, ids)).length, ids.length, 'and a held network namespace each');
  return { ids, chains: chainsIn(lines) };
}

async function assertNetworkGone(t: Test, platform: Platform, made: { ids: string[]; chains: Set<string> }, bridge: string): Promise<void> {
  t.same(natLinesOf(made.ids, made.chains), [], 'no NAT rule or chain of those containers is left');
  t.same(await leasesOf(platform, made.ids), [], 'nor an address lease');
  t.same(await heldNamespacesOf(platform, made.ids), [], 'nor a held network namespace');
  t.same(portsOf(bridge), [], 'nor a veth on the bridge');
}

t.test('egress reaches the outside, never the host, private ranges or other containers', async (t) => {
  const platform = await startPlatform();
  t.teardown(() => platform.stop());
  const tag = `skt${process.pid % 100000}`;
  const outside = '198.18.0.2';
  // The "internet": a test host in a network namespace of its own, with a TCP server.
  t.teardown(() => execFileSync('sh', ['-c', `ip netns del ${tag} 2>/dev/null; ip link del ${tag}h 2>/dev/null; true`]));
  execFileSync('sh', [
    '-ec',
    [
      `ip netns add ${tag}`,
      `ip link add ${tag}h type veth peer name ${tag}n`,
      `ip link set ${tag}n netns ${tag}`,
      `ip addr add 198.18.0.1/30 dev ${tag}h`,
      `ip link set ${tag}h up`,
      `ip netns exec ${tag} ip addr add ${outside}/30 dev ${tag}n`,
      `ip netns exec ${tag} ip link set ${tag}n up`,
      `ip netns exec ${tag} ip link set lo up`,
      `ip netns exec ${tag} ip route add default via 198.18.0.1`,
    ].join('\n'),
  ]);
  const internet = spawn(
    'ip',
    ['netns', 'exec', tag, process.execPath, '-e', `require('net').createServer((s) => s.end('hello from outside')).listen(8000, '${outside}')`],
    { stdio: 'ignore' },
  );
  // A service on this host, on every address: egress must not reach it.
  const hostService = createServer((s) => s.end('host secret'));
  await new Promise<void>((r) => hostService.listen(0, '0.0.0.0', r));
  const hostPort = (hostService.address() as AddressInfo).port;
  t.teardown(() => {
    internet.kill();
    hostService.close();
  });
  await new Promise((r) => setTimeout(r, 300));
  const api = client(() => platform);
  t.equal((await api.deploy({ name: 'out', network: 'egress' }, { 'index.js': PROBE })).status, 201);
  t.equal((await api.deploy({ name: 'peer', network: 'egress' }, { 'index.js': PROBE })).status, 201);
  t.equal((await api.deploy({ name: 'closed' }, { 'index.js': PROBE })).status, 201);

  const peer = (await (await api.invoke('peer', { listen: true })).json()) as { address: string };
  t.match(peer.address, /^10\.213\.\d+\.\d+$/, 'an egress container has an address on its worker bridge');
  const gateway = peer.address.replace(/\.\d+$/, '.1');

  const res = await api.invoke('out', {
    targets: {
      outside: { host: outside, port: 8000 },
      hostViaBridge: { host: gateway, port: hostPort },
      hostLoopback: { host: '127.0.0.1', port: hostPort },
      neighbour: { host: peer.address, port: 7000 },
      privateRange: { host: '10.0.0.1', port: 80 },
    },
  });
  t.equal(res.status, 200);
  const out = (await res.json()) as { interfaces: string[]; results: Record<string, { ok: boolean; data?: string; code?: string }> };
  t.same(out.interfaces, ['eth0', 'lo']);
  t.same(out.results.outside, { ok: true, data: 'hello from outside' }, 'the outside is reachable (through NAT)');
  t.equal(out.results.hostViaBridge?.ok, false, `this host's services are not (${out.results.hostViaBridge?.code})`);
  t.equal(out.results.hostLoopback?.ok, false, "the container's loopback is its own");
  t.equal(out.results.neighbour?.ok, false, `another container is not (${out.results.neighbour?.code})`);
  t.equal(out.results.privateRange?.ok, false, `private ranges are not (${out.results.privateRange?.code})`);

  const closed = (await (await api.invoke('closed', { targets: { outside: { host: outside, port: 8000 } } })).json()) as typeof out;
  t.same(closed.interfaces, ['lo'], 'without egress: loopback only');
  t.equal(closed.results.outside?.ok, false);

  // Deleted functions: their instances are destroyed, and with them all of their network.
  const sandboxes = sandboxesOf(platform, 'out', 'peer');
  t.equal(sandboxes.length, 2);
  const made = await networkOf(t, platform, sandboxes);
  for (const name of ['out', 'peer']) t.equal((await fetch(`${platform.url}/v1/functions/${name}`, { method: 'DELETE', headers: platform.auth })).status, 200);
  t.ok(await eventually(() => sandboxesOf(platform, 'out', 'peer').length === 0), 'the worker has no instance of them');
  await Promise.all(sandboxes.map((s) => s.destroy('test: waits for the teardown under way'))); // resolves once it is done
  await assertNetworkGone(t, platform, made, bridgeOf(gateway));
});

t.test('an egress function calls another function by URL, and still reaches no other port of this host', async (t) => {
  const platform = await startPlatform();
  t.teardown(() => platform.stop());
  const api = client(() => platform);
  const CALLEE = "exports.handler = async (e) => ({ statusCode: 200, headers: { 'content-type': 'text/plain' }, body: 'callee answers ' + e.rawPath });";
  t.equal((await api.deploy({ name: 'callee' }, { 'index.js': CALLEE })).status, 201);
  t.equal((await api.deploy({ name: 'caller', network: 'egress' }, { 'index.js': PROBE })).status, 201);

  const { address } = (await (await api.invoke('caller', {})).json()) as { address: string };
  // The host as the container reaches it: its bridge's address, the container's default gateway.
  const gateway = address.replace(/\.\d+$/, '.1');
  const port = (url: string): number => Number(new URL(url).port);
  const res = await api.invoke('caller', {
    urls: {
      functionUrl: `http://${gateway}:${port(platform.fnUrl)}/fn/callee/from-a-function`,
      api: `http://${gateway}:${port(platform.url)}/healthz`,
    },
    targets: {
      apiPort: { host: gateway, port: port(platform.url) },
      redis: { host: gateway, port: port(platform.config.redisUrl) },
      postgres: { host: gateway, port: port(platform.config.databaseUrl) },
    },
  });
  t.equal(res.status, 200);
  const { results } = (await res.json()) as { results: Record<string, { ok: boolean; status?: number; data?: string; code?: string }> };
  t.same(results.functionUrl, { ok: true, status: 200, data: 'callee answers /from-a-function' }, "another function's URL answers");
  t.equal(results.api?.ok, false, `the API's port is not reachable (${results.api?.code})`);
  t.equal(results.apiPort?.ok, false, `nor by TCP (${results.apiPort?.code})`);
  t.equal(results.redis?.ok, false, `nor Redis (${results.redis?.code})`);
  t.equal(results.postgres?.ok, false, `nor PostgreSQL (${results.postgres?.code})`);
});

t.test('an egress container that was killed, or one a killed worker left, leaves no rule, lease or namespace', async (t) => {
  const platform = await startPlatform();
  t.teardown(() => platform.stop());
  const api = client(() => platform);
  t.equal((await api.deploy({ name: 'victim', network: 'egress' }, { 'index.js': PROBE })).status, 201);
  const { address } = (await (await api.invoke('victim', {})).json()) as { address: string };
  const gateway = address.replace(/\.\d+$/, '.1');
  const bridge = bridgeOf(gateway);
  const sandboxes = sandboxesOf(platform, 'victim');
  t.equal(sandboxes.length, 1);
  const made = await networkOf(t, platform, sandboxes);

  // SIGKILL the container's process: the sandbox dies on its own, its network is removed after.
  const runc = (...args: string[]): string =>
    execFileSync(platform.config.worker.runcPath, ['--root', join(platform.config.worker.runDir, 'runc'), ...args], { encoding: 'utf8' });
  const { pid } = JSON.parse(runc('state', made.ids[0] ?? '')) as { pid: number };
  t.ok(pid > 0, 'the container runs');
  process.kill(pid, 'SIGKILL');
  t.ok(await eventually(() => sandboxesOf(platform, 'victim').length === 0), 'the worker has no instance left');
  await Promise.all(sandboxes.map((s) => s.destroy('test: waits for the teardown under way')));
  await assertNetworkGone(t, platform, made, bridge);

  // What a killed worker leaves (made here while the worker is stopped): its containers'
  // masquerade rules, leases and a held namespace.
  const network = `skiff-${bridge}`;
  const stale = ['sstale1', 'sstale2'];
  const dataDir = join(platform.config.worker.runDir, 'cni');
  const netns = `skt-stale-${process.pid}`;
  t.teardown(() => execFileSync('sh', ['-c', `ip netns del ${netns} 2>/dev/null; true`]));
  await platform.restartWorker(async () => {
    for (const [n, id] of stale.entries()) {
      const chain = masqueradeChain(network, id);
      const tag = ['-m', 'comment', '--comment', `name: "${network}" id: "${id}"`];
      execFileSync('iptables', ['-w', '-t', 'nat', '-N', chain]);
      execFileSync('iptables', ['-w', '-t', 'nat', '-A', chain, '!', '-d', '224.0.0.0/4', ...tag, '-j', 'MASQUERADE']);
      execFileSync('iptables', ['-w', '-t', 'nat', '-A', 'POSTROUTING', '-s', gateway.replace(/\.1$/, `.${250 + n}/32`), ...tag, '-j', chain]);
      await mkdir(join(dataDir, network), { recursive: true });
      await writeFile(join(dataDir, network, gateway.replace(/\.1$/, `.${250 + n}`)), `${id}\r\neth0`);
    }
    // A namespace held by a handle whose container (here: `ip netns`'s own handle) is gone.
    const handle = join(dataDir, 'netns', 'sstale2');
    await mkdir(join(dataDir, 'netns'), { recursive: true });
    await writeFile(handle, '');
    execFileSync('sh', ['-ec', `ip netns add ${netns}; mount --bind /run/netns/${netns} ${handle}; ip netns del ${netns}`]);
    t.equal(natLinesOf(stale, new Set(stale.map((id) => masqueradeChain(network, id)))).length, 6, 'the leftovers are in place while the worker is down');
  });
  const planted = { ids: stale, chains: new Set(stale.map((id) => masqueradeChain(network, id))) };
  // The worker's start removes what its previous run left, before any container is made.
  t.same(natLinesOf(planted.ids, planted.chains), [], "no rule or chain of the previous run's containers is left");
  t.same(await leasesOf(platform, planted.ids), [], 'nor their leases');
  t.same(await heldNamespacesOf(platform, planted.ids), [], 'nor a held namespace');
  t.equal((await api.invoke('victim', {})).status, 200, 'and egress works after it');
  t.notOk(existsSync(join(dataDir, 'netns', 'sstale2')), 'its handle is removed');
});
