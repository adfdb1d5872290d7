import { EgwError } from "../../../attestation/egw-error.js";

/**
 * One error class for every input the Kubernetes chart refuses, with a
 * stable `code` so callers and tests `switch (err.code)` instead of parsing
 * messages. Every refusal happens before a single object is synthesized: a
 * chart that would deploy something Nitro, the device plugin or the relay
 * cannot run is never written out.
 */
export type K8sChartErrorCode =
  | "ERR_K8S_REPLICAS" // replicas not an integer in 1..MAX_REPLICAS
  | "ERR_K8S_ENCLAVE_CPU" // cpu count zero, or not a multiple of the hardware threads per core
  | "ERR_K8S_ENCLAVE_MEMORY" // below nitro-cli's minimum for the image, or not whole huge pages
  | "ERR_K8S_IMAGE" // an image reference that is malformed, untagged or ":latest"
  | "ERR_K8S_NAME" // a name or namespace that is not a DNS-1123 label
  | "ERR_K8S_TRUST_POLICY" // the trust policy does not parse as a (non-development) enclave parses it
  | "ERR_K8S_OPERATIONS" // the operations file does not parse as the enclave parses it, or names a model the policy lacks
  | "ERR_K8S_SEALED_SECRETS" // the sealed-secrets file does not parse, or does not hold what the trust policy needs (secrets, identity)
  | "ERR_K8S_CONFIG_TOO_LARGE" // the three files exceed what one ConfigMap holds
  | "ERR_K8S_PROP"; // any other prop out of its range (ports, seconds, CIDRs, ARNs, resources)

export class K8sChartError extends EgwError<K8sChartErrorCode> {
  override readonly name = "K8sChartError";

  constructor(code: K8sChartErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, "fix-config", options);
  }
}
