/**
 * Network egress: a function deployed with "network": "egress" reaches a host outside (a test
 * host in its own network namespace, made here), but not this host's services, not private
 * addresses, and not other containers; functions without it have loopback only. The one
 * exception on this host: the gateway's functions listener, so functions can call functions.
 */
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { client } from '../support/api.js';
import { startPlatform } from '../support/platform.js';

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

t.test('egress reaches the outside, never the host, private ranges or other containers', async (t) => {
  const platform = await startPlatform();
  t.teardown(() => platform.stop());
  const tag = `skt${process.pid % 100000}`;
  const outside = '198.18.0.2';
  // The "internet": a test host in a network namespace of its own, with a TCP server.
  t.teardown(() => execFileSync('sh', ['-c', `ip netns del ${tag} 2>/dev/null; ip link del ${tag}h 2>/dev/null; true`]));
  execFileSync('sh', ['-ec', [
    `ip netns add ${tag}`,
    `ip link add ${tag}h type veth peer name ${tag}n`,
    `ip link set ${tag}n netns ${tag}`,
    `ip addr add 198.18.0.1/30 dev ${tag}h`,
    `ip link set ${tag}h up`,
    `ip netns exec ${tag} ip addr add ${outside}/30 dev ${tag}n`,
    `ip netns exec ${tag} ip link set ${tag}n up`,
    `ip netns exec ${tag} ip link set lo up`,
    `ip netns exec ${tag} ip route add default via 198.18.0.1`,
  ].join('\n')]);
  const internet = spawn('ip', ['netns', 'exec', tag, process.execPath, '-e', `require('net').createServer((s) => s.end('hello from outside')).listen(8000, '${outside}')`], { stdio: 'ignore' });
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
