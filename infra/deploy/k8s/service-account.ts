import type { Construct } from "constructs";
import { k8s } from "cdk8s-plus-32";
import { commonLabels } from "./labels.js";
import type { ResolvedProps } from "./props.js";

/**
 * The pods' identity. No Kubernetes API token is mounted (nothing in the pod
 * talks to the API server). With IRSA the EKS webhook still injects the web
 * identity token, and the role's credentials let the enclave call KMS
 * Decrypt: harmless on the host, because the key policy releases nothing
 * without the enclave's attestation (docs/GATEWAY.md).
 */
export function serviceAccount(scope: Construct, props: ResolvedProps): k8s.KubeServiceAccount {
  return new k8s.KubeServiceAccount(scope, "service-account", {
    metadata: {
      name: props.name,
      namespace: props.namespace,
      labels: commonLabels(props.name, "gateway"),
      ...(props.serviceAccountRoleArn !== undefined && { annotations: { "eks.amazonaws.com/role-arn": props.serviceAccountRoleArn } }),
    },
    automountServiceAccountToken: false,
  });
}
