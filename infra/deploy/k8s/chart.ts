import { Chart } from "cdk8s";
import { k8s } from "cdk8s-plus-32";
import type { Construct } from "constructs";
import { gatewayConfigMap } from "./config-map.js";
import { gatewayDeployment } from "./deployment.js";
import { devicePlugin } from "./device-plugin.js";
import { disruptionBudget } from "./disruption-budget.js";
import { loadBalancerService } from "./load-balancer.js";
import { networkPolicy } from "./network-policy.js";
import { resolveProps, type EnclaveGatewayInput, type ResolvedProps } from "./props.js";
import { serviceAccount } from "./service-account.js";

/**
 * enclave-gateway on EKS: the Nitro Enclaves device plugin, N enclave-backed
 * pods behind a TCP pass-through NLB, and what they need around them. Every
 * object is a typed `k8s.Kube*` construct from cdk8s-plus-32 (generated from
 * the Kubernetes 1.32 OpenAPI schema), so the compiler checks every field
 * name and type; props are checked before the first object is created.
 *
 * The chart sets no chart-wide namespace: the Namespace object itself and the
 * device plugin (kube-system) must not inherit one, so each object names its
 * own.
 */
export class EnclaveGatewayChart extends Chart {
  readonly props: ResolvedProps;

  constructor(scope: Construct, id: string, input: EnclaveGatewayInput) {
    super(scope, id, { disableResourceNameHashes: true });
    const props = resolveProps(input);
    this.props = props;

    new k8s.KubeNamespace(this, "namespace", {
      metadata: {
        name: props.namespace,
        labels: {
          // Baseline forbids privileged pods, host namespaces, hostPath and added capabilities: the gateway needs none.
          "pod-security.kubernetes.io/enforce": "baseline",
          "pod-security.kubernetes.io/warn": "baseline",
        },
      },
    });
    serviceAccount(this, props);
    gatewayConfigMap(this, props);
    gatewayDeployment(this, props);
    disruptionBudget(this, props);
    loadBalancerService(this, props);
    networkPolicy(this, props);
    if (props.includeDevicePlugin) devicePlugin(this, props);
  }
}
