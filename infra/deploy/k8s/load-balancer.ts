import type { Construct } from "constructs";
import { k8s } from "cdk8s-plus-32";
import { RELAY_DRAIN_SECONDS } from "./commands.js";
import { commonLabels, selectorLabels } from "./labels.js";
import type { ResolvedProps } from "./props.js";

/**
 * The Service: a Network Load Balancer from the AWS Load Balancer Controller,
 * TCP pass-through to the pods' relay port (ip targets). TLS is never
 * terminated at the NLB: it terminates inside the enclave, whose attested key
 * clients pin; a certificate on the NLB would put plaintext on the untrusted
 * side and break every client's channel binding.
 *
 * Client addresses. The enclave rate-limits per client address when its
 * operations file says `proxyProtocol: true`; it then expects exactly one
 * PROXY v2 header, which the relay (`egw host --proxy-protocol`) writes from
 * the TCP peer address it sees. So the relay must see the client's address:
 * the target group preserves it (`preserve_client_ip.enabled=true`; off by
 * default for ip targets). The NLB's own PROXY v2 header
 * (`aws-load-balancer-proxy-protocol: "*"`) must stay OFF: the relay does not
 * read inbound PROXY headers, it would pass the NLB's header through as if it
 * were TLS bytes after its own, and every handshake would fail. If the relay
 * ever learns to consume an inbound header, this is the one function to change.
 */
export const NLB_ANNOTATIONS = {
  type: "service.beta.kubernetes.io/aws-load-balancer-type",
  targetType: "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type",
  scheme: "service.beta.kubernetes.io/aws-load-balancer-scheme",
  attributes: "service.beta.kubernetes.io/aws-load-balancer-attributes",
  targetGroupAttributes: "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes",
  healthcheckProtocol: "service.beta.kubernetes.io/aws-load-balancer-healthcheck-protocol",
  healthcheckPort: "service.beta.kubernetes.io/aws-load-balancer-healthcheck-port",
  healthcheckInterval: "service.beta.kubernetes.io/aws-load-balancer-healthcheck-interval",
  healthyThreshold: "service.beta.kubernetes.io/aws-load-balancer-healthcheck-healthy-threshold",
  unhealthyThreshold: "service.beta.kubernetes.io/aws-load-balancer-healthcheck-unhealthy-threshold",
  /** Never set (see above); named so tests can check it is absent. */
  proxyProtocol: "service.beta.kubernetes.io/aws-load-balancer-proxy-protocol",
  /** Never set: they would make the NLB terminate TLS. */
  sslCert: "service.beta.kubernetes.io/aws-load-balancer-ssl-cert",
  sslPorts: "service.beta.kubernetes.io/aws-load-balancer-ssl-ports",
  sslNegotiationPolicy: "service.beta.kubernetes.io/aws-load-balancer-ssl-negotiation-policy",
  backendProtocol: "service.beta.kubernetes.io/aws-load-balancer-backend-protocol",
  alpnPolicy: "service.beta.kubernetes.io/aws-load-balancer-alpn-policy",
} as const;

export interface NlbOptions {
  scheme: "internet-facing" | "internal";
  /** The relay writes PROXY v2 headers (from the operations file). */
  proxyProtocol: boolean;
  /** How long a deregistering target keeps its connections. */
  deregistrationDelaySeconds: number;
}

export function nlbAnnotations(o: NlbOptions): Record<string, string> {
  const a = NLB_ANNOTATIONS;
  return {
    // "external" hands the Service to the AWS Load Balancer Controller, not the legacy in-tree provider.
    [a.type]: "external",
    // ip targets: the NLB sends straight to pod IPs, no NodePort hop, and preserves client IPs when asked.
    [a.targetType]: "ip",
    [a.scheme]: o.scheme,
    // Spread connections over replicas in every zone, not only the NLB node's own zone.
    [a.attributes]: "load_balancing.cross_zone.enabled=true",
    [a.targetGroupAttributes]: `preserve_client_ip.enabled=${o.proxyProtocol},deregistration_delay.timeout_seconds=${o.deregistrationDelaySeconds}`,
    // A TCP connect to the relay port: no TLS, no HTTP, nothing the host could read.
    [a.healthcheckProtocol]: "tcp",
    [a.healthcheckPort]: "traffic-port",
    [a.healthcheckInterval]: "10",
    [a.healthyThreshold]: "2",
    [a.unhealthyThreshold]: "2",
  };
}

export function loadBalancerService(scope: Construct, props: ResolvedProps): k8s.KubeService {
  const lb = props.loadBalancer;
  return new k8s.KubeService(scope, "service", {
    metadata: {
      name: props.name,
      namespace: props.namespace,
      labels: commonLabels(props.name, "gateway"),
      annotations: nlbAnnotations({
        scheme: lb.scheme,
        proxyProtocol: props.inputs.operations.proxyProtocol,
        deregistrationDelaySeconds: props.deregistrationWaitSeconds + RELAY_DRAIN_SECONDS,
      }),
    },
    spec: {
      type: "LoadBalancer",
      selector: selectorLabels(props.name),
      // ip targets need no NodePort; not allocating one keeps the relay off every node's ports.
      allocateLoadBalancerNodePorts: false,
      ...(lb.sourceRanges.length > 0 && { loadBalancerSourceRanges: lb.sourceRanges }),
      ports: [{ name: "tls", protocol: "TCP", port: lb.port, targetPort: k8s.IntOrString.fromString("tls") }],
    },
  });
}
