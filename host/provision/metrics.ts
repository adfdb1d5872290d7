import { Gauge, type Registry } from "prom-client";

/**
 * `egw_enclave_boot_status{state}`: 1 for the current provisioning state,
 * 0 for the others (the enum pattern, so an alert can say
 * `egw_enclave_boot_status{state="failed"} == 1`). The failure's code is in
 * the logs and the stdout status line, not a label: labels stay constants.
 */
export type BootState = "pending" | "ready" | "failed";
const STATES: readonly BootState[] = ["pending", "ready", "failed"];

export interface BootStatusMetric {
  set(state: BootState): void;
}

export function createBootStatusMetric(registry: Registry): BootStatusMetric {
  const gauge = new Gauge({
    name: "egw_enclave_boot_status",
    help: "Boot provisioning of the enclave: 1 for the current state (pending, ready, failed)",
    labelNames: ["state"],
    registers: [registry],
  });
  const set = (state: BootState) => {
    for (const s of STATES) gauge.set({ state: s }, s === state ? 1 : 0);
  };
  set("pending");
  return { set };
}
