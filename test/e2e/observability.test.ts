/**
 * Watching the platform from outside: the worker's cold-start histogram and metrics, the gateway's
 * GET /metrics, a real Prometheus server scraping both, and the OTLP export of a cold and a warm
 * call (span tree, attributes, phases) received by a small OTLP/HTTP receiver in this test, with
 * a span made by user code inside the function joining the same trace.
 */
import t from 'tap';
import { freePort } from '../../infra/services/process.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Platform } from '../support/platform.js';
import { client, eventually, sleep } from '../support/api.js';
import { functionDirectory } from '../support/node-package.js';
import { zipDirectory } from '../support/zip.js';

/** One request an OTLP receiver got. */
interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A tiny OTLP/HTTP receiver: accepts POST /v1/traces and keeps every request. */
async function startReceiver(): Promise<{ url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server = createHttpServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      if (request.method !== 'POST' || request.url !== '/v1/traces') {
        response.writeHead(404).end();
        return;
      }
      received.push({ path: request.url, headers: request.headers, body: Buffer.concat(chunks) });
      const json = /json/.test(request.headers['content-type'] ?? '');
      response.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' }).end(json ? '{}' : undefined);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A span as OTLP/JSON carries it (ids in hex, as OpenTelemetry JS writes them). */
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
  attributes?: Array<{ key: string; value: { stringValue?: string; boolValue?: boolean; intValue?: string | number; doubleValue?: number } }>;
}
interface Span extends OtlpSpan {
  service: string;
  attrs: Record<string, string | boolean | number | undefined>;
}

function spansOf(received: Received[]): Span[] {
  const out: Span[] = [];
  for (const request of received) {
    if (!/json/.test(request.headers['content-type'] ?? '')) continue;
    const body = JSON.parse(request.body.toString()) as {
      resourceSpans: Array<{ resource: { attributes: OtlpSpan['attributes'] }; scopeSpans: Array<{ spans: OtlpSpan[] }> }>;
    };
    for (const rs of body.resourceSpans) {
      const service = String(rs.resource.attributes?.find((a) => a.key === 'service.name')?.value.stringValue);
      for (const ss of rs.scopeSpans) {
        for (const span of ss.spans) {
          const attrs: Span['attrs'] = {};
          for (const a of span.attributes ?? []) {
            attrs[a.key] = a.value.stringValue ?? a.value.boolValue ?? (a.value.intValue !== undefined ? Number(a.value.intValue) : a.value.doubleValue);
          }
          out.push({ ...span, service, attrs });
        }
      }
    }
  }
  return out;
}

const nanos = (value: string | number): bigint => BigInt(value);

/** Traces a function makes with the OpenTelemetry API and SDK it ships in its own node_modules. */
const USER_SPANS = `
const api = require('@opentelemetry/api');
const { W3CTraceContextPropagator } = require('@opentelemetry/core');
const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const exporter = new InMemorySpanExporter();
const tracer = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }).getTracer('user-code');
const propagator = new W3CTraceContextPropagator();
exports.handler = async (event, context) => {
  // The platform passes the invocation's trace context in; user spans continue it.
  const parent = propagator.extract(api.ROOT_CONTEXT, { traceparent: context.traceparent }, api.defaultTextMapGetter);
  const span = tracer.startSpan('user.work', { attributes: { 'user.n': event.n } }, parent);
  span.end();
  const spans = exporter.getFinishedSpans().map((s) => ({
    name: s.name, traceId: s.spanContext().traceId, spanId: s.spanContext().spanId,
    parentSpanId: s.parentSpanContext ? s.parentSpanContext.spanId : undefined,
  }));
  exporter.reset();
  return { traceparent: context.traceparent, spans };
};
`;

interface UserResult {
  traceparent: string;
  spans: Array<{ name: string; traceId: string; spanId: string; parentSpanId?: string }>;
}

let platform: Platform;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
let workerMetricsPort: number;
let dir: string;
const { deploy, invoke } = client(() => platform);

t.before(async () => {
  receiver = await startReceiver();
  // Telemetry starts once per process, from the environment: set it before the platform starts.
  // The OpenTelemetry SDK reads OTEL_* from process.env; Skiff's config (export on or off) from
  // the variables the platform is given, so both get them.
  const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_BSP_SCHEDULE_DELAY: '200' };
  Object.assign(process.env, otel);
  workerMetricsPort = await freePort();
  const { startPlatform } = await import('../support/platform.js');
  platform = await startPlatform({ ...otel, SKIFF_WORKER_METRICS_PORT: String(workerMetricsPort) });
  dir = await mkdtemp(join(tmpdir(), 'skiff-otel-fn-'));
});
t.teardown(async () => {
  await platform?.stop();
  await receiver?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The cold and the warm call of `traced`, made by the first test, read by the others. */
const calls: Array<{ traceId: string; invocationId: string; cold: boolean; result: UserResult }> = [];

t.test('a function that makes its own spans: one cold call, one warm call', async (t) => {
  await functionDirectory(dir, { 'index.js': USER_SPANS }, ['@opentelemetry/api', '@opentelemetry/core', '@opentelemetry/sdk-trace-base']);
  // Only what Node.js loads: no source maps, types or ESM builds.
  const zip = await zipDirectory(dir, (path) => !/\.(map|d\.ts)$|\/build\/(esm|esnext)(\/|$)/.test(path));
  const res = await fetch(`${platform.url}/v1/functions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...platform.auth },
    body: JSON.stringify({ name: 'traced', runtime: 'nodejs20', handler: 'index.handler', memoryMb: 256, code: { zip: zip.toString('base64') } }),
  });
  t.equal(res.status, 201, 'deployed with its node_modules');
  for (const n of [1, 2]) {
    const call = await invoke('traced', { n });
    const result = (await call.json()) as UserResult;
    t.equal(call.status, 200, JSON.stringify(result));
    calls.push({
      traceId: call.headers.get('x-skiff-trace-id') ?? '',
      invocationId: call.headers.get('x-skiff-invocation-id') ?? '',
      cold: call.headers.get('x-skiff-cold-start') === 'true',
      result,
    });
  }
  t.same(
    calls.map((c) => c.cold),
    [true, false],
    'cold, then warm',
  );
  t.not(calls[0]?.traceId, calls[1]?.traceId, 'one trace per invocation');
});

async function workerMetricValues(name: string): Promise<Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>> {
  const metric = (await platform.worker.metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  return (metric?.values ?? []) as Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>;
}

t.test('the worker registry has the cold start, phase by phase', async (t) => {
  const cold = await workerMetricValues('skiff_cold_start_seconds');
  const counts = cold.filter((v) => v.metricName === 'skiff_cold_start_seconds_count');
  const phases = new Set(counts.map((v) => v.labels.phase));
  for (const phase of ['code', 'specialize', 'bind', 'init', 'total']) t.ok(phases.has(phase), `phase ${phase} observed`);
  t.ok(phases.has('pool_take') || phases.has('create'), 'the sandbox came from the pool or was created');
  const total = counts.filter((v) => v.labels.phase === 'total').reduce((sum, v) => sum + v.value, 0);
  t.equal(total, 1, 'one cold start (the warm call is not one)');
  t.equal(counts[0]?.labels.worker, platform.config.worker.id, 'labelled with the worker');

  // Two calls at once of a function with concurrency 1: two instances, and the pool holds one.
  t.equal(
    (await deploy({ name: 'twice' }, { 'index.js': 'exports.handler = async () => { await new Promise((r) => setTimeout(r, 200)); return 1; };' })).status,
    201,
  );
  const both = await Promise.all([invoke('twice', {}), invoke('twice', {})]);
  t.same(
    both.map((r) => r.status),
    [200, 200],
  );
  const after = (await workerMetricValues('skiff_cold_start_seconds')).filter((v) => v.metricName === 'skiff_cold_start_seconds_count');
  for (const phase of ['create', 'mount', 'runc', 'bootstrap']) {
    t.ok(
      after.some((v) => v.labels.phase === phase && v.labels.kind === 'created' && v.value >= 1),
      `a created sandbox: phase ${phase}`,
    );
  }
  const created = (await workerMetricValues('skiff_sandboxes_created_total')).reduce((sum, v) => sum + v.value, 0);
  t.ok(created >= 2, `sandboxes made (pool and calls): ${created}`);
  const waits = (await workerMetricValues('skiff_queue_wait_seconds')).find((v) => v.metricName === 'skiff_queue_wait_seconds_count');
  t.equal(waits?.value, 4, 'queue wait of each of the 4 calls');
  const memory = Object.fromEntries((await workerMetricValues('skiff_worker_memory_mb')).map((v) => [v.labels.kind, v.value]));
  t.equal(memory.capacity, platform.config.worker.capacityMb);
  t.ok((memory.used ?? 0) >= 256, 'instances use memory');
  const instances = Object.fromEntries((await workerMetricValues('skiff_instances')).map((v) => [v.labels.state, v.value]));
  t.equal(instances.idle, 3, 'three idle instances');
  t.equal(instances.busy, 0);
});

t.test('the worker serves its metrics at GET /metrics on SKIFF_WORKER_METRICS_PORT', async (t) => {
  t.equal(platform.worker.metrics.server?.url, `http://127.0.0.1:${workerMetricsPort}/metrics`);
  const res = await fetch(`http://127.0.0.1:${workerMetricsPort}/metrics`);
  t.equal(res.status, 200);
  const text = await res.text();
  t.match(text, /# TYPE skiff_cold_start_seconds histogram/);
  // Label order is prom-client's business: look for lines with the labels in any order.
  const line = (metric: string, labels: string[]): boolean =>
    text.split('\n').some((l) => l.startsWith(`${metric}{`) && labels.every((label) => l.includes(label)) && /\} \d/.test(l));
  const worker = `worker="${platform.config.worker.id}"`;
  t.ok(line('skiff_cold_start_seconds_count', [worker, 'phase="total"']), 'the cold-start histogram, labelled with the worker');
  t.ok(line('skiff_pool_ready', [worker, 'runtime="nodejs20"']), 'the pool gauge');
  t.ok(line('skiff_sandboxes_created_total', [worker, 'runtime="nodejs20"']), 'sandboxes created');
});

t.test("the gateway's GET /metrics counts the calls", async (t) => {
  const res = await fetch(`${platform.url}/metrics`, { headers: platform.auth });
  t.equal(res.status, 200);
  const text = await res.text();
  t.match(text, /skiff_invocations_total\{function="traced",outcome="ok",start="cold"\} 1\n/);
  t.match(text, /skiff_invocations_total\{function="traced",outcome="ok",start="warm"\} 1\n/);
  t.match(text, /skiff_invocation_duration_seconds_count\{function="traced",outcome="ok"\} 2\n/);
  t.match(text, /skiff_queue_depth\{queue="invocations",state="waiting"\} 0\n/, 'queue depth of the shared queue');

  const missing = await invoke('not-there', {});
  t.equal(missing.status, 404);
});

/** A Prometheus query's answer: one sample per series. */
type Vector = Array<{ metric: Record<string, string>; value: [number, string] }>;

const PROMETHEUS = '/usr/bin/prometheus';
const noPrometheus = existsSync(PROMETHEUS)
  ? false
  : `${PROMETHEUS} is missing: install Debian's prometheus package (apt-get install prometheus) to run this test`;

t.test('a real Prometheus server scrapes the gateway and the worker', { skip: noPrometheus }, async (t) => {
  const binary = PROMETHEUS;
  const home = await mkdtemp(join(tmpdir(), 'skiff-prometheus-'));
  const port = await freePort();
  const gateway = new URL(platform.url).host;
  await writeFile(
    join(home, 'prometheus.yml'),
    [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      'scrape_configs:',
      `  - { job_name: skiff-gateway, metrics_path: /metrics, authorization: { credentials: '${platform.key}' }, static_configs: [{ targets: ['${gateway}'] }] }`,
      `  - { job_name: skiff-worker, metrics_path: /metrics, static_configs: [{ targets: ['127.0.0.1:${workerMetricsPort}'] }] }`,
      '',
    ].join('\n'),
  );
  let output = '';
  const prometheus: ChildProcess = spawn(
    binary,
    [
      `--config.file=${join(home, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(home, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  prometheus.stdout?.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
  prometheus.stderr?.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => prometheus.once('exit', () => resolve()));
  t.teardown(async () => {
    prometheus.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
    await rm(home, { recursive: true, force: true });
  });
  const api = `http://127.0.0.1:${port}`;
  const query = async (promql: string): Promise<Vector> => {
    const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.json()) as { status: string; data: { result: Vector } };
    return body.status === 'success' ? body.data.result : [];
  };
  const ready = await eventually(async () => (await fetch(`${api}/-/ready`).catch(() => undefined))?.status === 200, 30_000, 200);
  t.ok(ready, `prometheus is ready\n${output}`);

  const scraped = await eventually(async () => (await query('up{job=~"skiff-.*"} == 1').catch(() => [])).length === 2, 20_000, 250);
  t.ok(scraped, `both targets are up\n${output}`);

  let calls: Vector = [];
  const counted = await eventually(
    async () => {
      calls = await query('sum by (start) (skiff_invocations_total{job="skiff-gateway",function="traced",outcome="ok"})').catch(() => []);
      return calls.length === 2;
    },
    20_000,
    250,
  );
  t.ok(counted, 'prometheus has the calls of `traced`');
  t.same(Object.fromEntries(calls.map((s) => [s.metric.start, Number(s.value[1])])), { cold: 1, warm: 1 }, 'one cold and one warm call');

  const coldStarts = await query(`sum by (phase) (skiff_cold_start_seconds_count{job="skiff-worker",worker="${platform.config.worker.id}"})`);
  const byPhase = Object.fromEntries(coldStarts.map((s) => [s.metric.phase, Number(s.value[1])]));
  t.equal(byPhase.total, 3, 'the cold-start histogram shows the cold calls made (traced once, twice twice)');
  t.ok((byPhase.init ?? 0) >= 3 && (byPhase.code ?? 0) >= 3, 'and their phases');
  const p = await query('histogram_quantile(0.5, sum by (le) (rate(skiff_cold_start_seconds_bucket{phase="total"}[1m])))');
  t.ok(p.length <= 1, 'the histogram is queryable as one');
});

t.test('OTLP/JSON export: the span tree of the cold and the warm call', async (t) => {
  const [coldCall, warmCall] = calls;
  if (!coldCall || !warmCall) {
    t.fail('the calls were not made');
    return;
  }
  const inTrace = (traceId: string): Span[] => spansOf(receiver.received).filter((s) => s.traceId === traceId);
  // The cold call is placed by the scheduler; the warm one goes straight to its node (the short warm path).
  const complete = (traceId: string, placed: boolean): boolean =>
    ['gateway.invoke', ...(placed ? ['scheduler.place'] : []), 'worker.invoke', 'handler'].every((name) => inTrace(traceId).some((s) => s.name === name));
  t.ok(await eventually(() => complete(coldCall.traceId, true) && complete(warmCall.traceId, false), 15_000, 100), 'both traces arrive');
  const json = receiver.received.filter((r) => r.path === '/v1/traces');
  t.ok(json.length > 0 && json.every((r) => r.headers['content-type'] === 'application/json'), 'as OTLP/HTTP JSON (OTEL_EXPORTER_OTLP_PROTOCOL=http/json)');

  for (const call of [coldCall, warmCall]) {
    const label = call.cold ? 'cold' : 'warm';
    const spans = inTrace(call.traceId);
    const one = (name: string): Span => {
      const found = spans.filter((s) => s.name === name);
      t.equal(found.length, 1, `${label}: one ${name} span`);
      return found[0]!;
    };
    const gateway = one('gateway.invoke');
    const worker = one('worker.invoke');
    const handler = one('handler');
    t.equal(gateway.parentSpanId ?? '', '', `${label}: gateway.invoke is the root (the caller sent no traceparent)`);
    t.equal(gateway.kind, 2, `${label}: gateway.invoke is a server span`);
    t.equal(gateway.attrs['skiff.route'], call.cold ? 'scheduler' : 'warm', `${label}: skiff.route`);
    let placed: Span[] = [];
    if (call.cold) {
      const place = one('scheduler.place');
      t.equal(place.parentSpanId, gateway.spanId, `${label}: scheduler.place under gateway.invoke`);
      t.equal(worker.parentSpanId, place.spanId, `${label}: worker.invoke under scheduler.place`);
      placed = [place];
    } else {
      t.equal(spans.filter((s) => s.name === 'scheduler.place').length, 0, `${label}: no scheduler.place span (straight to the node)`);
      t.equal(worker.parentSpanId, gateway.spanId, `${label}: worker.invoke under gateway.invoke`);
    }
    t.equal(handler.parentSpanId, worker.spanId, `${label}: handler under worker.invoke`);
    for (const span of [gateway, ...placed, worker]) {
      t.equal(span.attrs['skiff.function'], 'traced', `${label} ${span.name}: skiff.function`);
      t.equal(span.attrs['skiff.invocation_id'], call.invocationId, `${label} ${span.name}: skiff.invocation_id`);
      t.equal(span.attrs['skiff.worker'], platform.config.worker.id, `${label} ${span.name}: skiff.worker`);
    }
    for (const span of [gateway, worker]) t.equal(span.attrs['skiff.cold_start'], call.cold, `${label} ${span.name}: skiff.cold_start`);
    t.equal(worker.attrs['skiff.version'], 1, `${label}: skiff.version`);
    t.equal(worker.attrs['skiff.start'], call.cold ? worker.attrs['skiff.start'] : 'warm', `${label}: skiff.start`);
    t.type(worker.attrs['skiff.queue_wait_ms'], 'number', `${label}: queue wait on the worker span`);
    t.ok(
      nanos(gateway.startTimeUnixNano) <= nanos(worker.startTimeUnixNano) && nanos(worker.endTimeUnixNano) <= nanos(gateway.endTimeUnixNano),
      `${label}: the worker's time lies inside the gateway's`,
    );

    const phases = spans.filter((s) => s.attrs['skiff.phase'] !== undefined);
    if (!call.cold) {
      t.equal(phases.length, 0, 'warm: no cold-start phases');
      continue;
    }
    const kind = worker.attrs['skiff.start'];
    const ms = (s: Span): string => (Number(nanos(s.endTimeUnixNano) - nanos(s.startTimeUnixNano)) / 1e6).toFixed(2);
    t.comment(`cold start (${String(kind)}): ${phases.map((s) => `${s.name} ${ms(s)} ms`).join(', ')}; worker.invoke ${ms(worker)} ms`);
    t.ok(kind === 'pooled' || kind === 'created', `cold: skiff.start is ${String(kind)}`);
    const under = (parent: Span): string[] =>
      phases
        .filter((s) => s.parentSpanId === parent.spanId)
        .map((s) => s.name)
        .sort();
    const expected = ['code.fetch', kind === 'pooled' ? 'pool.take' : 'sandbox.create', 'specialize'];
    t.same(
      under(worker).filter((n) => n !== 'acquire.wait'),
      expected.sort(),
      'cold: phase spans under worker.invoke',
    );
    const specialize = one('specialize');
    t.same(under(specialize), ['runtime.init', 'specialize.bind'], 'cold: bind and init under specialize');
    if (kind === 'created') t.same(under(one('sandbox.create')), ['sandbox.bootstrap', 'sandbox.mount', 'sandbox.runc']);
    // Real times: inside the worker span (1 ms of slack for the clocks' rounding), in order.
    const slack = 1_000_000n;
    for (const s of phases) {
      t.ok(
        nanos(s.startTimeUnixNano) + slack >= nanos(worker.startTimeUnixNano) && nanos(s.endTimeUnixNano) <= nanos(worker.endTimeUnixNano) + slack,
        `${s.name} lies inside worker.invoke`,
      );
      t.ok(nanos(s.endTimeUnixNano) >= nanos(s.startTimeUnixNano), `${s.name} ends after it starts`);
    }
    const init = one('runtime.init');
    t.ok(nanos(init.endTimeUnixNano) <= nanos(handler.startTimeUnixNano) + slack, 'the handler runs after runtime init');
    t.ok(nanos(one('code.fetch').endTimeUnixNano) <= nanos(specialize.startTimeUnixNano) + slack, 'code before specialization');
  }
});

t.test('a span made by user code inside the function joins the trace', async (t) => {
  for (const call of calls) {
    const handler = spansOf(receiver.received).find((s) => s.traceId === call.traceId && s.name === 'handler');
    const [version, traceId, parentId, flags] = call.result.traceparent.split('-');
    t.equal(version, '00');
    t.equal(traceId, call.traceId, 'context.traceparent carries the trace id the caller was told (x-skiff-trace-id)');
    t.equal(parentId, handler?.spanId, "and the platform's handler span as the parent");
    t.equal(flags, '01', 'sampled');
    const user = call.result.spans;
    t.equal(user.length, 1, 'the function made one span');
    t.match(user[0], { name: 'user.work', traceId: call.traceId, parentSpanId: handler?.spanId }, "the user span is in the invocation's trace, under handler");
  }
});

t.test('a caller traceparent is continued', async (t) => {
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const res = await invoke('traced', { n: 3 }, { traceparent: `00-${traceId}-00f067aa0ba902b7-01` });
  t.equal(res.headers.get('x-skiff-trace-id'), traceId);
  const result = (await res.json()) as UserResult;
  t.equal(result.traceparent.split('-')[1], traceId, 'into the function too');
  t.ok(
    await eventually(
      () => spansOf(receiver.received).some((s) => s.traceId === traceId && s.name === 'gateway.invoke' && s.parentSpanId === '00f067aa0ba902b7'),
      10_000,
      100,
    ),
    "gateway.invoke is the caller's span's child",
  );
});

/** Runs a separate process that starts Skiff's telemetry with `env` and ends one span. */
function exportOneSpan(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const telemetry = fileURLToPath(new URL('../../infra/telemetry.js', import.meta.url));
  const script = `
    const { startTelemetry } = await import(${JSON.stringify(telemetry)});
    const telemetry = startTelemetry('skiff-protocol-check', { enabled: true });
    telemetry.tracer.startSpan('protocol.check').end();
    await telemetry.shutdown();
  `;
  const clean = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('OTEL_')));
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, output })));
}

t.test('OTLP/HTTP protobuf: the default protocol, and OTEL_EXPORTER_OTLP_TRACES_PROTOCOL over OTEL_EXPORTER_OTLP_PROTOCOL', async (t) => {
  const cases: Array<[string, Record<string, string>, string]> = [
    ['no protocol set: http/protobuf', {}, 'application/x-protobuf'],
    ['traces protocol wins', { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' }, 'application/x-protobuf'],
    ['http/json', { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, 'application/json'],
  ];
  for (const [name, env, contentType] of cases) {
    const own = await startReceiver();
    try {
      const run = await exportOneSpan({ OTEL_EXPORTER_OTLP_ENDPOINT: own.url, ...env });
      t.equal(run.code, 0, `${name}: the process exits cleanly\n${run.output}`);
      t.equal(own.received.length, 1, `${name}: one export`);
      const request = own.received[0];
      t.equal(request?.headers['content-type'], contentType, `${name}: ${contentType}`);
      t.ok(request?.body.includes('protocol.check') && request.body.includes('skiff-protocol-check'), `${name}: the span and the service name are in it`);
    } finally {
      await own.close();
    }
  }
});
