/**
 * Network egress for functions deployed with `"network": "egress"`: the container gets a veth
 * into a bridge of this worker, an address and a default route from the CNI plugins (bridge +
 * host-local, the ones containerd and Podman use), and NAT out. It can never reach this host
 * (INPUT from the bridge is dropped), private address ranges (where Redis, PostgreSQL, the
 * registry and other hosts live), nor other containers (each bridge port is isolated).
 *
 * Every other container keeps an empty network namespace (loopback only).
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
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
}

export class EgressNetwork {
  readonly bridge: string;
  readonly subnet: string;
  private ready: Promise<void> | undefined;

  constructor(private readonly o: EgressNetworkOptions) {
    // One bridge and one /24 per worker, derived from its id, so workers on a host do not meet.
    const hash = createHash('sha256').update(o.workerId).digest();
    this.bridge = `sk${hash.toString('hex').slice(0, 8)}`;
    this.subnet = `10.213.${(hash[0] ?? 0) % 250}.0/24`;
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
    for (const rule of this.rules()) await this.iptables(['-D', ...rule]).catch(() => undefined);
    await this.exec('ip', ['link', 'del', this.bridge]).catch(() => undefined);
  }

  private async setUp(): Promise<void> {
    await mkdir(this.o.dataDir, { recursive: true });
    await this.exec('sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
    // Inserted in reverse so they end up in this order at the top of their chains.
    for (const rule of [...this.rules()].reverse()) {
      const exists = await this.iptables(['-C', ...rule]).then(() => true, () => false);
      if (!exists) await this.iptables(['-I', ...rule]);
    }
    this.o.log.info({ bridge: this.bridge, subnet: this.subnet }, 'egress network ready');
  }

  private rules(): string[][] {
    const tag = ['-m', 'comment', '--comment', `skiff ${this.bridge}`];
    return [
      ['INPUT', '-i', this.bridge, ...tag, '-j', 'DROP'],
      ...BLOCKED.map((dst) => ['FORWARD', '-i', this.bridge, '-d', dst, ...tag, '-j', 'DROP']),
    ];
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

  private async iptables(args: string[]): Promise<void> {
    await this.exec('iptables', ['-w', ...args]);
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
