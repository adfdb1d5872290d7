import { Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * Prometheus metrics for the gateway, in a registry of its own (no global
 * state). Labels are bounded and content-free: surface and status codes are
 * fixed sets, model labels are configured names only (anything a client
 * invented becomes "(unrouted)" or "(prefix)"), provider labels are
 * configured provider names.
 */
export interface GatewayMetrics {
  registry: Registry;
  requests: Counter<"surface" | "model" | "provider" | "status">;
  errors: Counter<"surface" | "code">;
  latency: Histogram<"surface" | "stream">;
  firstByte: Histogram<"surface">;
  requestBytes: Counter<"surface">;
  responseBytes: Counter<"surface">;
  upstreamAttempts: Counter<"provider" | "outcome">;
  inFlight: Gauge;
  attestations: Counter<"kind">;
}

export function createMetrics(): GatewayMetrics {
  const registry = new Registry();
  const buckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
  return {
    registry,
    requests: new Counter({
      name: "egw_requests_total",
      help: "Responses sent, by surface, model, provider and HTTP status",
      labelNames: ["surface", "model", "provider", "status"],
      registers: [registry],
    }),
    errors: new Counter({ name: "egw_errors_total", help: "Error responses by stable error code", labelNames: ["surface", "code"], registers: [registry] }),
    latency: new Histogram({
      name: "egw_request_duration_seconds",
      help: "Time from request to last response byte",
      labelNames: ["surface", "stream"],
      buckets,
      registers: [registry],
    }),
    firstByte: new Histogram({
      name: "egw_stream_first_chunk_seconds",
      help: "Time from request to the first streamed chunk",
      labelNames: ["surface"],
      buckets,
      registers: [registry],
    }),
    requestBytes: new Counter({ name: "egw_request_bytes_total", help: "Request body bytes received", labelNames: ["surface"], registers: [registry] }),
    responseBytes: new Counter({ name: "egw_response_bytes_total", help: "Response body bytes sent", labelNames: ["surface"], registers: [registry] }),
    upstreamAttempts: new Counter({
      name: "egw_upstream_attempts_total",
      help: "Upstream calls by provider and outcome",
      labelNames: ["provider", "outcome"],
      registers: [registry],
    }),
    inFlight: new Gauge({ name: "egw_requests_in_flight", help: "Requests being served", registers: [registry] }),
    attestations: new Counter({ name: "egw_attestations_total", help: "Attestation documents served", labelNames: ["kind"], registers: [registry] }),
  };
}
