/**
 * The escape suite: deployed functions that try to break out of their sandbox, through the real
 * gateway, worker and runc. Each handler attempts an attack with Node.js APIs (fs, child_process,
 * net, process) and reports what happened; each test asserts the attempt was contained by the
 * layer meant to stop it, so it fails if that layer is switched off (docs/SECURITY.md).
 *
 * Raw system calls (mount, unshare, ptrace, keyctl, ...) cannot be made from JavaScript, so the
 * handlers run tiny static x86-64 programs written below byte by byte: each makes one system call
 * and exits with its errno (0 on success). On other architectures those cases are skipped.
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPlatform, type Platform } from '../support/platform.js';
import { cgroupVersion } from '../../worker/sandbox/cgroups.js';
import { zipFiles } from '../support/zip.js';

let platform: Platform;
t.before(async () => {
  // Half a core at least, not the default whole one: the busy-loop case then sees the ceiling
  // change from the boot value once the handler is loaded, on a host of any size.
  platform = await startPlatform({ SKIFF_CPU_FLOOR_MILLICORES: '500' });
  await deploy('bystander', 'exports.handler = async () => "alive";');
});
t.teardown(async () => {
  await platform?.stop();
});

async function deploy(name: string, source: string, options: Record<string, unknown> = {}): Promise<void> {
  const zip = (await zipFiles({ 'index.js': source })).toString('base64');
  const res = await fetch(`${platform.url}/v1/functions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...platform.auth },
    body: JSON.stringify({ name, runtime: 'nodejs20', handler: 'index.handler', code: { zip }, ...options }),
  });
  if (res.status !== 201) throw new Error(`deploy ${name}: ${res.status} ${await res.text()}`);
}

async function call<T>(name: string, event: unknown = {}): Promise<{ status: number; body: T }> {
  const res = await fetch(`${platform.url}/v1/functions/${name}/invoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(event),
  });
  return { status: res.status, body: (await res.json()) as T };
}

/** The platform still serves another function (run after every destructive case). */
async function othersStillServed(t: Test): Promise<void> {
  const res = await call<string>('bystander');
  t.same(res, { status: 200, body: 'alive' }, 'another function still answers');
}

/** Handlers' common helpers: run `f`, report `{ ok }` or `{ code }` (the errno name). */
const ATTEMPT = `
const fs = require('fs');
const attempt = (f) => { try { const value = f(); return { ok: true, value }; } catch (e) { return { ok: false, code: e.code || String(e.message) }; } };
const clean = (s) => String(s).replace(/\\0/g, ' ');
`;

// ---------------------------------------------------------------------------------------------
// Static x86-64 programs: one system call, then exit_group(-result & 0xff).

const X64 = process.arch === 'x64';
const SKIP_NOT_X64 = X64 ? false : 'the syscall probes are x86-64 machine code';

/** An ELF executable that makes syscall `nr` with up to six arguments and exits with its errno. */
function syscallProgram(nr: number, args: Array<number | bigint> = []): Buffer {
  const code: number[] = [];
  const mov = (prefix: number[], value: number | bigint): void => {
    const imm = Buffer.alloc(8);
    imm.writeBigUInt64LE(BigInt.asUintN(64, BigInt(value)));
    code.push(...prefix, ...imm);
  };
  mov([0x48, 0xb8], nr); // movabs rax, nr
  const registers = [
    [0x48, 0xbf],
    [0x48, 0xbe],
    [0x48, 0xba],
    [0x49, 0xba],
    [0x49, 0xb8],
    [0x49, 0xb9],
  ]; // rdi rsi rdx r10 r8 r9
  args.forEach((value, i) => mov(registers[i] as number[], value));
  code.push(0x0f, 0x05); // syscall
  code.push(0x48, 0xf7, 0xd8); // neg rax
  code.push(0x48, 0x89, 0xc7); // mov rdi, rax
  code.push(0xb8, 0xe7, 0x00, 0x00, 0x00); // mov eax, 231 (exit_group)
  code.push(0x0f, 0x05); // syscall
  const headers = 64 + 56;
  const base = 0x400000n;
  const size = BigInt(headers + code.length);
  const elf = Buffer.alloc(headers + code.length);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0], 0); // ELF, 64-bit, little endian, version 1, System V
  elf.writeUInt16LE(2, 16); // ET_EXEC
  elf.writeUInt16LE(0x3e, 18); // EM_X86_64
  elf.writeUInt32LE(1, 20);
  elf.writeBigUInt64LE(base + BigInt(headers), 24); // entry
  elf.writeBigUInt64LE(64n, 32); // program headers right after this header
  elf.writeUInt16LE(64, 52);
  elf.writeUInt16LE(56, 54);
  elf.writeUInt16LE(1, 56);
  elf.writeUInt32LE(1, 64); // PT_LOAD of the whole file, read + execute
  elf.writeUInt32LE(5, 68);
  elf.writeBigUInt64LE(0n, 72);
  elf.writeBigUInt64LE(base, 80);
  elf.writeBigUInt64LE(base, 88);
  elf.writeBigUInt64LE(size, 96);
  elf.writeBigUInt64LE(size, 104);
  elf.writeBigUInt64LE(0x1000n, 112);
  elf.set(code, headers);
  return elf;
}

const EPERM = 1;
const ENOSYS = 38;
const CLONE_NEWUSER = 0x10000000;
const SIGCHLD = 17;

/** [name, x86-64 number, arguments, errno expected in the sandbox]. */
const PROBES: Array<[string, number, Array<number | bigint>, number]> = [
  ['sched_yield (allowed: control)', 24, [], 0],
  ['unshare(CLONE_NEWUSER)', 272, [CLONE_NEWUSER], EPERM],
  ['unshare(CLONE_NEWNS|CLONE_NEWUSER)', 272, [CLONE_NEWUSER | 0x20000], EPERM],
  ['clone(CLONE_NEWUSER|SIGCHLD)', 56, [CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0], EPERM],
  ['clone3 (ENOSYS, so libc falls back to clone)', 435, [0, 0], ENOSYS],
  ['setns', 308, [-1, 0], EPERM],
  ['mount', 165, [0, 0, 0, 0, 0], EPERM],
  ['umount2', 166, [0, 0], EPERM],
  ['pivot_root', 155, [0, 0], EPERM],
  ['chroot', 161, [0], EPERM],
  ['ptrace(PTRACE_TRACEME)', 101, [0, 0, 0, 0], EPERM],
  ['keyctl(KEYCTL_GET_KEYRING_ID, session)', 250, [0, -3, 0], EPERM],
  ['add_key', 248, [0, 0, 0, 0, -2], EPERM],
  ['bpf(BPF_MAP_CREATE)', 321, [0, 0, 0], EPERM],
  ['perf_event_open', 298, [0, 0, -1, -1, 0], EPERM],
  ['init_module', 175, [0, 0, 0], EPERM],
  ['finit_module', 313, [-1, 0, 0], EPERM],
  ['delete_module', 176, [0, 0], EPERM],
  ['kexec_load', 246, [0, 0, 0, 0], EPERM],
  ['userfaultfd(UFFD_USER_MODE_ONLY)', 323, [1], EPERM],
  ['io_uring_setup', 425, [1, 0], EPERM],
  ['open_by_handle_at', 304, [-1, 0, 0], EPERM],
  ['personality(READ_IMPLIES_EXEC)', 135, [0x0400000], EPERM],
  ['acct', 163, [0], EPERM],
  ['swapon', 167, [0, 0], EPERM],
  ['reboot', 169, [0, 0, 0, 0], EPERM],
  ['syslog(SYSLOG_ACTION_READ_ALL)', 103, [3, 0, 0], EPERM],
  ['socket(AF_INET, SOCK_RAW, ICMP) (no CAP_NET_RAW)', 41, [2, 3, 1], EPERM],
  ['socket(AF_PACKET, SOCK_RAW) (no CAP_NET_RAW)', 41, [17, 3, 0], EPERM],
  ['socket(AF_VSOCK)', 41, [40, 1, 0], EPERM],
];

/** Writes each program to /tmp (which allows exec) and runs it; answers name → exit status. */
const PROBE_RUNNER = `${ATTEMPT}
const { spawnSync } = require('child_process');
exports.handler = async (event) => {
  fs.mkdirSync('/tmp/probes', { recursive: true });
  const out = {};
  for (const [i, [name, elf]] of event.programs.entries()) {
    const file = '/tmp/probes/p' + i;
    fs.writeFileSync(file, Buffer.from(elf, 'base64'), { mode: 0o755 });
    const run = spawnSync(file, [], { timeout: 5000 });
    out[name] = run.error ? run.error.code : run.signal ? run.signal : run.status;
  }
  return out;
};`;

// ---------------------------------------------------------------------------------------------

t.test('no capabilities, no new privileges, a seccomp filter: in the runtime and in its children', async (t) => {
  await deploy(
    'status',
    `${ATTEMPT}
const { spawnSync } = require('child_process');
const fields = (text) => Object.fromEntries(text.split('\\n').filter((l) => l.includes(':')).map((l) => l.split(/:\\s*/)));
exports.handler = async () => ({
  self: fields(fs.readFileSync('/proc/self/status', 'utf8')),
  child: fields(spawnSync('/usr/bin/node', ['-e', 'process.stdout.write(require("fs").readFileSync("/proc/self/status","utf8"))'], { encoding: 'utf8' }).stdout),
  uid: process.getuid(),
  uidMap: fs.readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\\s+/).map(Number),
});`,
  );
  const { status, body } = await call<{ self: Record<string, string>; child: Record<string, string>; uid: number; uidMap: number[] }>('status');
  t.equal(status, 200);
  for (const [who, fields] of [
    ['runtime', body.self],
    ['child process', body.child],
  ] as const) {
    for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) t.equal(fields[set], '0000000000000000', `${who}: ${set} is empty`);
    t.equal(fields.NoNewPrivs, '1', `${who}: no new privileges`);
    t.equal(fields.Seccomp, '2', `${who}: a seccomp filter is on (mode 2)`);
    t.ok(Number(fields.Seccomp_filters) >= 1, `${who}: at least one filter`);
  }
  t.not(body.uid, 0, 'the runtime is not root inside');
  const [inside, outside, size] = body.uidMap;
  t.equal(inside, 0);
  t.equal(size, 65536);
  t.ok((outside ?? 0) >= platform.config.worker.uidBase, `container ids map to an unprivileged host range (${outside})`);
});

t.test('forbidden system calls fail: mount, namespaces, ptrace, keys, bpf, modules, raw sockets', { skip: SKIP_NOT_X64 }, async (t) => {
  await deploy('probes', PROBE_RUNNER, { timeoutMs: 20_000 });
  const programs = PROBES.map(([name, nr, args]) => [name, syscallProgram(nr, args).toString('base64')]);
  const { status, body } = await call<Record<string, number | string>>('probes', { programs });
  t.equal(status, 200);
  for (const [name, , , expected] of PROBES) {
    t.equal(body[name], expected, `${name}: ${expected === 0 ? 'succeeds' : expected === ENOSYS ? 'ENOSYS' : 'EPERM'}`);
  }
  await othersStillServed(t);
});

t.test('host files are out of reach', async (t) => {
  const secretDir = process.env.SKIFF_TEST_STATE ?? tmpdir();
  const secretFile = join(secretDir, `host-secret-${randomBytes(6).toString('hex')}`);
  const secret = randomBytes(16).toString('hex');
  await writeFile(secretFile, secret, { mode: 0o644 });
  t.teardown(() => rm(secretFile, { force: true }));
  await deploy(
    'reader',
    `${ATTEMPT}
const os = require('os');
exports.handler = async (event) => {
  const reads = {};
  for (const path of ['/etc/shadow', event.secretFile, '/proc/1/root' + event.secretFile, '/proc/1/root/etc/shadow', '/var/task/../../..' + event.secretFile]) {
    reads[path] = attempt(() => fs.readFileSync(path, 'utf8').includes(event.secret));
  }
  const mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\\n').map((line) => {
    const [left, right] = line.split(' - ');
    const l = left.split(' '), r = right.split(' ');
    return { root: l[3], point: l[4], type: r[0], options: r[2] || '' };
  });
  const hostPaths = [];
  for (const m of mountinfo) {
    if (m.root.startsWith('/') && m.root !== '/' && !['proc', 'sysfs', 'tmpfs', 'devtmpfs', 'mqueue', 'devpts'].includes(m.type)) hostPaths.push(m.root);
    for (const option of m.options.split(',')) {
      const [key, value] = option.split('=');
      if (['lowerdir', 'upperdir', 'workdir'].includes(key)) hostPaths.push(...value.split(':'));
    }
  }
  return {
    reads,
    hostPaths: hostPaths.map((path) => ({ path, visible: fs.existsSync(path) })),
    pid1: clean(fs.readFileSync('/proc/1/cmdline', 'utf8')),
    environ: clean(fs.readFileSync('/proc/1/environ', 'utf8')),
    hostname: os.hostname(),
    masked: Object.fromEntries(['/proc/kcore', '/proc/keys', '/proc/timer_list', '/proc/sched_debug'].map((p) => [p, attempt(() => fs.readFileSync(p).length)])),
  };
};`,
  );
  const { status, body } = await call<{
    reads: Record<string, { ok: boolean; code?: string }>;
    hostPaths: Array<{ path: string; visible: boolean }>;
    pid1: string;
    environ: string;
    hostname: string;
    masked: Record<string, { ok: boolean; value?: number; code?: string }>;
  }>('reader', { secretFile, secret });
  t.equal(status, 200);
  for (const [path, result] of Object.entries(body.reads)) t.same(result, { ok: false, code: 'ENOENT' }, `${path}: not there`);
  t.match(body.pid1, /^\/usr\/bin\/node .*bootstrap\.js/, "pid 1 is the sandbox's own runtime, not the host's init");
  for (const leak of [process.env.REDIS_URL, process.env.DATABASE_URL].filter(Boolean) as string[]) {
    t.notOk(body.environ.includes(leak), 'the host environment is not in /proc/1/environ');
  }
  t.equal(body.hostname, 'skiff', 'its own hostname (uts namespace)');
  t.not(body.hostname, hostname());
  for (const [path, result] of Object.entries(body.masked)) t.ok(!result.ok || result.value === 0, `${path} is masked (${JSON.stringify(result)})`);
  // mountinfo names some host directories (the overlay's layers, the bind sources), as in any
  // container: they must be the platform's own, and none of them may be reachable from inside.
  const c = platform.config;
  const own = [c.stateDir, c.imagesDir, c.worker.runDir];
  t.ok(body.hostPaths.length > 0, 'the overlay and bind sources are listed');
  for (const { path, visible } of body.hostPaths) {
    t.ok(
      own.some((dir) => path === dir || path.startsWith(`${dir}/`)),
      `${path} belongs to the platform`,
    );
    t.notOk(visible, `${path} is not reachable inside`);
  }
});

t.test('nothing outside /tmp can be written', async (t) => {
  await deploy(
    'writer',
    `${ATTEMPT}
exports.handler = async () => {
  const out = {};
  for (const path of ['/x', '/etc/passwd', '/etc/x', '/usr/bin/node', '/usr/x', '/opt/skiff/x', '/var/task/index.js', '/var/task/x',
      '/proc/sys/kernel/hostname', '/proc/sys/kernel/core_pattern', '/proc/sys/vm/overcommit_memory', '/sys/kernel/x', '/run/skiff/x', '/dev/x', '/tmp/x']) {
    out[path] = attempt(() => fs.writeFileSync(path, 'x'));
  }
  out['chmod /var/task/index.js'] = attempt(() => fs.chmodSync('/var/task/index.js', 0o777));
  out['mkdir /var/task/d'] = attempt(() => fs.mkdirSync('/var/task/d'));
  // per-mount options of the mount on top at /var/task (the code, bound after the sandbox started)
  const task = fs.readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\\n').map((l) => l.split(' ')).filter((f) => f[4] === '/var/task');
  out.taskMountOptions = task[task.length - 1][5];
  return out;
};`,
  );
  const { status, body } = await call<Record<string, { ok: boolean; code?: string }> & { taskMountOptions: string }>('writer');
  t.equal(status, 200, JSON.stringify(body));
  const expect: Record<string, string[]> = {
    // the read-only root file system
    '/x': ['EROFS'],
    '/etc/passwd': ['EROFS'],
    '/etc/x': ['EROFS'],
    '/usr/bin/node': ['EROFS'],
    '/usr/x': ['EROFS'],
    '/opt/skiff/x': ['EROFS'],
    // the code: a read-only mount of files owned by a host id the sandbox does not map
    '/var/task/index.js': ['EROFS', 'EACCES'],
    '/var/task/x': ['EROFS', 'EACCES'],
    'chmod /var/task/index.js': ['EROFS', 'EPERM'],
    'mkdir /var/task/d': ['EROFS', 'EACCES'],
    // read-only /proc/sys and /sys
    '/proc/sys/kernel/hostname': ['EROFS'],
    '/proc/sys/kernel/core_pattern': ['EROFS'],
    '/proc/sys/vm/overcommit_memory': ['EROFS'],
    '/sys/kernel/x': ['EROFS'],
    // directories of the platform that the sandbox user does not own
    '/run/skiff/x': ['EACCES'],
    '/dev/x': ['EACCES'],
  };
  for (const [path, codes] of Object.entries(expect)) {
    t.ok(body[path]?.ok === false && codes.includes(body[path]?.code ?? ''), `${path}: ${codes.join(' or ')} (got ${JSON.stringify(body[path])})`);
  }
  t.same(body['/tmp/x'], { ok: true }, '/tmp is writable');
  // The code is bound from a read-only mount point, so the mount itself is read-only inside too
  // (not only the files' ownership stops writes).
  t.ok(body.taskMountOptions.split(',').includes('ro'), `the code mount itself is read-only (${body.taskMountOptions})`);
});

t.test('setuid and setgid to root fail', async (t) => {
  await deploy(
    'setuid',
    `${ATTEMPT}
exports.handler = async () => ({
  setuid: attempt(() => process.setuid(0)), seteuid: attempt(() => process.seteuid(0)),
  setgid: attempt(() => process.setgid(0)), setgroups: attempt(() => process.setgroups([0])),
  uid: process.getuid(), euid: process.geteuid(),
});`,
  );
  const { status, body } = await call<Record<string, unknown>>('setuid');
  t.equal(status, 200);
  t.match(body, {
    setuid: { ok: false, code: 'EPERM' },
    seteuid: { ok: false, code: 'EPERM' },
    setgid: { ok: false, code: 'EPERM' },
    setgroups: { ok: false, code: 'EPERM' },
    uid: 1000,
    euid: 1000,
  });
});

t.test("no network: the host's services and addresses are unreachable", async (t) => {
  const ports = [process.env.REDIS_URL, process.env.DATABASE_URL, platform.url].map((url) => Number(new URL(url ?? 'http://x:1').port)).filter((p) => p > 0);
  t.equal(ports.length, 3, 'the Redis, PostgreSQL and gateway ports are known');
  const hostAddresses = Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && !a.internal && a.family === 'IPv4')
    .map((a) => a?.address as string);
  await deploy(
    'netprobe',
    `${ATTEMPT}
const net = require('net');
const dgram = require('dgram');
const os = require('os');
const connect = (host, port) => new Promise((resolve) => {
  const s = net.connect({ host, port });
  s.setTimeout(2000, () => { s.destroy(); resolve('TIMEOUT'); });
  s.on('connect', () => { s.destroy(); resolve('CONNECTED'); });
  s.on('error', (e) => resolve(e.code));
});
const udp = (host, port) => new Promise((resolve) => {
  const s = dgram.createSocket('udp4');
  s.send('x', port, host, (e) => { s.close(); resolve(e ? e.code : 'SENT'); });
});
exports.handler = async (event) => {
  const tcp = {};
  for (const host of ['127.0.0.1', ...event.hosts]) for (const port of event.ports) tcp[host + ':' + port] = await connect(host, port);
  const udpOut = {};
  for (const host of event.hosts) udpOut[host] = await udp(host, 53);
  return { tcp, udp: udpOut, interfaces: Object.keys(os.networkInterfaces()) };
};`,
    { timeoutMs: 20_000 },
  );
  const { status, body } = await call<{ tcp: Record<string, string>; udp: Record<string, string>; interfaces: string[] }>('netprobe', {
    ports,
    hosts: hostAddresses,
  });
  t.equal(status, 200);
  t.same(body.interfaces, ['lo'], 'loopback is the only interface');
  for (const port of ports) t.equal(body.tcp[`127.0.0.1:${port}`], 'ECONNREFUSED', `127.0.0.1:${port} is the sandbox's own loopback: refused`);
  for (const host of hostAddresses) {
    for (const port of ports) t.equal(body.tcp[`${host}:${port}`], 'ENETUNREACH', `${host}:${port}: no route`);
    t.equal(body.udp[host], 'ENETUNREACH', `udp to ${host}: no route`);
  }
});

t.test('another function: its code, environment, processes, sockets and ids are out of sight', async (t) => {
  const secret = randomBytes(16).toString('hex');
  await deploy(
    'neighbor',
    `${ATTEMPT}
const net = require('net');
let servers;
exports.handler = async () => {
  servers ??= await Promise.all([{ host: '127.0.0.1', port: 7777 }, { path: '\\0skiff-neighbor' }].map((where) => new Promise((resolve, reject) => {
    const server = net.createServer((s) => s.end('neighbor')).listen(where, () => resolve(server)).on('error', reject);
  })));
  return { uidMap: fs.readFileSync('/proc/self/uid_map', 'utf8').trim() };
};`,
    { env: { NEIGHBOR_SECRET: secret } },
  );
  const neighbor = await call<{ uidMap: string }>('neighbor');
  t.equal(neighbor.status, 200);
  const instance = platform.worker.instances.list().find((i) => i.fn.name === 'neighbor');
  t.ok(instance, 'the neighbor is warm');

  await deploy(
    'snoop',
    `${ATTEMPT}
const net = require('net');
const { spawnSync } = require('child_process');
const connect = (where) => new Promise((resolve) => {
  const s = net.connect(where);
  s.setTimeout(2000, () => { s.destroy(); resolve('TIMEOUT'); });
  s.on('data', (d) => { s.destroy(); resolve('READ ' + d); });
  s.on('error', (e) => resolve(e.code));
});
exports.handler = async (event) => {
  const pids = fs.readdirSync('/proc').filter((p) => /^\\d+$/.test(p));
  const seen = pids.map((pid) => clean(attempt(() => fs.readFileSync('/proc/' + pid + '/cmdline', 'utf8')).value) + ' ' + clean(attempt(() => fs.readFileSync('/proc/' + pid + '/environ', 'utf8')).value)).join('\\n');
  // kill every process this user may signal: only this sandbox's (pid 1 ignores it)
  const killer = spawnSync('/usr/bin/node', ['-e', 'try { process.kill(-1, "SIGKILL") } catch (e) { console.log(e.code) }']);
  return {
    pids,
    secretSeen: seen.includes(event.secret) || JSON.stringify(process.env).includes(event.secret),
    task: fs.readdirSync('/var/task'),
    neighborCode: attempt(() => fs.readdirSync(event.neighborCode)),
    tcp: await connect({ host: '127.0.0.1', port: 7777 }),
    abstract: await connect({ path: '\\0skiff-neighbor' }),
    killer: killer.status,
    uidMap: fs.readFileSync('/proc/self/uid_map', 'utf8').trim(),
  };
};`,
  );
  const codeDir = join(platform.config.stateDir, 'workers', platform.config.worker.id, 'code');
  const { status, body } = await call<{
    pids: string[];
    secretSeen: boolean;
    task: string[];
    neighborCode: { ok: boolean; code?: string };
    tcp: string;
    abstract: string;
    killer: number;
    uidMap: string;
  }>('snoop', { secret, neighborCode: codeDir });
  t.equal(status, 200);
  t.same(body.pids, ['1'], 'its pid namespace holds only its own runtime');
  t.notOk(body.secretSeen, "the neighbor's environment is not visible");
  t.same(body.task, ['index.js'], '/var/task holds only its own code');
  t.same(body.neighborCode, { ok: false, code: 'ENOENT' }, "the worker's code cache is not reachable");
  t.equal(body.tcp, 'ECONNREFUSED', "the neighbor's loopback port is in another network namespace");
  t.equal(body.abstract, 'ECONNREFUSED', "the neighbor's abstract unix socket is in another network namespace");
  t.equal(body.killer, 0, 'kill(-1) ran');
  t.not(body.uidMap, neighbor.body.uidMap, `each sandbox maps to its own host id range (${body.uidMap} / ${neighbor.body.uidMap})`);
  const again = await call<{ uidMap: string }>('neighbor');
  t.equal(again.status, 200, 'the neighbor survived kill(-1) and still answers');
  t.equal(platform.worker.instances.list().find((i) => i.fn.name === 'neighbor')?.sandbox.id, instance?.sandbox.id, 'in the same container');
});

t.test('a fork bomb stops at the pids limit; the platform keeps serving', { skip: SKIP_NOT_X64 }, async (t) => {
  const limit = platform.config.worker.pidsLimit;
  await deploy(
    'forkbomb',
    `${ATTEMPT}
const { spawn, spawnSync } = require('child_process');
const { once } = require('events');
exports.handler = async (event) => {
  if (event.cleanup) {
    process.kill(-1, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 200));
    return { after: spawnSync('/usr/bin/node', ['-e', 'process.exit(7)']).status };
  }
  // children that only wait: a process each, almost no memory
  fs.writeFileSync('/tmp/pause', Buffer.from(event.pause, 'base64'), { mode: 0o755 });
  let spawned = 0;
  for (; spawned < event.max; spawned++) {
    const child = spawn('/tmp/pause', [], { stdio: 'ignore' });
    if (child.pid === undefined) {
      const [error] = await once(child, 'error');
      return { spawned, code: error.code };
    }
  }
  return { spawned, code: 'none' };
};`,
    { timeoutMs: 20_000 },
  );
  const pause = syscallProgram(34).toString('base64'); // pause(): waits for a signal
  const { status, body } = await call<{ spawned: number; code: string }>('forkbomb', { pause, max: limit * 4 });
  t.equal(status, 200, 'the bomb itself answers');
  t.equal(body.code, 'EAGAIN', `fork failed with EAGAIN after ${body.spawned} processes`);
  t.ok(body.spawned < limit, `fewer than the pids limit (${limit}) were made`);
  await othersStillServed(t);
  const cleanup = await call<{ after: number }>('forkbomb', { cleanup: true });
  t.same(cleanup, { status: 200, body: { after: 7 } }, 'once its processes are gone, the same sandbox can start a process again');
});

t.test("busy loops on every core are held to the function's CPU ceiling; the platform keeps serving", async (t) => {
  // 128 MiB is far below a core's 1,769 MiB: the ceiling is the floor (SKIFF_CPU_FLOOR_MILLICORES).
  const floor = platform.config.worker.cpuFloorCores;
  await deploy(
    'spinner',
    `const { Worker } = require('worker_threads');
const spin = 'const end = Date.now() + ' + 1500 + '; while (Date.now() < end);';
exports.handler = async () => {
  const cpu0 = process.cpuUsage();
  const t0 = Date.now();
  const threads = [0, 1, 2].map(() => new Worker(spin, { eval: true }));
  eval(spin);
  await Promise.all(threads.map((w) => new Promise((resolve) => w.on('exit', resolve))));
  const cpu = process.cpuUsage(cpu0);
  return { cpuMs: (cpu.user + cpu.system) / 1000, wallMs: Date.now() - t0 };
};`,
    { memoryMb: 128, timeoutMs: 20_000 },
  );
  const { status, body } = await call<{ cpuMs: number; wallMs: number }>('spinner');
  t.equal(status, 200);
  const cores = body.cpuMs / body.wallMs;
  t.ok(cores <= floor + 0.25, `four threads spinning used ${cores.toFixed(2)} cores over ${body.wallMs} ms (ceiling ${floor})`);
  // The ceiling in the cgroups: the function's own once its handler is loaded, a whole core for a
  // sandbox still booting or waiting in the pool.
  const quotaUs = async (id: string): Promise<number> => {
    const parent = `skiff/${platform.config.worker.id}/${id}`;
    return cgroupVersion() === 1
      ? Number(await readFile(`/sys/fs/cgroup/cpu/${parent}/cpu.cfs_quota_us`, 'utf8'))
      : Number((await readFile(`/sys/fs/cgroup/${parent}/cpu.max`, 'utf8')).split(' ')[0]);
  };
  const spinner = platform.worker.instances.list().find((i) => i.fn.name === 'spinner');
  t.ok(spinner, 'the spinner is warm');
  if (spinner) t.equal(await quotaUs(spinner.sandbox.id), floor * 100_000, "the spinner's cgroup has the function's ceiling");
  for (let i = 0; i < 200 && !(platform.worker.pool.sizes().nodejs20 ?? 0); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  const pooled = platform.worker.pool.take('nodejs20');
  t.ok(pooled, 'a pooled sandbox');
  if (pooled) {
    t.equal(await quotaUs(pooled.id), 100_000, 'a pooled sandbox has a whole core');
    await pooled.destroy('test');
  }
  await othersStillServed(t);
});

t.test('filling /tmp stops at its size; the platform keeps serving', async (t) => {
  const sizeMb = platform.config.worker.tmpSizeMb;
  await deploy(
    'filler',
    `${ATTEMPT}
exports.handler = async (event) => {
  const chunk = Buffer.alloc(1 << 20, 1);
  const fd = fs.openSync('/tmp/fill', 'w');
  let written = 0, code = 'none';
  try {
    while (written < event.maxBytes) written += fs.writeSync(fd, chunk);
  } catch (e) { code = e.code; }
  fs.closeSync(fd);
  fs.unlinkSync('/tmp/fill');
  return { written, code };
};`,
    { memoryMb: sizeMb + 192, timeoutMs: 20_000 },
  );
  const { status, body } = await call<{ written: number; code: string }>('filler', { maxBytes: sizeMb * 4 * 1024 * 1024 });
  t.equal(status, 200);
  t.equal(body.code, 'ENOSPC', `writing stopped with ENOSPC after ${(body.written / 1048576).toFixed(1)} MiB`);
  t.ok(body.written <= sizeMb * 1024 * 1024, `no more than /tmp's ${sizeMb} MiB`);
  await othersStillServed(t);
});
