/**
 * Network egress for functions deployed with `"network": "egress"`: the container gets a veth
 * into a bridge of this worker, an address and a default route from the CNI plugins (bridge +
 * host-local, the ones containerd and Podman use), and NAT out. It can never reach this host
 * (INPUT from the bridge is dropped), private address ranges (where Redis, PostgreSQL, the
 * registry and other hosts live), nor other containers (each bridge port is isolated).
 *
 * One exception, so functions can call functions: the gateway's functions listener on this host
 * (`config.gateway.functions.port`, TCP only; never the API's port, Redis or PostgreSQL). The
 * container reaches it at its bridge's gateway address (`http://<x.y.z.1>:<port>/fn/<name>`),
 * forwarded to the address the listener is bound to (loopback by default, hence `route_localnet`
 * on this bridge alone). Where the gateway runs on another host, its private address stays
 * blocked: functions call function URLs by their public URL, out through NAT like any site.
 *
 * Every other container keeps an empty network namespace (loopback only).
 *
 * Clean-up: from attach to detach the container's network namespace is held by a bind mount
 * (`<dataDir>/netns/<sandbox id>`), so the plugin's DEL always finds the container's interface,
 * even when the container died first, and removes what its ADD made: the veth, the address lease
 * and the masquerade chain. Without the interface the plugin would skip the masquerade rules; so
 * they are also looked up by the tag the plugin gives them and removed. What a previous run of
 * this worker left (it was killed) is removed before this run attaches its first container.
 *
 * Errors: every failure is a HostError of kind `network` (infra/host-error.ts); a failed command
 * carries its command line, exit and output.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import { join } from 'node:path';
import { commandFailed, commandNotRun, HostError, isErrnoError } from '../../infra/host-error.js';
import type { Logger } from '../../infra/log.js';
import type { CommandOptions, CommandResult, CommandRunner } from '../process/command-runner.js';

/** Destinations an egress container may not reach (RFC 1918, link-local, CGNAT, loopback-ish). */
const BLOCKED = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '100.64.0.0/10', '127.0.0.0/8'];

export interface EgressNetworkOptions {
  workerId: string;
  cniPath: string;
  /** host-local IPAM state. */
  dataDir: string;
  log: Logger;
  /** Runs the CNI plugin, ip, bridge, sysctl and iptables: the worker's launcher. */
  launcher: CommandRunner;
  /**
   * The gateway's functions listener on this host, the one host port containers may reach. The
   * port is asked for when the network is first set up (a test platform binds port 0 after the
   * worker started); undefined or 0: none.
   */
  functions?: { host: string; port: () => number | undefined };
}

/** statfs type of a bind-mounted namespace file (nsfs). */
const NSFS_MAGIC = 0x6e736673;

/** One iptables rule: its table, and its chain followed by its match and target. */
interface Rule {
  table: 'filter' | 'nat';
  spec: string[];
}

export class EgressNetwork {
  readonly bridge: string;
  readonly subnet: string;
  /** The bridge's own address, the containers' default gateway (host-local's default: .1). */
  readonly gateway: string;
  private ready: Promise<void> | undefined;
  /** Fixed at set-up, so tear-down removes the very rules that were made. */
  private functionsPort: number | undefined;
  /** Attaches under way, by sandbox id: a detach waits for its attach, so nothing is added after it. */
  private readonly attaching = new Map<string, Promise<unknown>>();

  constructor(private readonly o: EgressNetworkOptions) {
    // One bridge and one /24 per worker, derived from its id, so workers on a host do not meet.
    const hash = createHash('sha256').update(o.workerId).digest();
    this.bridge = `sk${hash.toString('hex').slice(0, 8)}`;
    this.subnet = `10.213.${(hash[0] ?? 0) % 250}.0/24`;
    this.gateway = `10.213.${(hash[0] ?? 0) % 250}.1`;
  }

  /** Gives the running container with host pid `pid` an interface, an address and a route out. */
  attach(sandboxId: string, pid: number): Promise<{ address: string }> {
    const attached = this.connect(sandboxId, pid);
    this.attaching.set(sandboxId, attached);
    return attached.finally(() => this.attaching.delete(sandboxId));
  }

  /**
   * Removes the container's interface, address lease and NAT rules; safe when they are already
   * gone, and when the container died first (its namespace is held until now).
   */
  async detach(sandboxId: string): Promise<void> {
    // Its failure is its caller's to report; here it only has to be over.
    await this.attaching.get(sandboxId)?.catch(() => undefined);
    const handle = this.netnsHandle(sandboxId);
    const held = await holdsNetns(handle);
    const errors: unknown[] = [];
    // With the namespace, the plugin removes the veth, the lease and the masquerade rules; without
    // it (it was never held), only the lease.
    await this.cni('DEL', sandboxId, held ? handle : '').catch(async (error: unknown) => {
      errors.push(error);
      if (held) await this.cni('DEL', sandboxId, '').catch((again: unknown) => errors.push(again)); // the lease, at least
    });
    if (held) await this.exec('umount', [handle]).catch((error: unknown) => errors.push(error));
    await rm(handle, { force: true }).catch((error: unknown) => errors.push(error));
    // Whatever the plugin skipped (it found no interface) is found by its chain and tag.
    const chain = masqueradeChain(this.networkName(), sandboxId);
    const left = await this.probe('iptables', ['-w', '-t', 'nat', '-S', chain]).catch((error: unknown) => (errors.push(error), false));
    if (left) await this.removeMasquerade((id) => id === sandboxId, [chain]).catch((error: unknown) => errors.push(error));
    if (errors.length > 0) {
      const why = errors.map((e) => (e instanceof Error ? e.message : String(e))).join('; ');
      throw new HostError('network', `the network of sandbox ${sandboxId} was not fully removed: ${why}`, {
        cause: errors.length === 1 ? errors[0] : new AggregateError(errors, why),
      });
    }
  }

  /**
   * Removes what containers of this network left behind, from a previous run of this worker (or
   * this one's, when stopping): held namespaces (released through the plugin), masquerade rules
   * and chains, address leases. No container may be attached while it runs: set-up runs it before
   * the first attach.
   */
  async removeLeftovers(): Promise<void> {
    const handles = await readdir(this.netnsDir()).catch(() => []);
    for (const id of handles)
      await this.detach(id).catch((error: unknown) => this.o.log.warn({ err: error, sandbox: id }, 'could not release a network namespace left behind'));
    const rules = await this.removeMasquerade(() => true, []);
    await rm(join(this.o.dataDir, this.networkName()), { recursive: true, force: true });
    if (handles.length + rules > 0)
      this.o.log.warn({ bridge: this.bridge, namespaces: handles.length, rules }, 'removed network state a previous run left behind');
  }

  /** Removes the firewall rules and the bridge (worker stopping); what cannot be removed is logged. */
  async tearDown(): Promise<void> {
    if (!this.ready) return;
    // A failed set-up was reported to the attach that waited for it, and may still have made rules.
    await this.ready.catch(() => undefined);
    const failed = (what: string) => (error: unknown) => this.o.log.error({ err: error, bridge: this.bridge }, `could not remove ${what}`);
    for (const rule of this.rules()) await this.removeRule(rule).catch(failed('a firewall rule of the egress network'));
    // Sandboxes are all destroyed by now: anything of theirs still here, detach failed to remove.
    await this.removeLeftovers().catch(failed('the network state of its containers'));
    await this.removeBridge().catch(failed('the bridge of the egress network'));
  }

  /** Removes `rule` if it is there (a failed set-up may not have made it). */
  private async removeRule(rule: Rule): Promise<void> {
    if (await this.ruleExists(rule)) await this.iptables(rule, '-D');
  }

  private async removeBridge(): Promise<void> {
    if (await this.probe('ip', ['link', 'show', 'dev', this.bridge])) await this.exec('ip', ['link', 'del', this.bridge]);
  }

  private async connect(sandboxId: string, pid: number): Promise<{ address: string }> {
    this.ready ??= this.setUp();
    await this.ready;
    const handle = await this.holdNetns(sandboxId, pid);
    const result = JSON.parse(await this.cni('ADD', sandboxId, handle)) as {
      interfaces?: Array<{ name: string; sandbox?: string }>;
      ips?: Array<{ address: string }>;
    };
    const hostVeth = result.interfaces?.find((i) => !i.sandbox && i.name !== this.bridge)?.name;
    if (!hostVeth) throw new HostError('network', `CNI gave sandbox ${sandboxId} no host-side interface`);
    // Isolated bridge ports cannot talk to each other, only to the bridge (the way out).
    await this.exec('bridge', ['link', 'set', 'dev', hostVeth, 'isolated', 'on']);
    return { address: result.ips?.[0]?.address ?? '' };
  }

  /** Bind-mounts the namespace of `pid` at the sandbox's handle, which keeps it until detach. */
  private async holdNetns(sandboxId: string, pid: number): Promise<string> {
    const handle = this.netnsHandle(sandboxId);
    await mkdir(this.netnsDir(), { recursive: true, mode: 0o700 });
    await writeFile(handle, '', { mode: 0o600 });
    await this.exec('mount', ['--bind', `/proc/${pid}/ns/net`, handle]);
    return handle;
  }

  private netnsDir(): string {
    return join(this.o.dataDir, 'netns');
  }

  private netnsHandle(sandboxId: string): string {
    // The id names a file and is matched in the plugin's rule tags: nothing but a plain name.
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(sandboxId)) throw new HostError('network', `not a sandbox id: ${JSON.stringify(sandboxId)}`);
    return join(this.netnsDir(), sandboxId);
  }

  /**
   * Removes the bridge plugin's masquerade rules of the containers `which` picks (the plugin tags
   * each rule `name: "<network>" id: "<container id>"`), their chains, and `chains`; the number of
   * rules removed.
   */
  private async removeMasquerade(which: (containerId: string) => boolean, chains: string[]): Promise<number> {
    const jumps: string[][] = [];
    const owned = new Set(chains);
    for (const line of (await this.exec('iptables', ['-w', '-t', 'nat', '-S'])).split('\n')) {
      const words = splitRule(line);
      if (words[0] !== '-A' || !words[1]) continue;
      const tag = /^name: "(.*)" id: "(.*)"$/.exec(valueAfter(words, '--comment') ?? '');
      if (!tag || tag[1] !== this.networkName() || !which(tag[2] ?? '')) continue;
      if (words[1] === 'POSTROUTING') {
        jumps.push(words.slice(1));
        const target = valueAfter(words, '-j');
        if (target?.startsWith('CNI-')) owned.add(target);
      } else if (words[1].startsWith('CNI-')) owned.add(words[1]);
    }
    // The jumps first: a chain is deleted only once nothing jumps to it.
    for (const spec of jumps) await this.exec('iptables', ['-w', '-t', 'nat', '-D', ...spec]);
    for (const chain of owned) {
      if (!(await this.probe('iptables', ['-w', '-t', 'nat', '-S', chain]))) continue;
      await this.exec('iptables', ['-w', '-t', 'nat', '-F', chain]);
      await this.exec('iptables', ['-w', '-t', 'nat', '-X', chain]);
    }
    return jumps.length;
  }

  private async setUp(): Promise<void> {
    await mkdir(this.o.dataDir, { recursive: true });
    // Left by a previous run that was killed; not a reason to refuse egress if it cannot be done.
    await this.removeLeftovers().catch((error: unknown) =>
      this.o.log.error({ err: error, bridge: this.bridge }, 'could not remove the network state a previous run left'),
    );
    await this.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
    const port = this.o.functions?.port();
    this.functionsPort = port !== undefined && port > 0 ? port : undefined;
    if (this.functionsPort !== undefined && isLoopback(this.functionsTarget())) {
      // The CNI plugin adopts an existing bridge; made here first so that only this bridge
      // accepts packets forwarded to loopback (the rules below let through one port alone).
      if (!(await this.probe('ip', ['link', 'show', 'dev', this.bridge]))) await this.exec('ip', ['link', 'add', 'name', this.bridge, 'type', 'bridge']);
      await this.exec('sysctl', ['-q', '-w', `net.ipv4.conf.${this.bridge}.route_localnet=1`]);
    }
    // Inserted in reverse so they end up in this order at the top of their chains.
    for (const rule of [...this.rules()].reverse()) {
      if (!(await this.ruleExists(rule))) await this.iptables(rule, '-I');
    }
    this.o.log.info({ bridge: this.bridge, subnet: this.subnet, functionsPort: this.functionsPort }, 'egress network ready');
  }

  private rules(): Rule[] {
    const tag = ['-m', 'comment', '--comment', `skiff ${this.bridge}`];
    const port = this.functionsPort;
    // The functions listener: its port on the bridge's address is forwarded to where it listens.
    const functions: Rule[] =
      port === undefined
        ? []
        : [
            {
              table: 'nat',
              spec: [
                'PREROUTING',
                '-i',
                this.bridge,
                '-d',
                this.gateway,
                '-p',
                'tcp',
                '--dport',
                String(port),
                ...tag,
                '-j',
                'DNAT',
                '--to-destination',
                `${this.functionsTarget()}:${port}`,
              ],
            },
            { table: 'filter', spec: ['INPUT', '-i', this.bridge, '-p', 'tcp', '--dport', String(port), ...tag, '-j', 'ACCEPT'] },
          ];
    return [
      ...functions,
      { table: 'filter', spec: ['INPUT', '-i', this.bridge, ...tag, '-j', 'DROP'] },
      ...BLOCKED.map((dst): Rule => ({ table: 'filter', spec: ['FORWARD', '-i', this.bridge, '-d', dst, ...tag, '-j', 'DROP'] })),
    ];
  }

  /** The IPv4 address the functions listener is bound to; a wildcard or a name: loopback. */
  private functionsTarget(): string {
    const host = this.o.functions?.host ?? '';
    return isIPv4(host) && host !== '0.0.0.0' ? host : '127.0.0.1';
  }

  /** The CNI network's name: the plugin names its chains, rule tags and lease directory after it. */
  private networkName(): string {
    return `skiff-${this.bridge}`;
  }

  private config(): string {
    return JSON.stringify({
      cniVersion: '1.0.0',
      name: this.networkName(),
      type: 'bridge',
      bridge: this.bridge,
      isGateway: true,
      ipMasq: true,
      ipam: { type: 'host-local', ranges: [[{ subnet: this.subnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: this.o.dataDir },
    });
  }

  private cni(command: 'ADD' | 'DEL', containerId: string, netns: string): Promise<string> {
    const env = {
      CNI_COMMAND: command,
      CNI_CONTAINERID: containerId,
      CNI_NETNS: netns,
      CNI_IFNAME: 'eth0',
      CNI_PATH: this.o.cniPath,
      PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
    };
    return this.exec(`${this.o.cniPath}/bridge`, [], { env, stdin: this.config() }, `CNI ${command} for ${containerId}`);
  }

  private async iptables(rule: Rule, op: '-I' | '-D'): Promise<void> {
    await this.exec('iptables', ['-w', '-t', rule.table, op, ...rule.spec]);
  }

  private ruleExists(rule: Rule): Promise<boolean> {
    return this.probe('iptables', ['-w', '-t', rule.table, '-C', ...rule.spec]);
  }

  /** Runs a command in the launcher: its stdout, or a HostError `network` with what it printed. */
  private async exec(command: string, args: string[], options: CommandOptions = {}, what = [command, ...args].join(' ')): Promise<string> {
    const result = await this.run(command, args, options, what);
    if (result.code === 0) return result.stdout;
    throw commandFailed('network', what, result, `${result.stdout.trim()} ${result.stderr.trim()}`.trim());
  }

  /**
   * Asks the host a yes-or-no question by a command's exit: whether a chain or a link exists. A
   * command that could not run is no answer: it rejects.
   */
  private async probe(command: string, args: string[]): Promise<boolean> {
    return (await this.run(command, args)).code === 0;
  }

  private run(command: string, args: string[], options: CommandOptions = {}, what = [command, ...args].join(' ')): Promise<CommandResult> {
    return this.o.launcher.run(command, args, options).catch((error: unknown) => {
      throw commandNotRun('network', what, error);
    });
  }
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.');
}

/** Whether `path` is a bind mount of a namespace (not a plain file, nor missing). */
async function holdsNetns(path: string): Promise<boolean> {
  return statfs(path).then(
    (s) => s.type === NSFS_MAGIC,
    (error: unknown) => {
      if (isErrnoError(error) && error.code === 'ENOENT') return false;
      throw error;
    },
  );
}

/**
 * The chain the CNI bridge plugin (containernetworking/plugins, pkg/utils FormatChainName) makes
 * for a container's masquerade rules: `CNI-` and the first 24 hex digits of sha512(network + id).
 */
export function masqueradeChain(network: string, containerId: string): string {
  return `CNI-${createHash('sha512')
    .update(network + containerId)
    .digest('hex')
    .slice(0, 24)}`;
}

/** The words of one `iptables -S` line; double-quoted words (comments) unquoted and unescaped. */
export function splitRule(line: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < line.length) {
    if (line[i] === ' ') {
      i++;
      continue;
    }
    let word = '';
    if (line[i] === '"') {
      for (i++; i < line.length && line[i] !== '"'; i++) word += line[i] === '\\' && i + 1 < line.length ? line[++i] : line[i];
      i++;
    } else {
      for (; i < line.length && line[i] !== ' '; i++) word += line[i];
    }
    words.push(word);
  }
  return words;
}

function valueAfter(words: string[], flag: string): string | undefined {
  const at = words.indexOf(flag);
  return at >= 0 ? words[at + 1] : undefined;
}
