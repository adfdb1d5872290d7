import type { Construct } from "constructs";
import { k8s } from "cdk8s-plus-32";
import { ENCLAVE_NODE_LABEL } from "./labels.js";
import type { ResolvedProps } from "./props.js";

/**
 * The AWS Nitro Enclaves Kubernetes device plugin
 * (github.com/aws/aws-nitro-enclaves-k8s-device-plugin, v0.3 manifest and
 * Helm chart), as a DaemonSet on the labelled enclave nodes. It registers
 * `aws.ec2.nitro/nitro_enclaves` with the kubelet and, when a pod asks for
 * it, has the kubelet pass /dev/nitro_enclaves into that container: that is
 * why the gateway pods need no `privileged` and no hostPath.
 *
 * The plugin itself runs as upstream does: not privileged, no capabilities,
 * no privilege escalation. It needs root for the kubelet's device-plugin
 * socket directory. Two deliberate differences from upstream: /dev and /sys
 * are mounted read-only (it only checks that /dev/nitro_enclaves exists and
 * reads /sys/devices/system/cpu/offline; a writable host /sys in a root
 * container could take CPUs offline), and the image is pinned instead of
 * pulled as ":latest" with imagePullPolicy Always.
 */
export const DEVICE_PLUGIN_NAME = "aws-nitro-enclaves-k8s-daemonset";
export const DEVICE_PLUGIN_NAMESPACE = "kube-system";
const PLUGIN_LABELS = { name: "aws-nitro-enclaves-k8s-dp" };

export function devicePlugin(scope: Construct, props: ResolvedProps): k8s.KubeDaemonSet {
  return new k8s.KubeDaemonSet(scope, "device-plugin", {
    metadata: { name: DEVICE_PLUGIN_NAME, namespace: DEVICE_PLUGIN_NAMESPACE, labels: { ...PLUGIN_LABELS, role: "agent" } },
    spec: {
      selector: { matchLabels: PLUGIN_LABELS },
      updateStrategy: { type: "RollingUpdate" },
      template: {
        metadata: { labels: PLUGIN_LABELS },
        spec: {
          nodeSelector: { [ENCLAVE_NODE_LABEL.key]: ENCLAVE_NODE_LABEL.value },
          priorityClassName: "system-node-critical",
          // It talks to the kubelet over its socket, never to the API server.
          automountServiceAccountToken: false,
          ...(props.tolerations.length > 0 && { tolerations: props.tolerations.map((t) => ({ ...t, operator: t.value === undefined ? "Exists" : "Equal" })) }),
          containers: [
            {
              name: "aws-nitro-enclaves-k8s-dp",
              image: props.devicePluginImage,
              imagePullPolicy: "IfNotPresent",
              env: [
                // One enclave per node: the gateway's enclave CID and vsock ports are fixed per node.
                { name: "MAX_ENCLAVES_PER_NODE", value: "1" },
                { name: "ENCLAVE_CPU_ADVERTISEMENT", value: String(props.advertiseEnclaveCpus) },
              ],
              securityContext: { privileged: false, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
              resources: {
                requests: { cpu: k8s.Quantity.fromString("10m"), memory: k8s.Quantity.fromString("15Mi") },
                limits: { cpu: k8s.Quantity.fromString("100m"), memory: k8s.Quantity.fromString("15Mi") },
              },
              volumeMounts: [
                { name: "device-plugin", mountPath: "/var/lib/kubelet/device-plugins" },
                { name: "dev-dir", mountPath: "/dev", readOnly: true },
                { name: "sys-dir", mountPath: "/sys", readOnly: true },
              ],
            },
          ],
          volumes: [
            { name: "device-plugin", hostPath: { path: "/var/lib/kubelet/device-plugins", type: "Directory" } },
            { name: "dev-dir", hostPath: { path: "/dev", type: "Directory" } },
            { name: "sys-dir", hostPath: { path: "/sys", type: "Directory" } },
          ],
          terminationGracePeriodSeconds: 30,
        },
      },
    },
  });
}
