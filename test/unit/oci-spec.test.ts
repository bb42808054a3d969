import t from 'tap';
import { buildSandboxSpec, CONTAINER_ID_RANGE } from '../../worker/sandbox/oci-spec.js';
import type { SandboxSpecOptions } from '../../worker/sandbox/oci-spec.js';

const OPTIONS: SandboxSpecOptions = {
  hostname: 'sbx-1',
  args: ['/usr/local/bin/node', '/opt/skiff/bootstrap.js'],
  env: ['PATH=/usr/bin:/bin', 'HOME=/tmp'],
  hostIdBase: 1_131_072,
  uid: 1000,
  memoryBytes: 256 * 1024 * 1024,
  cpuShares: 512,
  pidsLimit: 64,
  tmpSizeMb: 32,
  noFileLimit: 4096,
  cgroupsPath: '/skiff/worker-1/sbx-1',
  socketDir: '/run/skiff/worker-1/sbx-1',
  taskDir: '/var/lib/skiff/sandboxes/sbx-1/task',
};

const spec = buildSandboxSpec(OPTIONS);
// Through JSON, as runc reads it: what is checked is what runc gets.
const json = JSON.parse(JSON.stringify(spec)) as {
  process: {
    user: { uid: number; gid: number };
    args: string[];
    env: string[];
    capabilities: Record<string, unknown>;
    rlimits: Array<{ type: string; hard: number; soft: number }>;
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: Array<{ destination: string; type: string; source: string; options?: string[] }>;
  linux: {
    uidMappings: Array<{ containerID: number; hostID: number; size: number }>;
    gidMappings: Array<{ containerID: number; hostID: number; size: number }>;
    namespaces: Array<{ type: string; path?: string }>;
    cgroupsPath: string;
    resources: {
      memory: { limit: number; swap: number };
      cpu: { shares: number };
      pids: { limit: number };
      devices: Array<{ allow: boolean; access: string }>;
    };
    maskedPaths: string[];
    readonlyPaths: string[];
  };
};

function mount(destination: string): { destination: string; type: string; source: string; options?: string[] } | undefined {
  return json.mounts.find((m) => m.destination === destination);
}

t.test('a new namespace of every kind, user included, none joined', async (t) => {
  const types = json.linux.namespaces.map((n) => n.type).sort();
  t.same(types, ['ipc', 'mount', 'network', 'pid', 'user', 'uts']);
  t.ok(
    json.linux.namespaces.every((n) => n.path === undefined),
    'no namespace is joined by path',
  );
});

t.test('container ids 0..65535 map to the sandbox range', async (t) => {
  t.equal(CONTAINER_ID_RANGE, 65536);
  const expected = [{ containerID: 0, hostID: 1_131_072, size: 65536 }];
  t.same(json.linux.uidMappings, expected);
  t.same(json.linux.gidMappings, expected);
  const other = buildSandboxSpec({ ...OPTIONS, hostIdBase: 2_000_000 });
  t.same((other.linux.uidMappings as Array<{ hostID: number }>)[0]?.hostID, 2_000_000);
});

t.test('no capabilities in any set', async (t) => {
  const sets = ['bounding', 'effective', 'inheritable', 'permitted', 'ambient'];
  t.same(Object.keys(json.process.capabilities).sort(), [...sets].sort(), 'every set is present, so none is left to the default');
  for (const set of sets) t.same(json.process.capabilities[set], [], `${set} is empty`);
});

t.test('no new privileges; the process runs as the given user', async (t) => {
  t.equal(json.process.noNewPrivileges, true);
  t.same(json.process.user, { uid: 1000, gid: 1000 });
  t.same(json.process.args, OPTIONS.args);
  t.same(json.process.env, OPTIONS.env);
  t.equal(json.hostname, 'sbx-1');
});

t.test('a read-only root', async (t) => {
  t.equal(json.root.readonly, true);
});

t.test('/var/task is a read-only rslave bind of the task directory', async (t) => {
  const task = mount('/var/task');
  t.ok(task, '/var/task is mounted');
  t.equal(task?.source, OPTIONS.taskDir);
  t.equal(task?.type, 'bind');
  const options = task?.options ?? [];
  t.ok(options.includes('ro'), 'ro');
  t.notOk(options.includes('rw'), 'not rw');
  t.ok(options.includes('rslave'), 'rslave');
  t.ok(options.includes('bind') || options.includes('rbind'), 'a bind mount');
});

t.test('/run/skiff binds the socket directory', async (t) => {
  const socket = mount('/run/skiff');
  t.equal(socket?.source, OPTIONS.socketDir);
  t.equal(socket?.type, 'bind');
});

t.test('/tmp is a tmpfs with a size, owned by the process user', async (t) => {
  const tmp = mount('/tmp');
  t.equal(tmp?.type, 'tmpfs');
  const options = tmp?.options ?? [];
  t.ok(options.includes('size=32m'), `size=32m in ${options.join(',')}`);
  t.ok(options.includes('uid=1000'), 'uid of the process user');
  t.ok(options.includes('gid=1000'), 'gid of the process user');
  const other = buildSandboxSpec({ ...OPTIONS, uid: 0, tmpSizeMb: 8 }).mounts.find((m) => m.destination === '/tmp');
  t.ok(other?.options?.includes('uid=0') && other.options.includes('gid=0') && other.options.includes('size=8m'), 'follows the options');
});

t.test('each mount destination appears once', async (t) => {
  const destinations = json.mounts.map((m) => m.destination);
  t.equal(new Set(destinations).size, destinations.length, destinations.join(' '));
});

t.test('memory limit with no extra swap, pids limit, cgroups path', async (t) => {
  t.same(json.linux.resources.memory, { limit: 268435456, swap: 268435456 });
  t.equal(json.linux.resources.pids.limit, 64);
  t.equal(json.linux.resources.cpu.shares, 512);
  t.equal(json.linux.cgroupsPath, '/skiff/worker-1/sbx-1');
});

t.test('devices are denied by default', async (t) => {
  t.same(json.linux.resources.devices[0], { allow: false, access: 'rwm' });
});

t.test('RLIMIT_NOFILE equals the option, soft and hard', async (t) => {
  const nofile = json.process.rlimits.filter((r) => r.type === 'RLIMIT_NOFILE');
  t.same(nofile, [{ type: 'RLIMIT_NOFILE', hard: 4096, soft: 4096 }]);
  const other = buildSandboxSpec({ ...OPTIONS, noFileLimit: 20000 }).process.rlimits as Array<{ hard: number; soft: number }>;
  t.equal(other[0]?.hard, 20000);
  t.equal(other[0]?.soft, 20000);
});

t.test('sensitive /proc paths are masked or read-only', async (t) => {
  for (const path of ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/sys/firmware']) {
    t.ok(json.linux.maskedPaths.includes(path), `${path} is masked`);
  }
  for (const path of ['/proc/sys', '/proc/sysrq-trigger']) {
    t.ok(json.linux.readonlyPaths.includes(path), `${path} is read-only`);
  }
});
