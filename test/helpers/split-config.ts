/**
 * Tests describe a gateway in one object (providers, routes, clients,
 * limits), as the runtime config once was; the enclave takes two documents.
 * This splits one into the trust policy (attestation/trust-policy.ts) and
 * the operations document (enclave/operations.ts). `egressAllowlist` is
 * dropped: the enclave derives it from the trust policy.
 */
export interface SplitExtras {
  /** trust policy `secrets.kmsKeyArn` */
  secretsKmsKeyArn?: string;
  /** trust policy `identity`; default ephemeral */
  identity?: Record<string, unknown>;
}

const TRUST_KEYS = ["providers", "models", "prefixRouting", "secrets", "identity"];
const OPERATIONS_KEYS = ["clients", "limits", "proxyProtocol", "logLevel"];

export function splitConfig(json: string, extras: SplitExtras = {}): { trustPolicy: string; operations: string } {
  const o = JSON.parse(json) as Record<string, unknown>;
  const trust: Record<string, unknown> = { version: 1 };
  const ops: Record<string, unknown> = { version: 1 };
  for (const [k, v] of Object.entries(o)) {
    if (TRUST_KEYS.includes(k)) trust[k] = v;
    else if (OPERATIONS_KEYS.includes(k)) ops[k] = v;
    else if (k !== "version" && k !== "egressAllowlist") throw new Error(`splitConfig: unknown field ${k}`);
  }
  if (extras.secretsKmsKeyArn !== undefined) trust.secrets = { kmsKeyArn: extras.secretsKmsKeyArn };
  trust.identity ??= extras.identity ?? { mode: "ephemeral" };
  ops.clients ??= [];
  return { trustPolicy: JSON.stringify(trust), operations: JSON.stringify(ops) };
}
