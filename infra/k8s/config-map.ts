import { Construct } from "constructs";
import { k8s } from "cdk8s-plus-32";
import { CONFIG_KEYS } from "./commands.js";
import { commonLabels } from "./labels.js";
import type { ResolvedProps } from "./props.js";

/**
 * The runtime config and the sealed-secrets file, as a ConfigMap rather than a
 * Secret: neither is secret (the config is attested and readable by the host
 * anyway; the sealed file holds KMS ciphertexts that only the measured enclave
 * can have released), and a Secret would suggest a protection the host-side
 * cluster cannot give.
 *
 * Immutable, and named after the content's hash: a changed file is a new
 * ConfigMap and a new pod template, so replicas never mix configurations
 * silently (each enclave attests the exact bytes it booted with), and a
 * rollback is a rollback of the Deployment.
 */
export function configMapName(props: ResolvedProps): string {
  const { runtimeConfig, sealedSecrets } = props.inputs;
  const digest = (runtimeConfig.sha256 + (sealedSecrets?.sha256 ?? "")).slice(0, 10);
  return `${props.name}-config-${digest}`;
}

export function gatewayConfigMap(scope: Construct, props: ResolvedProps): k8s.KubeConfigMap {
  const { runtimeConfig, sealedSecrets } = props.inputs;
  return new k8s.KubeConfigMap(scope, "config", {
    metadata: { name: configMapName(props), namespace: props.namespace, labels: commonLabels(props.name, "gateway") },
    immutable: true,
    data: {
      [CONFIG_KEYS.runtimeConfig]: runtimeConfig.text,
      ...(sealedSecrets && { [CONFIG_KEYS.sealedSecrets]: sealedSecrets.text }),
    },
  });
}
