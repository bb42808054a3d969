/**
 * OpenTelemetry for every Skiff process. The SDK always runs, so each invocation gets real trace
 * ids that travel gateway → scheduler → worker → function even when nothing is exported; an OTLP
 * exporter is added only when the standard OTEL_* variables ask for one (off by default).
 */
import { NodeSDK } from '@opentelemetry/sdk-node';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { BatchSpanProcessor, NoopSpanProcessor } from '@opentelemetry/sdk-trace-base';
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
    spanProcessors: [options.enabled ? new BatchSpanProcessor(new OTLPTraceExporter()) : new NoopSpanProcessor()],
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
