import { createHash } from "node:crypto";
import { parseRuntimeConfig } from "../../enclave/runtime-config.js";
import { parseSealedFile } from "../../enclave/secrets/sealed-file.js";
import { CONFIG_KEYS } from "./commands.js";
import { K8sChartError } from "./errors.js";

/**
 * The two files the pod hands the enclave, checked here with the enclave's
 * own parsers so that a file the enclave would refuse at boot is refused at
 * synthesis instead. Both are non-secret: the runtime config is attested
 * (its hash is in every attestation document) and the sealed-secrets file
 * holds only KMS ciphertexts that open inside the measured enclave. Their
 * exact bytes are kept: the enclave hashes the bytes it receives, so any
 * re-serialization would change the attested config hash.
 */
export interface RuntimeConfigInput {
  text: string;
  sha256: string;
  /** The enclave expects a PROXY v2 header from the relay exactly when this is true. */
  proxyProtocol: boolean;
  /** TCP ports the egress proxy may dial (from egressAllowlist), ascending. */
  egressPorts: number[];
}

export interface SealedSecretsInput {
  text: string;
  sha256: string;
  region: string;
}

export interface GatewayInputs {
  runtimeConfig: RuntimeConfigInput;
  sealedSecrets?: SealedSecretsInput;
}

/** Kubernetes refuses a ConfigMap whose keys and values together exceed 1 MiB. */
export const CONFIGMAP_MAX_BYTES = 1024 * 1024;

function utf8(bytes: Uint8Array, code: "ERR_K8S_RUNTIME_CONFIG" | "ERR_K8S_SEALED_SECRETS", what: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (err) {
    // A ConfigMap's data holds UTF-8 strings; other bytes would not arrive as given.
    throw new K8sChartError(code, `${what} is not valid UTF-8`, { cause: err });
  }
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** KMS hosts a sealed-secrets file in `region` may be opened through (standard and FIPS endpoints). */
export function kmsHosts(region: string): string[] {
  const suffix = region.startsWith("cn-") ? "amazonaws.com.cn" : "amazonaws.com";
  return [`kms.${region}.${suffix}:443`, `kms-fips.${region}.${suffix}:443`];
}

export function readInputs(runtimeConfig: Uint8Array, sealedSecrets?: Uint8Array): GatewayInputs {
  const configText = utf8(runtimeConfig, "ERR_K8S_RUNTIME_CONFIG", "runtime config");
  let config;
  try {
    config = parseRuntimeConfig(runtimeConfig);
  } catch (err) {
    throw new K8sChartError("ERR_K8S_RUNTIME_CONFIG", `the enclave would refuse this runtime config: ${(err as Error).message}`, { cause: err });
  }
  const egressPorts = [...new Set(config.egressAllowlist.map((entry) => Number(entry.slice(entry.lastIndexOf(":") + 1))))].sort((a, b) => a - b);
  const inputs: GatewayInputs = {
    runtimeConfig: { text: configText, sha256: sha256(runtimeConfig), proxyProtocol: config.proxyProtocol, egressPorts },
  };

  let total = CONFIG_KEYS.runtimeConfig.length + runtimeConfig.byteLength;
  if (sealedSecrets !== undefined) {
    const text = utf8(sealedSecrets, "ERR_K8S_SEALED_SECRETS", "sealed-secrets file");
    let sealed;
    try {
      sealed = parseSealedFile(sealedSecrets);
    } catch (err) {
      throw new K8sChartError("ERR_K8S_SEALED_SECRETS", `the enclave would refuse this sealed-secrets file: ${(err as Error).message}`, { cause: err });
    }
    // The enclave opens sealed keys with KMS Decrypt through its egress proxy;
    // without the KMS host on the allowlist it would fail closed at every boot.
    const hosts = kmsHosts(sealed.region);
    if (!hosts.some((h) => config.egressAllowlist.includes(h))) {
      throw new K8sChartError("ERR_K8S_KMS_EGRESS", `sealed secrets are in ${sealed.region}, but the runtime config's egressAllowlist lists neither ${hosts.join(" nor ")}`);
    }
    inputs.sealedSecrets = { text, sha256: sha256(sealedSecrets), region: sealed.region };
    total += CONFIG_KEYS.sealedSecrets.length + sealedSecrets.byteLength;
  }
  if (total > CONFIGMAP_MAX_BYTES) {
    throw new K8sChartError("ERR_K8S_CONFIG_TOO_LARGE", `runtime config and sealed-secrets file total ${total} bytes; a ConfigMap holds at most ${CONFIGMAP_MAX_BYTES}`);
  }
  return inputs;
}
