/**
 * OpenTelemetry for every Skiff process. The SDK always runs, so each invocation gets real trace
 * ids that travel gateway → scheduler → worker → function even when nothing is exported; an
 * exporter is added only when the standard OTEL_* variables ask for one (off by default).
 *
 * When export is on, the SDK builds it from the standard variables itself (as every OpenTelemetry
 * SDK does): OTEL_TRACES_EXPORTER (otlp, the default; zipkin; console), the OTLP protocol from
 * OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf, the default;
 * http/json; grpc), endpoint and headers from OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT/HEADERS, batching
 * from OTEL_BSP_*, sampling from OTEL_TRACES_SAMPLER. docs/OBSERVABILITY.md has the details.
 */
import { NodeSDK } from '@opentelemetry/sdk-node';
import { NoopSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { context, propagation, trace, type Context, type Span, type Tracer } from '@opentelemetry/api';

export type TraceCarrier = Record<string, string>;

export interface Telemetry {
  tracer: Tracer;
  shutdown(): Promise<void>;
}

export function startTelemetry(serviceName: string, options: { enabled: boolean }): Telemetry {
  const sdk = new NodeSDK({
    serviceName,
    autoDetectResources: false,
    instrumentations: [],
    logRecordProcessors: [],
    // Export on: no span processors given, so the SDK makes them from OTEL_* (see above).
    // Export off: a processor that drops everything, so trace ids are still real.
    ...(options.enabled ? {} : { spanProcessors: [new NoopSpanProcessor()] }),
  });
  sdk.start();
  return { tracer: trace.getTracer('skiff'), shutdown: () => sdk.shutdown() };
}

/** The W3C trace context of `span`, to put in job data or pass into a function. */
export function carrierOf(span: Span): TraceCarrier {
  const carrier: TraceCarrier = {};
  propagation.inject(trace.setSpan(context.active(), span), carrier);
  return carrier;
}

/** The context a carrier (job data, an HTTP request's headers) describes. */
export function contextOf(carrier: TraceCarrier | undefined): Context {
  return carrier ? propagation.extract(context.active(), carrier) : context.active();
}
