/** Small HTTP helpers for end-to-end tests: deploy and invoke through a platform's gateway. */
import { patchName, zipFiles } from './zip.js';

/** Deploys with the platform's admin key; invokes without one unless `headers` carry it. */
export function client(platform: () => { url: string; auth: { authorization: string } }) {
  const baseUrl = (): string => platform().url;
  return {
    async deploy(body: Record<string, unknown>, files?: Record<string, string>, patch?: [string, string]): Promise<Response> {
      let zipped = files ? await zipFiles(files) : undefined;
      if (zipped && patch) zipped = patchName(zipped, ...patch);
      return fetch(`${baseUrl()}/v1/functions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...platform().auth },
        body: JSON.stringify({ runtime: 'nodejs20', handler: 'index.handler', ...(zipped ? { code: { zip: zipped.toString('base64') } } : {}), ...body }),
      });
    },
    async invoke(name: string, event: unknown, headers: Record<string, string> = {}): Promise<Response> {
      return fetch(`${baseUrl()}/v1/functions/${name}/invoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(event),
      });
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns true or `timeoutMs` passes; returns its last answer. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, everyMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(everyMs);
  }
}
