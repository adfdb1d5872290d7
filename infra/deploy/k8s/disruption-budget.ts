import type { Construct } from "constructs";
import { k8s } from "cdk8s-plus-32";
import { commonLabels, selectorLabels } from "./labels.js";
import type { ResolvedProps } from "./props.js";

/**
 * At most one enclave replica down at a time for voluntary disruptions
 * (node drains, upgrades), matching the rollout (maxUnavailable 1, maxSurge
 * 0). maxUnavailable rather than minAvailable so that a one-replica
 * deployment can still be drained. Pods that never became ready (an enclave
 * KMS refused, say) may be evicted regardless, so they cannot block a drain.
 */
export function disruptionBudget(scope: Construct, props: ResolvedProps): k8s.KubePodDisruptionBudget {
  return new k8s.KubePodDisruptionBudget(scope, "disruption-budget", {
    metadata: { name: props.name, namespace: props.namespace, labels: commonLabels(props.name, "gateway") },
    spec: {
      maxUnavailable: k8s.IntOrString.fromNumber(1),
      selector: { matchLabels: selectorLabels(props.name) },
      unhealthyPodEvictionPolicy: "AlwaysAllow",
    },
  });
}
