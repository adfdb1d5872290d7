import { App, Testing } from "cdk8s";
import { EnclaveGatewayChart } from "../../../../infra/deploy/k8s/chart.js";
import { EXAMPLE_OPERATIONS, EXAMPLE_SEALED_SECRETS, EXAMPLE_TRUST_POLICY } from "../../../../infra/deploy/k8s/example.js";
import type { EnclaveGatewayInput } from "../../../../infra/deploy/k8s/props.js";

/** Synthesized objects, loosely typed: tests read the YAML's shape, not the construct types. */
export type Obj = Record<string, any>;

export const bytes = (text: string) => new TextEncoder().encode(text);

/** The example trust policy with some fields replaced (JSON re-encoded: these tests do not need exact bytes). */
export function trust(patch: Record<string, unknown> = {}): Uint8Array {
  return bytes(JSON.stringify({ ...JSON.parse(EXAMPLE_TRUST_POLICY), ...patch }));
}

/** The example operations file with some fields replaced. */
export function ops(patch: Record<string, unknown> = {}): Uint8Array {
  return bytes(JSON.stringify({ ...JSON.parse(EXAMPLE_OPERATIONS), ...patch }));
}

/** A trust policy with only the built-in model: no secret, no egress. */
export const LOCAL_ONLY = { providers: [{ name: "local", kind: "local" }], models: {}, secrets: undefined };

export function sealed(patch: Record<string, unknown> = {}): Uint8Array {
  return bytes(JSON.stringify({ ...JSON.parse(EXAMPLE_SEALED_SECRETS), ...patch }));
}

export function input(extra: Partial<EnclaveGatewayInput> = {}): EnclaveGatewayInput {
  return { trustPolicy: bytes(EXAMPLE_TRUST_POLICY), operations: bytes(EXAMPLE_OPERATIONS), sealedSecrets: bytes(EXAMPLE_SEALED_SECRETS), ...extra };
}

export function synth(extra: Partial<EnclaveGatewayInput> = {}): Obj[] {
  // No outdir is ever written: Testing.synth only serializes the chart.
  const chart = new EnclaveGatewayChart(new App({ outdir: "cdk8s.out" }), "test", input(extra));
  return Testing.synth(chart) as Obj[];
}

export function one(objects: Obj[], kind: string): Obj {
  const found = objects.filter((o) => o.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0]!;
}

export function container(objects: Obj[], name: "enclave" | "relay"): Obj {
  const c = one(objects, "Deployment").spec.template.spec.containers.find((x: Obj) => x.name === name);
  if (!c) throw new Error(`no container ${name}`);
  return c;
}

/** Every container of every pod template in the manifest. */
export function allContainers(objects: Obj[]): Obj[] {
  return objects.flatMap((o) => o.spec?.template?.spec?.containers ?? []);
}

export function probes(c: Obj): Obj[] {
  return [c.readinessProbe, c.livenessProbe, c.startupProbe].filter((p) => p !== undefined);
}
