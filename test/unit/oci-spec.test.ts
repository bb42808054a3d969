import t from 'tap';
import { buildSandboxSpec, CONTAINER_ID_RANGE } from '../../worker/sandbox/oci-spec.js';
import type { SandboxSpecOptions } from '../../worker/sandbox/oci-spec.js';
import { CLONE_NAMESPACE_FLAGS, DENIED_SYSCALLS, type SeccompProfile } from '../../worker/sandbox/seccomp.js';

const OPTIONS: SandboxSpecOptions = {
  hostname: 'sbx-1',
  args: ['/usr/local/bin/node', '/opt/skiff/bootstrap.js'],
  env: ['PATH=/usr/bin:/bin', 'HOME=/tmp'],
  hostIdBase: 1_131_072,
  uid: 1000,
  memoryBytes: 256 * 1024 * 1024,
  cpu: { shares: 512, quotaUs: 100_000, periodUs: 100_000 },
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
      cpu: { shares: number; quota: number; period: number };
      pids: { limit: number };
      devices: Array<{ allow: boolean; access: string }>;
    };
    maskedPaths: string[];
    readonlyPaths: string[];
    seccomp: SeccompProfile;
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
  t.equal(json.linux.resources.cpu.quota, 100_000, 'a CPU ceiling');
  t.equal(json.linux.resources.cpu.period, 100_000);
  t.equal(json.linux.cgroupsPath, '/skiff/worker-1/sbx-1');
});

t.test('devices are denied by default', async (t) => {
  t.same(json.linux.resources.devices[0], { allow: false, access: 'rwm' });
});

t.test('no core dumps', async (t) => {
  t.same(
    json.process.rlimits.filter((r) => r.type === 'RLIMIT_CORE'),
    [{ type: 'RLIMIT_CORE', hard: 0, soft: 0 }],
  );
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

// --- seccomp -------------------------------------------------------------------------------------

const seccomp = json.linux.seccomp;
const allowRules = seccomp.syscalls.filter((rule) => rule.action === 'SCMP_ACT_ALLOW');
const rulesFor = (name: string): SeccompProfile['syscalls'] => seccomp.syscalls.filter((rule) => rule.names.includes(name));
/** Allowed whatever the arguments: an allow rule without conditions. */
const allowedAlways = (name: string): boolean => allowRules.some((rule) => rule.names.includes(name) && (rule.args ?? []).length === 0);

t.test('a seccomp filter is always on, and denies what it does not name with EPERM', async (t) => {
  t.ok(seccomp, 'linux.seccomp is present');
  t.equal(seccomp.defaultAction, 'SCMP_ACT_ERRNO');
  t.equal(seccomp.defaultErrnoRet, 1, 'EPERM');
  const other = buildSandboxSpec({ ...OPTIONS, uid: 0, pidsLimit: 8 });
  t.ok(other.linux.seccomp, 'whatever the options');
});

t.test('the filter covers x86-64 (with x86 and x32) and arm64', async (t) => {
  for (const arch of ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32', 'SCMP_ARCH_AARCH64']) t.ok(seccomp.architectures.includes(arch), arch);
});

t.test('escape and kernel-attack syscalls are in no allow rule, under any argument', async (t) => {
  for (const name of [
    'mount',
    'umount2',
    'pivot_root',
    'ptrace',
    'keyctl',
    'add_key',
    'request_key',
    'bpf',
    'unshare',
    'setns',
    'init_module',
    'finit_module',
    'delete_module',
    'kexec_load',
    'perf_event_open',
    'userfaultfd',
    'open_by_handle_at',
    'acct',
    'swapon',
    'swapoff',
    'reboot',
    'syslog',
    'io_uring_setup',
  ]) {
    t.notOk(
      allowRules.some((rule) => rule.names.includes(name)),
      `${name} is not allowed`,
    );
  }
  for (const name of DENIED_SYSCALLS)
    t.notOk(
      allowRules.some((rule) => rule.names.includes(name)),
      `${name} (DENIED_SYSCALLS) is not allowed`,
    );
});

t.test('clone is allowed only without namespace flags; clone3 answers ENOSYS', async (t) => {
  t.equal(CLONE_NAMESPACE_FLAGS, 2114060288, "Docker's mask: CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET");
  const clone = rulesFor('clone');
  t.ok(clone.length > 0, 'clone has a rule');
  t.notOk(allowedAlways('clone'), 'clone is never allowed unconditionally');
  for (const rule of clone) {
    t.equal(rule.action, 'SCMP_ACT_ALLOW');
    t.same(rule.args, [{ index: 0, value: 2114060288, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }], '(flags & CLONE_NEW*) == 0');
  }
  t.same(rulesFor('clone3'), [{ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 }]);
});

t.test('personality only with safe values; socket only for allowed families', async (t) => {
  t.notOk(allowedAlways('personality'));
  const personas = rulesFor('personality').map((rule) => rule.args?.[0]);
  t.same(
    personas.map((a) => a?.op),
    personas.map(() => 'SCMP_CMP_EQ'),
  );
  t.same(
    personas.map((a) => a?.value).sort((a, b) => (a ?? 0) - (b ?? 0)),
    [0, 8, 0x20000, 0x20008, 0xffffffff],
  );
  t.notOk(allowedAlways('socket'));
  const families = rulesFor('socket').map((rule) => rule.args?.[0]);
  t.ok(
    families.every((a) => a?.index === 0),
    'socket rules test the address family',
  );
  t.notOk(
    families.some((a) => a?.op === 'SCMP_CMP_EQ' && a.value === 40),
    'AF_VSOCK is not allowed',
  );
  t.ok(
    families.some((a) => a?.op === 'SCMP_CMP_LT' && a.value === 12),
    'AF_UNIX, AF_INET, AF_INET6 are allowed',
  );
});

t.test('what Node.js needs is allowed', async (t) => {
  for (const name of [
    'read',
    'write',
    'openat',
    'close',
    'mmap',
    'mprotect',
    'futex',
    'epoll_wait',
    'epoll_pwait',
    'eventfd2',
    'execve',
    'wait4',
    'arch_prctl',
    'rt_sigaction',
    'getrandom',
    'statx',
    'clock_gettime',
    'connect',
    'sendto',
    'recvfrom',
    'madvise',
    'prctl',
    'set_robust_list',
    'rseq',
  ]) {
    t.ok(allowedAlways(name), name);
  }
});

t.test('every rule is well formed and each spec gets its own copy of the filter', async (t) => {
  for (const rule of seccomp.syscalls) {
    t.ok(rule.names.length > 0 && rule.names.every((n) => /^[a-z0-9_]+$/.test(n)), `names: ${rule.names.slice(0, 3).join(',')}`);
    if (rule.action === 'SCMP_ACT_ERRNO') t.type(rule.errnoRet, 'number');
  }
  const a = buildSandboxSpec(OPTIONS).linux.seccomp as SeccompProfile;
  a.syscalls.push({ names: ['mount'], action: 'SCMP_ACT_ALLOW' });
  const b = buildSandboxSpec(OPTIONS).linux.seccomp as SeccompProfile;
  t.notOk(
    b.syscalls.some((rule) => rule.action === 'SCMP_ACT_ALLOW' && rule.names.includes('mount')),
    'a change to one spec does not leak into the next',
  );
});
