/**
 * One side of the tracing-overhead measurement, in a process of its own because OpenTelemetry is
 * started once per process: a platform (telemetry exported or not, as this process's OTEL_*
 * variables say), one no-op function, warm throughput at a fixed number in flight. Prints one JSON
 * line: { perSec, ok, errors, seconds }. Started by bench/tracing.ts with the bench's REDIS_URL,
 * DATABASE_URL and SKIFF_TEST_STATE.
 */
import { trace } from '@opentelemetry/api';
import { closeClient, deploy, invoke, noop } from './http.js';
import { startBenchPlatform, stopPlatform } from './harness.js';
import { httpThroughput } from './latency.js';

const inFlight = Number(process.env.BENCH_IN_FLIGHT ?? 32);
const durationMs = Number(process.env.BENCH_DURATION_MS ?? 5000);

// The platform's config (export on or off) is built from the env it is given, not process.env.
const otel = Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[0].startsWith('OTEL_') && e[1] !== undefined));
const platform = await startBenchPlatform({ SKIFF_POOL_SIZE: '1', ...otel });
try {
  await deploy(platform, { name: 'traced', source: noop('traced'), concurrency: inFlight });
  for (let i = 0; i < 300; i++) await invoke(platform.url, 'traced');
  await httpThroughput(platform, 'traced', inFlight, 1500); // JIT and sockets warm, unmeasured
  const result = await httpThroughput(platform, 'traced', inFlight, durationMs);
  console.log(JSON.stringify(result));
} finally {
  await stopPlatform(platform);
  // Export what the batch processor still holds before the process ends.
  const provider = trace.getTracerProvider() as { getDelegate?: () => { forceFlush?: () => Promise<void> } };
  await provider.getDelegate?.().forceFlush?.();
  closeClient();
}
