/**
 * Egress clean-up without root: the commands EgressNetwork runs go to a fake host that keeps a nat
 * table the way `iptables -S` prints it. The masquerade rules the CNI bridge plugin skips on a DEL
 * are found by their tag and removed, and only those of the container (or network) meant.
 */
import t, { type Test } from 'tap';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../infra/log.js';
import type { CommandOptions, CommandResult, CommandRunner } from '../../worker/process/command-runner.js';
import { EgressNetwork, masqueradeChain, splitRule } from '../../worker/sandbox/egress-network.js';

const log = createLogger('test', 'silent');

/** How iptables-save quotes a word. */
function quote(word: string): string {
  return /[\s"\\]/.test(word) ? `"${word.replace(/[\\"]/g, (c) => `\\${c}`)}"` : word;
}

/** A host: its nat table (chains, rules as words), and every command run, in order. */
class FakeHost implements CommandRunner {
  readonly chains = new Set(['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING']);
  rules: string[][] = [];
  readonly commands: Array<{ command: string; args: string[]; env?: Record<string, string> }> = [];
  /** When set, a `mount` calls `reached` and waits for `release`. */
  mountGate: { reached: () => void; release: Promise<void> } | undefined;

  /** What the bridge plugin's ADD with ipMasq makes for a container (a DEL without netns keeps it). */
  masquerade(network: string, id: string, address: string): string {
    const chain = masqueradeChain(network, id);
    const tag = ['-m', 'comment', '--comment', `name: "${network}" id: "${id}"`];
    this.chains.add(chain);
    this.rules.push([chain, '-d', '10.213.9.0/24', ...tag, '-j', 'ACCEPT'], [chain, '!', '-d', '224.0.0.0/4', ...tag, '-j', 'MASQUERADE']);
    this.rules.push(['POSTROUTING', '-s', `${address}/32`, ...tag, '-j', chain]);
    return chain;
  }

  save(): string {
    const custom = [...this.chains].filter((c) => c.startsWith('CNI-'));
    return [...custom.map((c) => `-N ${c}`), ...this.rules.map((r) => `-A ${r.map(quote).join(' ')}`)].join('\n') + '\n';
  }

  async run(command: string, args: string[], options: CommandOptions = {}): Promise<CommandResult> {
    this.commands.push({ command, args, env: options.env });
    const ok = (stdout = ''): CommandResult => ({ code: 0, signal: null, stdout, stderr: '', truncated: false });
    const fail = (stderr: string): CommandResult => ({ code: 1, signal: null, stdout: '', stderr, truncated: false });
    if (command === 'mount' && this.mountGate) {
      this.mountGate.reached();
      await this.mountGate.release;
    }
    if (command.endsWith('/bridge')) {
      if (options.env?.CNI_COMMAND !== 'ADD') return ok();
      return ok(
        JSON.stringify({
          interfaces: [{ name: 'skbr' }, { name: 'veth1' }, { name: 'eth0', sandbox: options.env.CNI_NETNS }],
          ips: [{ address: '10.213.9.2/24' }],
        }),
      );
    }
    if (command !== 'iptables' || args[1] !== '-t' || args[2] !== 'nat') return ok();
    const [op, chain, ...spec] = args.slice(3);
    const same = (rule: string[]): boolean => rule.join('\0') === [chain, ...spec].join('\0');
    if (op === '-S')
      return chain === undefined ? ok(this.save()) : this.chains.has(chain) ? ok(`-N ${chain}\n`) : fail('iptables: No chain/target/match by that name.');
    if (op === '-D') {
      const at = this.rules.findIndex(same);
      if (at < 0) return fail('iptables: Bad rule (does a matching rule exist in that chain?).');
      this.rules.splice(at, 1);
      return ok();
    }
    if (op === '-F') this.rules = this.rules.filter((r) => r[0] !== chain);
    if (op === '-X') {
      if (this.rules.some((r) => r.at(-1) === chain)) return fail('iptables: Too many links.');
      this.chains.delete(chain ?? '');
    }
    return ok();
  }

  runKeepingPipes(): never {
    throw new Error('not used');
  }
}

async function network(t: Test, workerId = 'w-unit'): Promise<{ host: FakeHost; net: EgressNetwork; dataDir: string; name: string }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'egress-unit-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const host = new FakeHost();
  const net = new EgressNetwork({ workerId, cniPath: '/cni', dataDir, log, launcher: host });
  return { host, net, dataDir, name: `skiff-${net.bridge}` };
}

t.test('the chain is named as the bridge plugin names it', async (t) => {
  // Made by /usr/lib/cni/bridge (containernetworking-plugins 1.1.1) for this network and id.
  t.equal(masqueradeChain('skiff-skexp0001', 'expid1'), 'CNI-ccedcb297bdfcc33329b1a0e');
  t.same(splitRule('-A POSTROUTING -s 10.213.1.2/32 -m comment --comment "name: \\"skiff-sk1\\" id: \\"s1\\"" -j CNI-abc'), [
    '-A',
    'POSTROUTING',
    '-s',
    '10.213.1.2/32',
    '-m',
    'comment',
    '--comment',
    'name: "skiff-sk1" id: "s1"',
    '-j',
    'CNI-abc',
  ]);
});

t.test("detach removes the masquerade rules the plugin left, and no other container's", async (t) => {
  const { host, net, name } = await network(t);
  const gone = host.masquerade(name, 'sdead1', '10.213.9.2');
  const kept = host.masquerade(name, 'salive2', '10.213.9.3');
  const other = host.masquerade('skiff-skother', 'sdead1', '10.213.8.2');
  await net.detach('sdead1');
  const del = host.commands.find((c) => c.env?.CNI_COMMAND === 'DEL');
  t.equal(del?.env?.CNI_NETNS, '', 'no namespace was held: the plugin is asked to release the lease only');
  t.notOk(host.chains.has(gone), 'its chain is gone');
  t.notOk(host.save().includes('sdead1" id') || host.rules.some((r) => r.includes(gone)), 'and every rule naming it');
  t.ok(host.chains.has(kept) && host.rules.filter((r) => r.includes(kept)).length === 3, "another container's rules stay");
  t.ok(host.chains.has(other) && host.rules.filter((r) => r.includes(other)).length === 3, "another network's rules for the same id stay");
});

t.test('detach after a clean DEL costs one look at the chain', async (t) => {
  const { host, net } = await network(t);
  await net.detach('sclean');
  const iptables = host.commands.filter((c) => c.command === 'iptables');
  t.equal(iptables.length, 1);
  t.same(iptables[0]?.args.slice(3), ['-S', masqueradeChain(`skiff-${net.bridge}`, 'sclean')]);
});

t.test('leftovers of a previous run: its held namespaces, rules and leases go, other networks stay', async (t) => {
  const { host, net, dataDir, name } = await network(t);
  host.masquerade(name, 'sold1', '10.213.9.2');
  host.masquerade(name, 'sold2', '10.213.9.3');
  const other = host.masquerade('skiff-skother', 'sx', '10.213.8.2');
  await mkdir(join(dataDir, 'netns'));
  await writeFile(join(dataDir, 'netns', 'sold1'), '');
  await mkdir(join(dataDir, name));
  await writeFile(join(dataDir, name, '10.213.9.2'), 'sold1\r\neth0');
  await net.removeLeftovers();
  t.ok(
    host.rules.every((r) => r.includes(other)),
    'only the other network has rules left',
  );
  t.equal(host.rules.length, 3);
  t.same(
    [...host.chains].filter((c) => c.startsWith('CNI-')),
    [other],
  );
  t.same(await readdir(dataDir).then((d) => d.sort()), ['netns'], 'the lease directory is gone');
  t.same(await readdir(join(dataDir, 'netns')), [], 'so is the handle');
  t.ok(
    host.commands.some((c) => c.env?.CNI_COMMAND === 'DEL' && c.env.CNI_CONTAINERID === 'sold1'),
    'the plugin was asked to release it',
  );
});

t.test('a detach during an attach runs after it, so nothing is added once it is done', async (t) => {
  const { host, net, dataDir } = await network(t);
  let reached!: () => void;
  let release!: () => void;
  const mounting = new Promise<void>((resolve) => (reached = resolve));
  host.mountGate = { reached, release: new Promise((resolve) => (release = resolve)) };
  const attached = net.attach('sboth', 4242);
  await mounting; // the attach is under way
  const detached = net.detach('sboth');
  release();
  await attached;
  await detached;
  const cni = host.commands.filter((c) => c.env?.CNI_COMMAND).map((c) => c.env?.CNI_COMMAND);
  t.same(cni, ['ADD', 'DEL']);
  const handle = join(dataDir, 'netns', 'sboth');
  t.same(host.commands.find((c) => c.command === 'mount')?.args, ['--bind', '/proc/4242/ns/net', handle], "the container's namespace is held");
  t.equal(host.commands.find((c) => c.env?.CNI_COMMAND === 'ADD')?.env?.CNI_NETNS, handle, 'and named to the plugin');
});
