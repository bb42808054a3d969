/**
 * Tracing overhead: warm throughput with traces exported over OTLP/HTTP (JSON) versus not, each measured
 * in its own child process (bench/tracing-child.ts; OpenTelemetry starts once per process), the
 * same code either way but for the OTEL_* variables. The exporter's endpoint is a sink here that
 * answers 200 to POST /v1/traces and counts the spans it receives (aim: ≤ 5% fewer calls/s, issue 6).
 */
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { round } from './stats.js';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'tracing-child.js');

export interface TracingOverhead {
  withoutPerSec: number;
  withPerSec: number;
  overheadPct: number;
  spansReceived: number;
}

/** Spans in an OTLP/JSON ExportTraceServiceRequest. */
export function countSpans(body: Buffer): number {
  const request = JSON.parse(body.toString('utf8')) as { resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: unknown[] }> }> };
  let spans = 0;
  for (const resource of request.resourceSpans ?? []) for (const scope of resource.scopeSpans ?? []) spans += scope.spans?.length ?? 0;
  return spans;
}

interface Sink {
  url: string;
  spans: () => number;
  close: () => Promise<void>;
}

async function startSink(): Promise<Sink> {
  let spans = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/v1/traces') {
        spans += countSpans(Buffer.concat(chunks));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      } else res.writeHead(404).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the sink has no TCP address');
  return {
    url: `http://127.0.0.1:${address.port}`,
    spans: () => spans,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function child(env: NodeJS.ProcessEnv): Promise<number> {
  const proc = spawn(process.execPath, [CHILD], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    proc.once('error', reject);
    proc.once('exit', resolve);
  });
  const line = out
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{"perSec"'))
    .pop();
  if (code !== 0 || !line) throw new Error(`the tracing child exited with ${code}: ${out.trim().slice(-300)}`);
  const result = JSON.parse(line) as { perSec: number; errors: number };
  if (result.errors > 0) throw new Error(`the tracing child saw ${result.errors} errors`);
  return result.perSec;
}

export async function tracingOverhead(inFlight: number, durationMs: number): Promise<TracingOverhead> {
  const base: NodeJS.ProcessEnv = { ...process.env, BENCH_IN_FLIGHT: String(inFlight), BENCH_DURATION_MS: String(durationMs) };
  for (const name of Object.keys(base)) if (name.startsWith('OTEL_')) delete base[name];
  const withoutPerSec = await child(base);
  const sink = await startSink();
  try {
    const withPerSec = await child({
      ...base,
      OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '200',
    });
    const spansReceived = sink.spans();
    if (spansReceived === 0) throw new Error('the traced child exported no spans');
    return {
      withoutPerSec: round(withoutPerSec, 1),
      withPerSec: round(withPerSec, 1),
      overheadPct: round((1 - withPerSec / withoutPerSec) * 100, 1),
      spansReceived,
    };
  } finally {
    await sink.close();
  }
}
