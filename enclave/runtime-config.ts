import { createHash } from "node:crypto";
import {
  derivedEgress,
  hostPort,
  parseTrustPolicy,
  TrustPolicyError,
  type ProviderKind,
  type TrustModelRoute,
  type TrustPolicy,
  type TrustProvider,
} from "../attestation/trust-policy.js";
import { DEFAULT_LIMITS, OperationsError, parseOperations, type ClientConfig, type Limits, type Operations } from "./operations.js";
import { EgwError } from "../attestation/egw-error.js";

/**
 * The gateway's view of its two inputs (issue 11 §1): the trust policy
 * (attestation/trust-policy.ts: where prompts, keys and the identity may
 * go; attested, served to clients, constrained by them) and the operations
 * document (enclave/operations.ts: tokens and limits; harmless). Everything
 * downstream reads this merged, read-only value; nothing in it that names a
 * destination comes from the operations bytes.
 *
 * The egress allowlist is derived from the trust policy, never listed by
 * hand: provider origins, the AWS KMS endpoint of each key ARN's region,
 * and a KMS endpoint override that enclave/secrets/kms-endpoint.ts has
 * already checked (on Nitro it must be AWS KMS in that region).
 */
export type { ProviderKind, ClientConfig, Limits };
export { DEFAULT_LIMITS };

export type ProviderConfig = TrustProvider;
export type ModelRoute = TrustModelRoute;

export interface RuntimeConfig {
  version: 1;
  providers: ProviderConfig[];
  /** Explicit routes: exposed model name → provider and upstream model. */
  models: Record<string, ModelRoute>;
  /** Also route "<provider>/<model>" names to that provider, for any model. */
  prefixRouting: boolean;
  /** host:port pairs the enclave may dial: derived (see above). */
  egressAllowlist: string[];
  clients: ClientConfig[];
  limits: Limits;
  /** The host relay sends a PROXY protocol v2 header before TLS on every connection. */
  proxyProtocol: boolean;
  logLevel?: Operations["logLevel"];
  /** The parsed trust policy the above came from. */
  trust: TrustPolicy;
}

export class ConfigError extends EgwError<"ERR_CONFIG"> {
  override readonly name = "ConfigError";
  constructor(message: string, options?: ErrorOptions) {
    super("ERR_CONFIG", message, "fix-config", options);
  }
}

export { hostPort };

export interface LoadRuntimeConfigOptions {
  /** Development rules for the trust policy (a simulated NSM): see attestation/trust-policy.ts. */
  dev: boolean;
  /** host:port of a KMS endpoint override the caller has checked. */
  kmsEndpoint?: string;
}

/**
 * Parses both inputs from their exact bytes. Errors keep their codes:
 * ERR_TRUST_POLICY_INVALID for the trust policy, ERR_CONFIG for operations.
 */
export function loadRuntimeConfig(trustPolicyBytes: Uint8Array, operationsBytes: Uint8Array, options: LoadRuntimeConfigOptions): RuntimeConfig {
  const trust = parseTrustPolicy(trustPolicyBytes, { dev: options.dev });
  const ops = parseOperations(operationsBytes);
  const egress = new Set(derivedEgress(trust));
  if (options.kmsEndpoint !== undefined) egress.add(hostPort(new URL(options.kmsEndpoint)));
  for (const c of ops.clients) {
    // A pattern that can match nothing is a typo the operator wants to hear about.
    for (const m of c.models) {
      if (m.includes("*")) continue;
      const slash = m.indexOf("/");
      const known = Object.hasOwn(trust.models, m) || (trust.prefixRouting && slash > 0 && trust.providers.some((p) => p.name === m.slice(0, slash)));
      if (!known) throw new ConfigError(`operations clients["${c.name}"].models: "${m.slice(0, 64)}" names no model of the trust policy`);
    }
  }
  return {
    version: 1,
    providers: trust.providers,
    models: trust.models,
    prefixRouting: trust.prefixRouting,
    egressAllowlist: [...egress].sort(),
    clients: ops.clients,
    limits: ops.limits,
    proxyProtocol: ops.proxyProtocol,
    ...(ops.logLevel && { logLevel: ops.logLevel }),
    trust,
  };
}

export { TrustPolicyError, OperationsError };

export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** A development trust policy: the local model, plus any providers given (each as the trust policy writes it). */
export function developmentTrustPolicy(extra: { providers?: Record<string, unknown>[]; models?: Record<string, unknown>; secretsKmsKeyArn?: string } = {}): string {
  const policy = {
    version: 1,
    providers: [{ name: "local", kind: "local" }, ...(extra.providers ?? [])],
    models: { local: { provider: "local", model: "local", description: "built-in deterministic responder (not an LLM)" }, ...(extra.models ?? {}) },
    prefixRouting: true,
    ...(extra.secretsKmsKeyArn && { secrets: { kmsKeyArn: extra.secretsKmsKeyArn } }),
    identity: { mode: "ephemeral" },
  };
  return `${JSON.stringify(policy, null, 2)}\n`;
}

/** Development operations: one client token for every model. */
export function developmentOperations(tokenSha256: string): string {
  return `${JSON.stringify({ version: 1, clients: [{ name: "dev", tokenSha256, models: ["*"] }] }, null, 2)}\n`;
}
