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
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import type { Logger } from '../../infra/log.js';
import { exitText, type CommandOptions, type CommandRunner } from '../process/command-runner.js';
import { processLauncher } from '../process/launcher.js';

export class NetworkError extends Error {
  readonly code = 'NetworkFailed';
}

/** Destinations an egress container may not reach (RFC 1918, link-local, CGNAT, loopback-ish). */
const BLOCKED = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16', '100.64.0.0/10', '127.0.0.0/8'];

export interface EgressNetworkOptions {
  workerId: string;
  cniPath: string;
  /** host-local IPAM state. */
  dataDir: string;
  log: Logger;
  /** Runs the CNI plugin, ip, bridge, sysctl and iptables; by default the process's launcher. */
  launcher?: CommandRunner;
  /**
   * The gateway's functions listener on this host, the one host port containers may reach. The
   * port is asked for when the network is first set up (a test platform binds port 0 after the
   * worker started); undefined or 0: none.
   */
  functions?: { host: string; port: () => number | undefined };
}

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

  constructor(private readonly o: EgressNetworkOptions) {
    // One bridge and one /24 per worker, derived from its id, so workers on a host do not meet.
    const hash = createHash('sha256').update(o.workerId).digest();
    this.bridge = `sk${hash.toString('hex').slice(0, 8)}`;
    this.subnet = `10.213.${(hash[0] ?? 0) % 250}.0/24`;
    this.gateway = `10.213.${(hash[0] ?? 0) % 250}.1`;
  }

  /** Gives the running container with host pid `pid` an interface, an address and a route out. */
  async attach(sandboxId: string, pid: number): Promise<{ address: string }> {
    this.ready ??= this.setUp();
    await this.ready;
    const result = JSON.parse(await this.cni('ADD', sandboxId, `/proc/${pid}/ns/net`)) as {
      interfaces?: Array<{ name: string; sandbox?: string }>;
      ips?: Array<{ address: string }>;
    };
    const hostVeth = result.interfaces?.find((i) => !i.sandbox && i.name !== this.bridge)?.name;
    if (!hostVeth) throw new NetworkError(`CNI gave sandbox ${sandboxId} no host-side interface`);
    // Isolated bridge ports cannot talk to each other, only to the bridge (the way out).
    await this.exec('bridge', ['link', 'set', 'dev', hostVeth, 'isolated', 'on']);
    return { address: result.ips?.[0]?.address ?? '' };
  }

  /** Removes the container's interface, address and NAT rule; safe when it is already gone. */
  async detach(sandboxId: string): Promise<void> {
    await this.cni('DEL', sandboxId, '');
  }

  /** Removes the firewall rules and the bridge (worker stopping). */
  async tearDown(): Promise<void> {
    if (!this.ready) return;
    await this.ready.catch(() => undefined); // a failed set-up still leaves rules to remove
    for (const rule of this.rules()) await this.iptables(rule, '-D').catch(() => undefined);
    await this.exec('ip', ['link', 'del', this.bridge]).catch(() => undefined);
  }

  private async setUp(): Promise<void> {
    await mkdir(this.o.dataDir, { recursive: true });
    await this.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
    const port = this.o.functions?.port();
    this.functionsPort = port !== undefined && port > 0 ? port : undefined;
    if (this.functionsPort !== undefined && isLoopback(this.functionsTarget())) {
      // The CNI plugin adopts an existing bridge; made here first so that only this bridge
      // accepts packets forwarded to loopback (the rules below let through one port alone).
      const exists = await this.exec('ip', ['link', 'show', 'dev', this.bridge]).then(() => true, () => false);
      if (!exists) await this.exec('ip', ['link', 'add', 'name', this.bridge, 'type', 'bridge']);
      await this.exec('sysctl', ['-q', '-w', `net.ipv4.conf.${this.bridge}.route_localnet=1`]);
    }
    // Inserted in reverse so they end up in this order at the top of their chains.
    for (const rule of [...this.rules()].reverse()) {
      const exists = await this.iptables(rule, '-C').then(() => true, () => false);
      if (!exists) await this.iptables(rule, '-I');
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
            { table: 'nat', spec: ['PREROUTING', '-i', this.bridge, '-d', this.gateway, '-p', 'tcp', '--dport', String(port), ...tag, '-j', 'DNAT', '--to-destination', `${this.functionsTarget()}:${port}`] },
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

  private config(): string {
    return JSON.stringify({
      cniVersion: '1.0.0',
      name: `skiff-${this.bridge}`,
      type: 'bridge',
      bridge: this.bridge,
      isGateway: true,
      ipMasq: true,
      ipam: { type: 'host-local', ranges: [[{ subnet: this.subnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: this.o.dataDir },
    });
  }

  private cni(command: 'ADD' | 'DEL', containerId: string, netns: string): Promise<string> {
    const env = { CNI_COMMAND: command, CNI_CONTAINERID: containerId, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: this.o.cniPath, PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
    return this.exec(`${this.o.cniPath}/bridge`, [], { env, stdin: this.config() }, `CNI ${command} for ${containerId}`);
  }

  private async iptables(rule: Rule, op: '-C' | '-I' | '-D'): Promise<void> {
    await this.exec('iptables', ['-w', '-t', rule.table, op, ...rule.spec]);
  }

  /** Runs a command in the launcher: its stdout, or a NetworkError with what it printed. */
  private async exec(command: string, args: string[], options: CommandOptions = {}, what = [command, ...args].join(' ')): Promise<string> {
    const result = await (this.o.launcher ?? processLauncher()).run(command, args, options).catch((error: unknown) => {
      throw new NetworkError(`${what}: ${command} could not run (${(error as Error).message})`, { cause: error });
    });
    if (result.code === 0) return result.stdout;
    const printed = `${result.stdout.trim()} ${result.stderr.trim()}`.trim();
    throw new NetworkError(`${what} failed: ${printed || exitText(result)}`);
  }
}

function isLoopback(address: string): boolean {
  return address.startsWith('127.');
}
