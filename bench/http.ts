/**
 * The bench's HTTP client: node:http over one keep-alive agent (no fetch/undici overhead in the
 * figures), timing each call on the client side, from the request to the end of the response.
 */
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { zipFiles } from '../test/support/zip.js';

const agent = new Agent({ keepAlive: true, maxSockets: 512 });

export interface Reply {
  status: number;
  /** The x-skiff-cold-start header: true, false, or undefined when absent. */
  cold: boolean | undefined;
  body: string;
  ms: number;
}

/** A keep-alive agent of its own, for a run that needs more sockets than the shared one's 512. */
export function newAgent(maxSockets: number): Agent {
  return new Agent({ keepAlive: true, maxSockets });
}

export function post(url: string, body: unknown, headers: Record<string, string> = {}, via: Agent = agent): Promise<Reply> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request(
      url,
      { method: 'POST', agent: via, headers: { 'content-type': 'application/json', 'content-length': payload.length, ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const header = res.headers['x-skiff-cold-start'];
          resolve({
            status: res.statusCode ?? 0,
            cold: header === undefined ? undefined : header === 'true',
            body: Buffer.concat(chunks).toString(),
            ms: performance.now() - started,
          });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

export function invoke(baseUrl: string, name: string, event: unknown = {}, via: Agent = agent): Promise<Reply> {
  return post(`${baseUrl}/v1/functions/${name}/invoke`, event, {}, via);
}

/** An asynchronous call (X-Skiff-Invocation-Type: async): answered 202 with an id to poll. */
export function invokeAsync(baseUrl: string, name: string, event: unknown = {}): Promise<Reply> {
  return post(`${baseUrl}/v1/functions/${name}/invoke`, event, { 'x-skiff-invocation-type': 'async' });
}

/** GET on the shared agent, for polling (GET /v1/invocations/:id). */
export function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

export interface FunctionToDeploy {
  name: string;
  /** Source of index.js; the handler is `index.handler`. */
  source: string;
  memoryMb?: number;
  concurrency?: number;
  timeoutMs?: number;
  /** Keep-alive of the function's idle instances (the platform's default when absent). */
  idleTimeoutMs?: number;
  /** Most instances of the function at once (the platform's default when absent). */
  maxInstances?: number;
  /** 'key': calls need an API key (the platform's tenant and role check runs on each). */
  auth?: 'none' | 'key';
}

/** Deploys over HTTP exactly as a user would: POST /v1/functions with a base64 zip and an API key. */
export async function deploy(platform: { url: string; auth: { authorization: string } }, fn: FunctionToDeploy): Promise<void> {
  const zip = (await zipFiles({ 'index.js': fn.source })).toString('base64');
  const reply = await post(
    `${platform.url}/v1/functions`,
    {
      name: fn.name,
      runtime: 'nodejs20',
      handler: 'index.handler',
      code: { zip },
      memoryMb: fn.memoryMb ?? 128,
      concurrency: fn.concurrency ?? 1,
      timeoutMs: fn.timeoutMs ?? 30_000,
      ...(fn.maxInstances === undefined ? {} : { maxInstances: fn.maxInstances }),
      ...(fn.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: fn.idleTimeoutMs }),
      ...(fn.auth === undefined ? {} : { auth: fn.auth }),
    },
    platform.auth,
  );
  if (reply.status !== 201) throw new Error(`deploying ${fn.name} answered ${reply.status}: ${reply.body}`);
}

/** A no-op handler; `tag` makes the code (and so its digest and unpacked copy) distinct. */
export function noop(tag: string): string {
  return `// ${tag}\nexports.handler = async () => ({});\n`;
}

export function closeClient(): void {
  agent.destroy();
}
