import type { Construct } from "constructs";
import { k8s } from "cdk8s-plus-32";
import { CONFIG_KEYS, ENCLAVE_RUNNING_CHECK, ENCLAVE_TERMINATE_SECONDS, launcherScript, MOUNT_PATHS, PORTS, RELAY_DRAIN_SECONDS, relayArgs } from "./commands.js";
import { configMapName } from "./config-map.js";
import { ANNOTATIONS, commonLabels, ENCLAVE_CPU_RESOURCE, ENCLAVE_DEVICE_RESOURCE, ENCLAVE_NODE_LABEL, selectorLabels } from "./labels.js";
import type { ResolvedProps } from "./props.js";

/**
 * The enclave-backed pods. Each pod runs two containers from the one pod
 * image:
 *
 *  - `enclave` starts the enclave from the EIF with nitro-cli and lives as
 *    long as it runs. It alone gets the Nitro device (through the device
 *    plugin, not `privileged`) and the huge pages the enclave's memory comes
 *    from. It runs as root without any capability: /dev/nitro_enclaves is
 *    root:ne 0660 on the node and the `ne` group id differs between AMIs.
 *  - `relay` runs `egw host`: TCP → vsock ingress, the egress CONNECT proxy on
 *    the parent's vsock, metrics. It runs as an unprivileged user.
 *
 * No seccomp profile is set: containerd's RuntimeDefault profile refuses
 * socket(AF_VSOCK) (containerd#7510), and both nitro-cli and the relay speak
 * vsock. Leaving it unset keeps the pod within the "baseline" Pod Security
 * Standard (an explicit Unconfined would not); a node that enables kubelet
 * `seccompDefault` needs a Localhost profile that allows AF_VSOCK instead.
 */

/** The relay's uid and gid: unprivileged; the pod image (infra/deploy/image/parent.Dockerfile) defines it as `egw`, owning no file. */
const RELAY_USER = 65532;

/** Resources for nitro-cli itself; the enclave's CPUs and memory are not in the container's cgroup. */
const LAUNCHER = { cpu: "100m", memory: "64Mi" } as const;

function quantityMiB(mib: number): k8s.Quantity {
  return k8s.Quantity.fromString(mib % 1024 === 0 ? `${mib / 1024}Gi` : `${mib}Mi`);
}

/** Requests equal limits: extended resources and huge pages cannot be overcommitted, and memory overcommit invites the OOM killer. */
function enclaveResources(props: ResolvedProps): k8s.ResourceRequirements {
  const e = props.enclave;
  const amounts: Record<string, k8s.Quantity> = {
    [ENCLAVE_DEVICE_RESOURCE]: k8s.Quantity.fromString("1"),
    [`hugepages-${e.hugepageSize}`]: quantityMiB(e.memoryMiB),
    ...(props.advertiseEnclaveCpus && { [ENCLAVE_CPU_RESOURCE]: k8s.Quantity.fromString(String(e.cpuCount)) }),
    cpu: k8s.Quantity.fromString(LAUNCHER.cpu),
    memory: k8s.Quantity.fromString(LAUNCHER.memory),
  };
  return { requests: amounts, limits: amounts };
}

function relayResources(props: ResolvedProps): k8s.ResourceRequirements {
  const amounts = { cpu: k8s.Quantity.fromString(`${props.relay.cpuMillis}m`), memory: quantityMiB(props.relay.memoryMiB) };
  return { requests: amounts, limits: { memory: amounts.memory } };
}

function noPrivileges(user: { runAsUser: number; runAsGroup?: number }): k8s.SecurityContext {
  return {
    privileged: false,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ["ALL"] },
    ...user,
    runAsNonRoot: user.runAsUser !== 0,
  };
}

function enclaveContainer(props: ResolvedProps): k8s.Container {
  const e = props.enclave;
  const run = { cpuCount: e.cpuCount, memoryMiB: e.memoryMiB, cid: e.cid };
  const preStop = props.deregistrationWaitSeconds + RELAY_DRAIN_SECONDS;
  return {
    name: "enclave",
    image: props.image,
    imagePullPolicy: "IfNotPresent",
    command: ["/bin/sh", "-c", launcherScript(run)],
    resources: enclaveResources(props),
    securityContext: noPrivileges({ runAsUser: 0 }),
    // Ready once nitro-cli reports the enclave RUNNING; the script exits (and the kubelet restarts it) when it stops.
    readinessProbe: { exec: { command: ["/bin/sh", "-c", ENCLAVE_RUNNING_CHECK] }, initialDelaySeconds: 5, periodSeconds: 10, timeoutSeconds: 5, failureThreshold: 3 },
    // Terminate the enclave only after the relay has drained its connections.
    lifecycle: { preStop: { sleep: { seconds: preStop } } },
    volumeMounts: [
      { name: "hugepages", mountPath: MOUNT_PATHS.hugepages },
      { name: "nitro-run", mountPath: MOUNT_PATHS.nitroRun },
      { name: "nitro-log", mountPath: MOUNT_PATHS.nitroLog },
      { name: "enclave-tmp", mountPath: MOUNT_PATHS.tmp },
    ],
  };
}

function relayContainer(props: ResolvedProps): k8s.Container {
  return {
    name: "relay",
    image: props.image,
    imagePullPolicy: "IfNotPresent",
    command: relayArgs({ cid: props.enclave.cid, proxyProtocol: props.inputs.operations.proxyProtocol, sealedSecrets: props.inputs.sealedSecrets !== undefined }),
    ports: [
      { name: "tls", containerPort: PORTS.relay, protocol: "TCP" },
      { name: "metrics", containerPort: PORTS.metrics, protocol: "TCP" },
    ],
    resources: relayResources(props),
    securityContext: noPrivileges({ runAsUser: RELAY_USER, runAsGroup: RELAY_USER }),
    // Neither probe needs plaintext: a TCP connect to the relay, and the relay's own content-free counters.
    readinessProbe: { tcpSocket: { port: k8s.IntOrString.fromString("tls") }, periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 },
    livenessProbe: {
      httpGet: { path: "/metrics", port: k8s.IntOrString.fromString("metrics"), scheme: "HTTP" },
      initialDelaySeconds: 10,
      periodSeconds: 20,
      timeoutSeconds: 5,
      failureThreshold: 3,
    },
    // Keep accepting while the NLB deregisters this target; SIGTERM then drains for RELAY_DRAIN_SECONDS.
    ...(props.deregistrationWaitSeconds > 0 && { lifecycle: { preStop: { sleep: { seconds: props.deregistrationWaitSeconds } } } }),
    volumeMounts: [
      { name: "config", mountPath: MOUNT_PATHS.configDir, readOnly: true },
      { name: "relay-tmp", mountPath: MOUNT_PATHS.tmp },
    ],
  };
}

function volumes(props: ResolvedProps): k8s.Volume[] {
  const items: k8s.KeyToPath[] = [
    { key: CONFIG_KEYS.trustPolicy, path: CONFIG_KEYS.trustPolicy },
    { key: CONFIG_KEYS.operations, path: CONFIG_KEYS.operations },
  ];
  if (props.inputs.sealedSecrets) items.push({ key: CONFIG_KEYS.sealedSecrets, path: CONFIG_KEYS.sealedSecrets });
  return [
    { name: "config", configMap: { name: configMapName(props), items, defaultMode: 0o444 } },
    // Mirrors AWS's EKS example (aws-nitro-enclaves-with-k8s); the enclave's memory is charged to the pod's hugepages limit.
    { name: "hugepages", emptyDir: { medium: `HugePages-${props.enclave.hugepageSize}` } },
    { name: "nitro-run", emptyDir: { sizeLimit: k8s.Quantity.fromString("16Mi") } },
    { name: "nitro-log", emptyDir: { sizeLimit: k8s.Quantity.fromString("64Mi") } },
    { name: "enclave-tmp", emptyDir: { sizeLimit: k8s.Quantity.fromString("64Mi") } },
    { name: "relay-tmp", emptyDir: { sizeLimit: k8s.Quantity.fromString("64Mi") } },
  ];
}

export function gatewayDeployment(scope: Construct, props: ResolvedProps): k8s.KubeDeployment {
  const selector = selectorLabels(props.name);
  const { trustPolicy, sealedSecrets, configSha256 } = props.inputs;
  return new k8s.KubeDeployment(scope, "deployment", {
    metadata: { name: props.name, namespace: props.namespace, labels: commonLabels(props.name, "gateway") },
    spec: {
      replicas: props.replicas,
      selector: { matchLabels: selector },
      // One enclave per node and no spare node assumed: replace one at a time instead of surging.
      strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: k8s.IntOrString.fromNumber(0), maxUnavailable: k8s.IntOrString.fromNumber(1) } },
      minReadySeconds: 10,
      // Enclave boot includes opening sealed keys with KMS.
      progressDeadlineSeconds: 900,
      revisionHistoryLimit: 5,
      template: {
        metadata: {
          labels: commonLabels(props.name, "gateway"),
          annotations: {
            [ANNOTATIONS.trustPolicySha256]: trustPolicy.sha256,
            [ANNOTATIONS.attestedConfigSha256]: configSha256,
            ...(sealedSecrets && { [ANNOTATIONS.sealedSecretsSha256]: sealedSecrets.sha256 }),
          },
        },
        spec: {
          serviceAccountName: props.name,
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          nodeSelector: { [ENCLAVE_NODE_LABEL.key]: ENCLAVE_NODE_LABEL.value },
          ...(props.tolerations.length > 0 && { tolerations: props.tolerations.map((t) => ({ ...t, operator: t.value === undefined ? "Exists" : "Equal" })) }),
          affinity: {
            // Required, not preferred: the enclave CID and the egress vsock port are fixed per node.
            podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: selector }, topologyKey: "kubernetes.io/hostname" }] },
          },
          topologySpreadConstraints: [{ maxSkew: 1, topologyKey: "topology.kubernetes.io/zone", whenUnsatisfiable: "ScheduleAnyway", labelSelector: { matchLabels: selector } }],
          terminationGracePeriodSeconds: props.deregistrationWaitSeconds + RELAY_DRAIN_SECONDS + ENCLAVE_TERMINATE_SECONDS,
          // A projected IRSA token is group-readable by fsGroup; the relay (not root) fetches the
          // credentials the enclave needs for KMS, and the two containers run as different users.
          securityContext: { fsGroup: RELAY_USER },
          containers: [enclaveContainer(props), relayContainer(props)],
          volumes: volumes(props),
        },
      },
    },
  });
}
