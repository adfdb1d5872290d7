import { Counter, Gauge, Registry } from "prom-client";

/**
 * Prometheus metrics of the egress proxy, in a registry passed in (so the
 * host process can expose ingress and egress on one endpoint) or a new one.
 * Labels are bounded sets of code constants: outcomes, rule names, error
 * kinds, two directions. No host name, address or byte of payload is ever a
 * label value.
 */
export interface EgressMetrics {
  registry: Registry;
  /** One increment per accepted connection, when its fate is known. */
  connections: Counter<"outcome">;
  /** Every refusal answered with an error status, by the rule that refused. */
  denials: Counter<"rule">;
  /** Tunnel payload forwarded: upstream = enclave → provider, downstream = provider → enclave. */
  bytes: Counter<"direction">;
  /** Accepted connections not yet closed, in any phase. */
  active: Gauge;
  /** Connections in the tunnel phase. */
  tunnels: Gauge;
  errors: Counter<"kind">;
}

export type ConnectionOutcome = "tunnelled" | "denied" | "rejected" | "upstream_failed" | "overloaded" | "shutdown" | "aborted" | "error";

export type ErrorKind =
  | "client_error"
  | "upstream_error"
  | "connect_refused"
  | "connect_unreachable"
  | "connect_failed"
  | "connect_timeout"
  | "idle_timeout"
  | "drain_timeout"
  | "accept_error"
  | "internal";

export function createEgressMetrics(registry: Registry = new Registry()): EgressMetrics {
  const metrics: EgressMetrics = {
    registry,
    connections: new Counter({ name: "egw_egress_connections_total", help: "Egress proxy connections by outcome", labelNames: ["outcome"], registers: [registry] }),
    denials: new Counter({ name: "egw_egress_denials_total", help: "Egress proxy refusals by rule", labelNames: ["rule"], registers: [registry] }),
    bytes: new Counter({
      name: "egw_egress_bytes_total",
      help: "Tunnel bytes forwarded by direction (upstream: enclave to provider)",
      labelNames: ["direction"],
      registers: [registry],
    }),
    active: new Gauge({ name: "egw_egress_active_connections", help: "Open egress proxy connections", registers: [registry] }),
    tunnels: new Gauge({ name: "egw_egress_active_tunnels", help: "Open egress tunnels", registers: [registry] }),
    errors: new Counter({ name: "egw_egress_errors_total", help: "Egress proxy errors and forced closes by kind", labelNames: ["kind"], registers: [registry] }),
  };
  // Both directions exist from the start, so a rate() never starts from absent.
  metrics.bytes.inc({ direction: "upstream" }, 0);
  metrics.bytes.inc({ direction: "downstream" }, 0);
  return metrics;
}
