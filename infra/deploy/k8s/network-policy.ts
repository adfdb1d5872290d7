import type { Construct } from "constructs";
import { k8s } from "cdk8s-plus-32";
import { PORTS } from "./commands.js";
import { commonLabels, selectorLabels } from "./labels.js";
import type { ResolvedProps } from "./props.js";

/**
 * What the gateway pods may exchange over IP. Defence in depth behind the
 * relay's own checks, not a replacement: the egress proxy already refuses
 * any destination outside the allowlist derived from the trust policy and
 * any private address.
 *
 *  - in: the relay port from anywhere (the NLB preserves client addresses,
 *    so sources are arbitrary); the metrics port only from metricsNamespace.
 *    Kubelet probes come from the node, which the VPC CNI policy agent admits.
 *  - out: DNS to kube-dns (the egress proxy resolves per connection), and the
 *    derived allowlist's ports on public addresses only; private ranges, link-local
 *    (instance metadata at 169.254.169.254, fd00:ec2::254) and CGNAT excluded.
 *    With IRSA, STS is dialled on 443 by the pod itself.
 *
 * Vsock is not IP: the relay ↔ enclave traffic is outside any NetworkPolicy.
 */
const PRIVATE_V4 = ["10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"];
const PRIVATE_V6 = ["fc00::/7", "fe80::/10", "::1/128", "::ffff:0:0/96"];

export function egressPorts(props: ResolvedProps): number[] {
  const ports = new Set(props.inputs.trustPolicy.egressPorts);
  if (props.serviceAccountRoleArn !== undefined) ports.add(443);
  return [...ports].sort((a, b) => a - b);
}

export function networkPolicy(scope: Construct, props: ResolvedProps): k8s.KubeNetworkPolicy {
  const tcp = (port: number): k8s.NetworkPolicyPort => ({ protocol: "TCP", port: k8s.IntOrString.fromNumber(port) });
  const publicPorts = egressPorts(props);
  return new k8s.KubeNetworkPolicy(scope, "network-policy", {
    metadata: { name: props.name, namespace: props.namespace, labels: commonLabels(props.name, "gateway") },
    spec: {
      podSelector: { matchLabels: selectorLabels(props.name) },
      policyTypes: ["Ingress", "Egress"],
      ingress: [
        { ports: [tcp(PORTS.relay)] },
        { from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": props.metricsNamespace } } }], ports: [tcp(PORTS.metrics)] },
      ],
      egress: [
        {
          to: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } }, podSelector: { matchLabels: { "k8s-app": "kube-dns" } } }],
          ports: [
            { protocol: "UDP", port: k8s.IntOrString.fromNumber(53) },
            { protocol: "TCP", port: k8s.IntOrString.fromNumber(53) },
          ],
        },
        ...(publicPorts.length > 0
          ? [
              {
                to: [{ ipBlock: { cidr: "0.0.0.0/0", except: PRIVATE_V4 } }, { ipBlock: { cidr: "::/0", except: PRIVATE_V6 } }],
                ports: publicPorts.map(tcp),
              },
            ]
          : []),
      ],
    },
  });
}
