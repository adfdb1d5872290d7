import { createHash } from "node:crypto";
import { derivedEgress, secretBindings, TrustPolicyError, type TrustPolicy } from "../../attestation/trust-policy.js";
import { attestedConfigHash, attestedPolicyHash } from "../../host/transport/codec/config-hash.js";
import { loadRuntimeConfig } from "../../enclave/runtime-config.js";
import type { Operations } from "../../enclave/operations.js";
import { parseSealedFile, type SealedFile } from "../../host/transport/codec/sealed-file.js";
import { EgwError } from "../../attestation/egw-error.js";

/**
 * The three files a deployment hands the enclave (trust policy, operations,
 * sealed secrets), checked once for both deployment tools (infra/deploy/k8s,
 * infra/deploy/aws) with the enclave's own parsers and under the rules of a real
 * enclave (not development), so that a set the enclave would refuse at boot
 * is refused when the template is synthesized instead.
 *
 * The cross-checks mirror enclave/boot.ts: a policy whose providers use
 * sealed secrets needs a file that has each of them (ERR_SECRET_MISSING at
 * boot); a sealed identity in the policy needs one in the file
 * (ERR_IDENTITY_MISSING), and an identity in the file needs a sealed
 * identity in the policy (ERR_IDENTITY_POLICY). Nothing here decides what
 * the enclave trusts: it reads the same bytes at boot and decides again.
 */
export type DeploymentInputProblem = "trust-policy" | "operations" | "sealed-secrets" | "mismatch";

const CODE = {
  "trust-policy": "ERR_DEPLOYMENT_TRUST_POLICY",
  operations: "ERR_DEPLOYMENT_OPERATIONS",
  "sealed-secrets": "ERR_DEPLOYMENT_SEALED_SECRETS",
  mismatch: "ERR_DEPLOYMENT_MISMATCH",
} as const satisfies Record<DeploymentInputProblem, string>;

export class DeploymentInputError extends EgwError<(typeof CODE)[DeploymentInputProblem]> {
  override readonly name = "DeploymentInputError";
  constructor(
    readonly problem: DeploymentInputProblem,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(CODE[problem], message, "fix-config", options);
  }
}

export interface DeploymentInputs {
  trust: TrustPolicy;
  operations: Pick<Operations, "proxyProtocol">;
  sealed?: SealedFile;
  /** SHA-256 (hex) of the trust policy's exact bytes: `policy_sha256`, what a manifest's trust.policySha256 pins. */
  policySha256: string;
  operationsSha256: string;
  sealedSha256?: string;
  /** The attested `config_sha256`: SHA-256(SHA-256(trust) ‖ SHA-256(ops) [‖ SHA-256(sealed)]). */
  configSha256: string;
  /** host:port pairs the enclave may dial, derived from the trust policy (no KMS endpoint override). */
  egress: string[];
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

export function checkDeploymentInputs(trustPolicy: Uint8Array, operations: Uint8Array, sealedSecrets?: Uint8Array): DeploymentInputs {
  let config;
  try {
    config = loadRuntimeConfig(trustPolicy, operations, { dev: false });
  } catch (err) {
    const problem = err instanceof TrustPolicyError ? "trust-policy" : "operations";
    throw new DeploymentInputError(problem, `the enclave would refuse this ${problem === "trust-policy" ? "trust policy" : "operations file"}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const trust = config.trust;
  let sealed: SealedFile | undefined;
  if (sealedSecrets !== undefined) {
    try {
      sealed = parseSealedFile(sealedSecrets);
    } catch (err) {
      throw new DeploymentInputError("sealed-secrets", `the enclave would refuse this sealed-secrets file: ${(err as Error).message}`, { cause: err });
    }
  }
  const used = secretBindings(trust).map((b) => b.name);
  const missing = used.filter((name) => !sealed?.secrets.has(name));
  if (missing.length > 0) {
    throw new DeploymentInputError(
      "mismatch",
      `the trust policy's providers use sealed secrets ${missing.join(", ")}, which ${sealed ? "the sealed-secrets file does not hold" : "no sealed-secrets file provides"} (the enclave would stop with ERR_SECRET_MISSING)`,
    );
  }
  if (trust.identity.mode === "sealed" && sealed?.identity === undefined) {
    throw new DeploymentInputError(
      "mismatch",
      "the trust policy requires a sealed identity, but the sealed-secrets file has none (ERR_IDENTITY_MISSING; generate one: docs/IDENTITY.md)",
    );
  }
  if (trust.identity.mode === "ephemeral" && sealed?.identity !== undefined) {
    throw new DeploymentInputError("mismatch", "the sealed-secrets file carries an identity, but the trust policy's identity is ephemeral (ERR_IDENTITY_POLICY)");
  }
  return {
    trust,
    operations: { proxyProtocol: config.proxyProtocol },
    ...(sealed && { sealed }),
    policySha256: hex(attestedPolicyHash(trustPolicy)),
    operationsSha256: sha256(operations),
    ...(sealedSecrets && { sealedSha256: sha256(sealedSecrets) }),
    configSha256: hex(attestedConfigHash(trustPolicy, operations, sealedSecrets)),
    egress: derivedEgress(trust),
  };
}
