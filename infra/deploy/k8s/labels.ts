/**
 * Labels and well-known names shared by the objects. The selector labels are
 * the only ones a Deployment may never change (its selector is immutable), so
 * they carry nothing that varies between releases.
 */
export function selectorLabels(name: string): Record<string, string> {
  return { "app.kubernetes.io/name": "enclave-gateway", "app.kubernetes.io/instance": name };
}

export function commonLabels(name: string, component: string): Record<string, string> {
  return { ...selectorLabels(name), "app.kubernetes.io/component": component, "app.kubernetes.io/part-of": "enclave-gateway", "app.kubernetes.io/managed-by": "cdk8s" };
}

/** The node label the AWS device plugin's own manifest selects on; nodes get it when enclave support is set up. */
export const ENCLAVE_NODE_LABEL = { key: "aws-nitro-enclaves-k8s-dp", value: "enabled" } as const;

/** Extended resources the device plugin registers with the kubelet (aws-nitro-enclaves-k8s-device-plugin). */
export const ENCLAVE_DEVICE_RESOURCE = "aws.ec2.nitro/nitro_enclaves";
export const ENCLAVE_CPU_RESOURCE = "aws.ec2.nitro/nitro_enclaves_cpus";

/**
 * Pod template annotations (a changed file rolls the pods): the trust
 * policy's SHA-256 (`policy_sha256`, what relying parties pin), the attested
 * config hash (`config_sha256`, over all three files), and the sealed file's
 * own SHA-256.
 */
export const ANNOTATIONS = {
  trustPolicySha256: "enclave-gateway/trust-policy-sha256",
  attestedConfigSha256: "enclave-gateway/attested-config-sha256",
  sealedSecretsSha256: "enclave-gateway/sealed-secrets-sha256",
} as const;
