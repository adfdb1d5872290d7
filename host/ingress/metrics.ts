import { Counter, Gauge, Registry } from "prom-client";

/**
 * Prometheus metrics of the ingress relay, in a registry of its own. Every
 * label value is a constant from this file: the relay never sees anything
 * but ciphertext and addresses, and addresses are not labels (unbounded).
 */
export type Direction = "client_to_enclave" | "enclave_to_client";

export type ConnectionOutcome =
  /** Both directions ended with FIN and flushed. */
  | "closed"
  /** The client reset or failed. */
  | "client_error"
  /** The enclave side reset or failed after the dial. */
  | "upstream_error"
  /** Every dial attempt failed; the client got a close. */
  | "dial_failed"
  | "idle_timeout"
  | "handshake_timeout"
  /** Refused at accept: maxConnections reached. */
  | "rejected_limit"
  /** Refused at accept, or cut at the drain deadline, because the relay is shutting down. */
  | "shutdown";

export type ErrorKind =
  | "client_reset"
  | "client_error"
  | "upstream_reset"
  | "upstream_error"
  | "dial_refused"
  | "dial_timeout"
  | "dial_unsupported"
  | "dial_error"
  | "accept_error";

export interface IngressMetrics {
  registry: Registry;
  bytes: Counter<"direction">;
  connections: Counter<"outcome">;
  active: Gauge;
  errors: Counter<"kind">;
  upstreamDialFailures: Counter;
  /** Live byte counts are added at scrape time by whoever owns the sockets (see relay.ts). */
  setBytesCollector(collect: () => void): void;
}

export function createIngressMetrics(): IngressMetrics {
  const registry = new Registry();
  let collector: (() => void) | undefined;
  return {
    registry,
    bytes: new Counter({
      name: "egw_ingress_bytes_total",
      help: "Bytes relayed, by direction (ciphertext; counted from the sockets' own totals)",
      labelNames: ["direction"],
      registers: [registry],
      collect() {
        collector?.();
      },
    }),
    connections: new Counter({ name: "egw_ingress_connections_total", help: "Client connections finished, by outcome", labelNames: ["outcome"], registers: [registry] }),
    active: new Gauge({ name: "egw_ingress_connections_active", help: "Client connections open now", registers: [registry] }),
    errors: new Counter({ name: "egw_ingress_errors_total", help: "Errors by kind", labelNames: ["kind"], registers: [registry] }),
    upstreamDialFailures: new Counter({ name: "egw_ingress_upstream_dial_failures_total", help: "Failed dial attempts to the enclave (each retry counts)", registers: [registry] }),
    setBytesCollector(collect) {
      collector = collect;
    },
  };
}
