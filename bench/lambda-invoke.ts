/**
 * What the Lambda Invoke API costs a call beside Skiff's own invoke route: sequential warm calls
 * of one no-op function through POST /2015-03-31/functions/{name}/invocations, signed with SigV4
 * (the AWS SDK's signer; the signature checked by the gateway against the key's sealed secret),
 * interleaved call by call with calls through POST /v1/functions/{name}/invoke, so the machine's
 * noise falls on both alike. Each request is signed before its timer starts: the figure is the
 * server's cost (verification, the Lambda route), not the client's signing.
 */
import { SignatureV4 } from '@smithy/signature-v4';
import { Hash } from '@smithy/hash-node';
import { deploy, invoke, noop, post } from './http.js';
import type { Platform } from './harness.js';
import { percentiles, type Percentiles } from './stats.js';

export interface LambdaInvokeCost {
  nativeMs: Percentiles;
  sigv4Ms: Percentiles;
  /** sigv4 p50 − native p50, in ms. */
  p50CostMs: number;
}

export async function lambdaInvokeCost(platform: Platform, count: number, warmup = 200): Promise<LambdaInvokeCost> {
  const name = 'lambda-noop';
  await deploy(platform, { name, source: noop(name) });
  const url = new URL(`/2015-03-31/functions/${name}/invocations`, platform.url);
  const signer = new SignatureV4({
    credentials: { accessKeyId: platform.keyId, secretAccessKey: platform.key },
    region: 'us-east-1',
    service: 'lambda',
    sha256: Hash.bind(null, 'sha256'),
  });
  const body = '{}';
  const native: number[] = [];
  const signed: number[] = [];
  for (let i = 0; i < warmup + count; i++) {
    const a = await invoke(platform.url, name);
    const request = await signer.sign({
      method: 'POST',
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path: url.pathname,
      headers: { host: url.host, 'content-type': 'application/json' },
      body,
    });
    const b = await post(url.href, {}, request.headers as Record<string, string>);
    if (a.status !== 200 || b.status !== 200) throw new Error(`calls answered ${a.status} and ${b.status}: ${a.body} ${b.body}`);
    if (i >= warmup) {
      native.push(a.ms);
      signed.push(b.ms);
    }
  }
  const nativeMs = percentiles(native);
  const sigv4Ms = percentiles(signed);
  return { nativeMs, sigv4Ms, p50CostMs: Math.round((sigv4Ms.p50 - nativeMs.p50) * 1000) / 1000 };
}
