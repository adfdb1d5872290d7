import type { Construct } from "constructs";
import { k8s } from "cdk8s-plus-32";
import { CONFIG_KEYS } from "./commands.js";
import { commonLabels } from "./labels.js";
import type { ResolvedProps } from "./props.js";

/**
 * The trust policy, the operations file and the sealed-secrets file, as a
 * ConfigMap rather than a Secret: none is secret (the trust policy is
 * attested and served to clients; operations holds token hashes and limits;
 * the sealed file holds KMS ciphertexts that only the measured enclave can
 * have released), and a Secret would suggest a protection the host-side
 * cluster cannot give.
 *
 * Immutable, and named after the content's hash: a changed file is a new
 * ConfigMap and a new pod template, so replicas never mix configurations
 * silently (each enclave attests the exact bytes it booted with), and a
 * rollback is a rollback of the Deployment.
 */
export function configMapName(props: ResolvedProps): string {
  // The attested config hash covers all three files' exact bytes.
  const digest = props.inputs.configSha256.slice(0, 10);
  return `${props.name}-config-${digest}`;
}

export function gatewayConfigMap(scope: Construct, props: ResolvedProps): k8s.KubeConfigMap {
  const { trustPolicy, operations, sealedSecrets } = props.inputs;
  return new k8s.KubeConfigMap(scope, "config", {
    metadata: { name: configMapName(props), namespace: props.namespace, labels: commonLabels(props.name, "gateway") },
    immutable: true,
    data: {
      [CONFIG_KEYS.trustPolicy]: trustPolicy.text,
      [CONFIG_KEYS.operations]: operations.text,
      ...(sealedSecrets && { [CONFIG_KEYS.sealedSecrets]: sealedSecrets.text }),
    },
  });
}
