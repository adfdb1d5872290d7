import { checkDeploymentInputs, DeploymentInputError, type DeploymentInputProblem } from "../deployment-inputs.js";
import { CONFIG_KEYS } from "./commands.js";
import { K8sChartError, type K8sChartErrorCode } from "./errors.js";

/**
 * The three files the pod hands the enclave, checked here with the
 * enclave's own parsers (infra/deploy/deployment-inputs.ts) so that a set the
 * enclave would refuse at boot is refused at synthesis instead. None is
 * secret: the trust policy is attested and served to every client, the
 * operations file holds only token hashes and limits, and the sealed-secrets
 * file holds only KMS ciphertexts that open inside the measured enclave.
 * Their exact bytes are kept: the enclave hashes the bytes it receives, so
 * any re-serialization would change the attested hashes.
 *
 * Who writes which: the trust policy comes from the relying party / key
 * owner and is reviewed (it decides where prompts and keys may go); the
 * operations file is the operator's own.
 */
export interface TrustPolicyInput {
  text: string;
  /** SHA-256 of the exact bytes: `policy_sha256`, what clients' manifests pin. */
  sha256: string;
  /** TCP ports the egress proxy may dial (derived from the trust policy: provider origins and KMS), ascending. */
  egressPorts: number[];
}

export interface OperationsInput {
  text: string;
  sha256: string;
  /** The enclave expects a PROXY v2 header from the relay exactly when this is true. */
  proxyProtocol: boolean;
}

export interface SealedSecretsInput {
  text: string;
  sha256: string;
}

export interface GatewayInputs {
  trustPolicy: TrustPolicyInput;
  operations: OperationsInput;
  sealedSecrets?: SealedSecretsInput;
  /** The attested `config_sha256` of these exact files. */
  configSha256: string;
}

/** Kubernetes refuses a ConfigMap whose keys and values together exceed 1 MiB. */
export const CONFIGMAP_MAX_BYTES = 1024 * 1024;

const CODES: Record<DeploymentInputProblem, K8sChartErrorCode> = {
  "trust-policy": "ERR_K8S_TRUST_POLICY",
  operations: "ERR_K8S_OPERATIONS",
  "sealed-secrets": "ERR_K8S_SEALED_SECRETS",
  mismatch: "ERR_K8S_SEALED_SECRETS",
};

function utf8(bytes: Uint8Array, code: K8sChartErrorCode, what: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (err) {
    // A ConfigMap's data holds UTF-8 strings; other bytes would not arrive as given.
    throw new K8sChartError(code, `${what} is not valid UTF-8`, { cause: err });
  }
}

export function readInputs(trustPolicy: Uint8Array, operations: Uint8Array, sealedSecrets?: Uint8Array): GatewayInputs {
  const trustText = utf8(trustPolicy, "ERR_K8S_TRUST_POLICY", "trust policy");
  const opsText = utf8(operations, "ERR_K8S_OPERATIONS", "operations file");
  const sealedText = sealedSecrets === undefined ? undefined : utf8(sealedSecrets, "ERR_K8S_SEALED_SECRETS", "sealed-secrets file");
  let checked;
  try {
    checked = checkDeploymentInputs(trustPolicy, operations, sealedSecrets);
  } catch (err) {
    if (!(err instanceof DeploymentInputError)) throw err;
    throw new K8sChartError(CODES[err.problem], err.message, { cause: err });
  }
  const egressPorts = [...new Set(checked.egress.map((entry) => Number(entry.slice(entry.lastIndexOf(":") + 1))))].sort((a, b) => a - b);
  const inputs: GatewayInputs = {
    trustPolicy: { text: trustText, sha256: checked.policySha256, egressPorts },
    operations: { text: opsText, sha256: checked.operationsSha256, proxyProtocol: checked.operations.proxyProtocol },
    configSha256: checked.configSha256,
  };
  let total = CONFIG_KEYS.trustPolicy.length + trustPolicy.byteLength + CONFIG_KEYS.operations.length + operations.byteLength;
  if (sealedSecrets !== undefined) {
    inputs.sealedSecrets = { text: sealedText!, sha256: checked.sealedSha256! };
    total += CONFIG_KEYS.sealedSecrets.length + sealedSecrets.byteLength;
  }
  if (total > CONFIGMAP_MAX_BYTES) {
    throw new K8sChartError("ERR_K8S_CONFIG_TOO_LARGE", `trust policy, operations and sealed-secrets file total ${total} bytes; a ConfigMap holds at most ${CONFIGMAP_MAX_BYTES}`);
  }
  return inputs;
}
