import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { CONFIG_KEYS, ENCLAVE_TERMINATE_SECONDS, MOUNT_PATHS, PORTS, RELAY_DRAIN_SECONDS } from "../../../../infra/deploy/k8s/commands.js";
import { attestedConfigHash } from "../../../../host/transport/codec/config-hash.js";
import { EXAMPLE_OPERATIONS, EXAMPLE_SEALED_SECRETS, EXAMPLE_TRUST_POLICY } from "../../../../infra/deploy/k8s/example.js";
import { pinnedImage } from "../../../../infra/deploy/k8s/image.js";
import { ENCLAVE_CPU_RESOURCE, ENCLAVE_DEVICE_RESOURCE } from "../../../../infra/deploy/k8s/labels.js";
import { NLB_ANNOTATIONS } from "../../../../infra/deploy/k8s/load-balancer.js";
import { DEFAULTS, DEVICE_PLUGIN_IMAGE } from "../../../../infra/deploy/k8s/props.js";
import { allContainers, bytes, container, LOCAL_ONLY, one, ops, probes, synth, trust, type Obj } from "./synth-helpers.js";

const objects = synth();
const deployment = one(objects, "Deployment");
const pod = deployment.spec.template.spec;
const podLabels = deployment.spec.template.metadata.labels;
const matches = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => podLabels[k] === v);

describe("every object", () => {
  const expected: [string, string, string | undefined][] = [
    ["Namespace", "v1", undefined],
    ["ServiceAccount", "v1", "enclave-gateway"],
    ["ConfigMap", "v1", "enclave-gateway"],
    ["Deployment", "apps/v1", "enclave-gateway"],
    ["PodDisruptionBudget", "policy/v1", "enclave-gateway"],
    ["Service", "v1", "enclave-gateway"],
    ["NetworkPolicy", "networking.k8s.io/v1", "enclave-gateway"],
    ["DaemonSet", "apps/v1", "kube-system"],
  ];

  it("is one of the expected kinds, each once, in apply order (Namespace first)", () => {
    expect(objects.map((o) => o.kind)).toEqual(expected.map(([kind]) => kind));
  });

  for (const [kind, apiVersion, namespace] of expected) {
    it(`${kind}: apiVersion ${apiVersion}, a name, ${namespace ? `namespace ${namespace}` : "no namespace (cluster-scoped)"}`, () => {
      const o = one(objects, kind);
      expect(o.apiVersion).toBe(apiVersion);
      expect(o.metadata.name).toMatch(/^[a-z0-9][-a-z0-9.]*$/);
      expect(o.metadata.namespace).toBe(namespace);
    });
  }

  it("follows name and namespace props", () => {
    const custom = synth({ name: "egw-prod", namespace: "confidential" });
    for (const o of custom.filter((o) => !["Namespace", "DaemonSet"].includes(o.kind))) {
      expect(o.metadata.namespace).toBe("confidential");
      expect(o.metadata.name.startsWith("egw-prod")).toBe(true);
    }
    expect(one(custom, "Namespace").metadata.name).toBe("confidential");
    expect(one(custom, "DaemonSet").metadata.namespace).toBe("kube-system");
  });

  it("selects the gateway pods with the Service, the budget and the network policy", () => {
    expect(matches(deployment.spec.selector.matchLabels)).toBe(true);
    expect(matches(one(objects, "Service").spec.selector)).toBe(true);
    expect(matches(one(objects, "PodDisruptionBudget").spec.selector.matchLabels)).toBe(true);
    expect(matches(one(objects, "NetworkPolicy").spec.podSelector.matchLabels)).toBe(true);
  });
});

describe("the enclave-backed Deployment", () => {
  it("runs N replicas", () => {
    for (const n of [1, 2, 7]) expect(one(synth({ replicas: n }), "Deployment").spec.replicas).toBe(n);
    expect(deployment.spec.replicas).toBe(DEFAULTS.replicas);
  });

  it("requests the Nitro device, huge pages equal to the enclave memory, enclave CPUs and cpu; requests equal limits", () => {
    const r = container(objects, "enclave").resources;
    expect(r.requests[ENCLAVE_DEVICE_RESOURCE]).toBe("1");
    expect(r.requests["hugepages-1Gi"]).toBe("4Gi");
    expect(r.requests[ENCLAVE_CPU_RESOURCE]).toBe("2");
    expect(r.requests.cpu).toBeDefined();
    expect(r.limits).toEqual(r.requests);
  });

  it("sizes huge pages and CPUs from props", () => {
    const big = container(synth({ enclave: { cpuCount: 4, memoryMiB: 8192 } }), "enclave").resources.limits;
    expect(big["hugepages-1Gi"]).toBe("8Gi");
    expect(big[ENCLAVE_CPU_RESOURCE]).toBe("4");
    const small = container(synth({ enclave: { memoryMiB: 3000, eifSizeMiB: 700, hugepageSize: "2Mi" } }), "enclave").resources.limits;
    expect(small["hugepages-2Mi"]).toBe("3000Mi");
    expect(small["hugepages-1Gi"]).toBeUndefined();
    const noCpuAds = container(synth({ advertiseEnclaveCpus: false }), "enclave").resources.limits;
    expect(noCpuAds[ENCLAVE_CPU_RESOURCE]).toBeUndefined();
  });

  it("starts the enclave with the same sizes it requests, and never in debug mode", () => {
    const script: string = container(synth({ enclave: { cpuCount: 4, memoryMiB: 8192, cid: 21 } }), "enclave").command[2];
    expect(script).toContain("run-enclave --eif-path /opt/egw/egw.eif --cpu-count 4 --memory 8192 --enclave-cid 21");
    const relay: string[] = container(synth({ enclave: { cpuCount: 4, memoryMiB: 8192, cid: 21 } }), "relay").command;
    expect(relay[relay.indexOf("--enclave") + 1]).toBe(`vsock://21:${PORTS.enclaveVsock}`);
    expect(JSON.stringify(objects)).not.toContain("--debug-mode");
  });

  it("mounts the huge pages only into the enclave container, and no host path into any gateway container", () => {
    expect(pod.volumes.find((v: Obj) => v.name === "hugepages").emptyDir.medium).toBe("HugePages-1Gi");
    expect(pod.volumes.some((v: Obj) => v.hostPath !== undefined)).toBe(false);
    expect(container(objects, "relay").volumeMounts.some((m: Obj) => m.name === "hugepages")).toBe(false);
  });

  it("puts one enclave per node (required anti-affinity) and spreads over zones", () => {
    const anti = pod.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution;
    expect(anti).toHaveLength(1);
    expect(anti[0].topologyKey).toBe("kubernetes.io/hostname");
    expect(matches(anti[0].labelSelector.matchLabels)).toBe(true);
    expect(pod.topologySpreadConstraints[0].topologyKey).toBe("topology.kubernetes.io/zone");
    expect(pod.nodeSelector).toEqual({ "aws-nitro-enclaves-k8s-dp": "enabled" });
  });

  it("rolls one pod at a time without surging onto a node that has no free enclave", () => {
    expect(deployment.spec.strategy.rollingUpdate).toEqual({ maxSurge: 0, maxUnavailable: 1 });
    expect(one(objects, "PodDisruptionBudget").spec.maxUnavailable).toBe(1);
  });

  it("keeps the enclave until the relay has drained, within the grace period", () => {
    const relayStop = container(objects, "relay").lifecycle.preStop.sleep.seconds;
    const enclaveStop = container(objects, "enclave").lifecycle.preStop.sleep.seconds;
    expect(relayStop).toBe(DEFAULTS.deregistrationWaitSeconds);
    expect(enclaveStop).toBe(relayStop + RELAY_DRAIN_SECONDS);
    expect(pod.terminationGracePeriodSeconds).toBe(enclaveStop + ENCLAVE_TERMINATE_SECONDS);
  });
});

describe("security context", () => {
  const everyContainer = allContainers(objects);

  it("nothing is privileged, nothing escalates, no capability is added and all are dropped", () => {
    expect(everyContainer.length).toBe(3);
    for (const c of everyContainer) {
      expect(c.securityContext.privileged).toBe(false);
      expect(c.securityContext.allowPrivilegeEscalation).toBe(false);
      expect(c.securityContext.capabilities.drop).toEqual(["ALL"]);
      expect(c.securityContext.capabilities.add).toBeUndefined();
    }
  });

  it("only the nitro-cli container runs as root; the relay does not; gateway root filesystems are read-only", () => {
    expect(container(objects, "enclave").securityContext.runAsUser).toBe(0);
    expect(container(objects, "relay").securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532 });
    for (const c of pod.containers) expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
  });

  it("meets the namespace's baseline Pod Security Standard: no host namespaces, host paths, host ports or Unconfined seccomp", () => {
    expect(one(objects, "Namespace").metadata.labels["pod-security.kubernetes.io/enforce"]).toBe("baseline");
    expect(pod.hostNetwork ?? false).toBe(false);
    expect(pod.hostPID ?? false).toBe(false);
    expect(pod.hostIPC ?? false).toBe(false);
    for (const c of pod.containers) for (const p of c.ports ?? []) expect(p.hostPort).toBeUndefined();
  });

  it("sets no RuntimeDefault seccomp profile, which refuses socket(AF_VSOCK), and no Unconfined either", () => {
    const profiles = [pod.securityContext?.seccompProfile, ...pod.containers.map((c: Obj) => c.securityContext.seccompProfile)].filter(Boolean);
    expect(profiles).toEqual([]);
  });

  it("lets the relay read a projected IRSA token although the containers run as different users", () => {
    expect(pod.securityContext.fsGroup).toBe(container(objects, "relay").securityContext.runAsGroup);
  });

  it("mounts no service account token", () => {
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(one(objects, "ServiceAccount").automountServiceAccountToken).toBe(false);
    expect(one(objects, "ServiceAccount").metadata.annotations).toBeUndefined();
    const role = "arn:aws:iam::111122223333:role/egw-kms";
    expect(one(synth({ serviceAccountRoleArn: role }), "ServiceAccount").metadata.annotations).toEqual({ "eks.amazonaws.com/role-arn": role });
  });
});

describe("images", () => {
  it("every image is pinned: a version tag or a digest, never :latest, never untagged", () => {
    const images = allContainers(objects).map((c) => c.image as string);
    expect(images).toEqual([DEFAULTS.image, DEFAULTS.image, DEVICE_PLUGIN_IMAGE]);
    for (const image of images) {
      expect(() => pinnedImage(image)).not.toThrow();
      expect(image).not.toMatch(/:latest$/i);
      expect(image).toMatch(/:[A-Za-z0-9_][A-Za-z0-9_.-]*$|@sha256:[0-9a-f]{64}$/);
    }
  });

  it("takes a digest-pinned image as given", () => {
    const ref = `registry.example.com/egw/pod@sha256:${"ab".repeat(32)}`;
    expect(container(synth({ image: ref }), "relay").image).toBe(ref);
  });
});

describe("probes", () => {
  it("no probe speaks HTTP to the gateway: the TLS port is probed by TCP connect only", () => {
    for (const c of allContainers(objects)) {
      for (const p of probes(c)) {
        if (p.httpGet) {
          expect(p.httpGet.port).toBe("metrics");
          expect(p.httpGet.path).toBe("/metrics");
          expect(p.httpGet.scheme).toBe("HTTP");
        }
        for (const port of [p.httpGet?.port, p.grpc?.port]) expect([PORTS.relay, "tls"]).not.toContain(port);
      }
    }
    expect(container(objects, "relay").readinessProbe.tcpSocket.port).toBe("tls");
  });

  it("the relay's metrics port is the one its --metrics-listen opens", () => {
    const relay = container(objects, "relay");
    const args: string[] = relay.command;
    expect(args[args.indexOf("--metrics-listen") + 1]).toBe(`tcp://0.0.0.0:${PORTS.metrics}`);
    expect(relay.ports.find((p: Obj) => p.name === "metrics").containerPort).toBe(PORTS.metrics);
    expect(relay.ports.find((p: Obj) => p.name === "tls").containerPort).toBe(PORTS.relay);
  });

  it("the enclave container is ready when nitro-cli reports the enclave running, with the same check its watch loop uses", () => {
    const c = container(objects, "enclave");
    const check = c.readinessProbe.exec.command[2] as string;
    expect(check).toContain("describe-enclaves");
    expect(c.command[2]).toContain(`while ${check}; do`);
  });
});

describe("the Network Load Balancer Service", () => {
  const service = one(objects, "Service");
  const a = service.metadata.annotations as Record<string, string>;

  it("is an NLB from the AWS Load Balancer Controller with ip targets", () => {
    expect(service.spec.type).toBe("LoadBalancer");
    expect(a[NLB_ANNOTATIONS.type]).toBe("external");
    expect(a[NLB_ANNOTATIONS.targetType]).toBe("ip");
    expect(a[NLB_ANNOTATIONS.scheme]).toBe("internet-facing");
    expect(one(synth({ loadBalancer: { scheme: "internal" } }), "Service").metadata.annotations[NLB_ANNOTATIONS.scheme]).toBe("internal");
  });

  it("passes TCP through: no certificate, no TLS listener, no TLS or HTTP to the targets", () => {
    for (const key of [NLB_ANNOTATIONS.sslCert, NLB_ANNOTATIONS.sslPorts, NLB_ANNOTATIONS.sslNegotiationPolicy, NLB_ANNOTATIONS.backendProtocol, NLB_ANNOTATIONS.alpnPolicy]) {
      expect(a[key]).toBeUndefined();
    }
    expect(Object.keys(a).filter((k) => /ssl|tls|cert/i.test(k))).toEqual([]);
    expect(service.spec.ports).toEqual([{ name: "tls", protocol: "TCP", port: 443, targetPort: "tls" }]);
    expect(a[NLB_ANNOTATIONS.healthcheckProtocol]).toBe("tcp");
  });

  it("needs no NodePorts and honours source ranges", () => {
    expect(service.spec.allocateLoadBalancerNodePorts).toBe(false);
    expect(service.spec.loadBalancerSourceRanges).toBeUndefined();
    const ranged = one(synth({ loadBalancer: { sourceRanges: ["203.0.113.0/24", "2001:db8::/32"] } }), "Service");
    expect(ranged.spec.loadBalancerSourceRanges).toEqual(["203.0.113.0/24", "2001:db8::/32"]);
  });

  it("keeps a deregistering target's connections for the relay's wait plus drain", () => {
    expect(a[NLB_ANNOTATIONS.targetGroupAttributes]).toContain(`deregistration_delay.timeout_seconds=${DEFAULTS.deregistrationWaitSeconds + RELAY_DRAIN_SECONDS}`);
  });
});

describe("PROXY protocol: the operations file, the relay flag and the load balancer agree", () => {
  for (const proxyProtocol of [true, false]) {
    it(`proxyProtocol ${proxyProtocol}`, () => {
      const objs = synth({ operations: ops({ proxyProtocol }) });
      const relay = container(objs, "relay");
      const args: string[] = relay.command;
      const annotations = one(objs, "Service").metadata.annotations as Record<string, string>;
      const configMap = one(objs, "ConfigMap");

      // The relay reads these very files (--trust-policy, --operations) and sends them to the enclave, which attests them.
      expect(args[args.indexOf("--trust-policy") + 1]).toBe(MOUNT_PATHS.trustPolicy);
      expect(args[args.indexOf("--operations") + 1]).toBe(MOUNT_PATHS.operations);
      expect(args).not.toContain("--config");
      expect(relay.volumeMounts.find((m: Obj) => m.name === "config").mountPath).toBe(MOUNT_PATHS.configDir);
      expect(JSON.parse(configMap.data[CONFIG_KEYS.operations]).proxyProtocol).toBe(proxyProtocol);

      // The relay writes the header exactly when the enclave expects it…
      expect(args.includes("--proxy-protocol")).toBe(proxyProtocol);
      // …from the client address the target group preserves for it…
      expect(annotations[NLB_ANNOTATIONS.targetGroupAttributes]).toContain(`preserve_client_ip.enabled=${proxyProtocol}`);
      // …and the NLB never adds a header of its own, which the relay would pass on as TLS bytes.
      expect(annotations[NLB_ANNOTATIONS.proxyProtocol]).toBeUndefined();
    });
  }
});

describe("the ConfigMap handed to the enclave", () => {
  const configMap = one(objects, "ConfigMap");

  it("carries the exact bytes, immutable, under a name that changes with them", () => {
    expect(configMap.data[CONFIG_KEYS.trustPolicy]).toBe(EXAMPLE_TRUST_POLICY);
    expect(configMap.data[CONFIG_KEYS.operations]).toBe(EXAMPLE_OPERATIONS);
    expect(configMap.data[CONFIG_KEYS.sealedSecrets]).toBe(EXAMPLE_SEALED_SECRETS);
    expect(configMap.immutable).toBe(true);
    // A change to any of the three files is a new ConfigMap.
    for (const other of [synth({ operations: ops({ proxyProtocol: false }) }), synth({ trustPolicy: trust({ prefixRouting: false }) })]) {
      expect(one(other, "ConfigMap").metadata.name).not.toBe(configMap.metadata.name);
    }
    expect(pod.volumes.find((v: Obj) => v.name === "config").configMap.name).toBe(configMap.metadata.name);
  });

  it("annotates the pod template with the policy hash clients pin and the attested config hash, so a changed file rolls the pods", () => {
    const sha = (text: string) => createHash("sha256").update(text).digest("hex");
    const config = Buffer.from(attestedConfigHash(bytes(EXAMPLE_TRUST_POLICY), bytes(EXAMPLE_OPERATIONS), bytes(EXAMPLE_SEALED_SECRETS))).toString("hex");
    expect(deployment.spec.template.metadata.annotations).toEqual({
      "enclave-gateway/trust-policy-sha256": sha(EXAMPLE_TRUST_POLICY),
      "enclave-gateway/attested-config-sha256": config,
      "enclave-gateway/sealed-secrets-sha256": sha(EXAMPLE_SEALED_SECRETS),
    });
    // An operations change keeps the policy hash (clients keep their pins) and moves the config hash.
    const changed = one(synth({ operations: ops({ proxyProtocol: false }) }), "Deployment").spec.template.metadata.annotations;
    expect(changed["enclave-gateway/trust-policy-sha256"]).toBe(sha(EXAMPLE_TRUST_POLICY));
    expect(changed["enclave-gateway/attested-config-sha256"]).not.toBe(config);
  });

  it("leaves the sealed file out when there is none", () => {
    const local = synth({ trustPolicy: trust(LOCAL_ONLY), sealedSecrets: undefined });
    expect(Object.keys(one(local, "ConfigMap").data).sort()).toEqual([CONFIG_KEYS.operations, CONFIG_KEYS.trustPolicy]);
    expect(one(local, "Deployment").spec.template.metadata.annotations["enclave-gateway/sealed-secrets-sha256"]).toBeUndefined();
  });
});

describe("the NetworkPolicy", () => {
  it("admits the relay port from anywhere and metrics only from the metrics namespace", () => {
    const ingress = one(objects, "NetworkPolicy").spec.ingress;
    expect(ingress[0]).toEqual({ ports: [{ protocol: "TCP", port: PORTS.relay }] });
    expect(ingress[1].from[0].namespaceSelector.matchLabels).toEqual({ "kubernetes.io/metadata.name": "monitoring" });
    expect(ingress[1].ports).toEqual([{ protocol: "TCP", port: PORTS.metrics }]);
  });

  it("lets the egress proxy reach the ports derived from the trust policy, on public addresses only", () => {
    const providers = [
      { name: "openai", kind: "openai", secret: "OPENAI_API_KEY" },
      { name: "acme", kind: "openai-compatible", baseUrl: "https://llm.example.com:8443/v1" },
    ];
    const objs = synth({ trustPolicy: trust({ providers }) });
    const egress = one(objs, "NetworkPolicy").spec.egress;
    expect(egress[1].ports.map((p: Obj) => p.port)).toEqual([443, 8443]);
    expect(egress[1].to[0].ipBlock.except).toContain("169.254.0.0/16");
    expect(egress[1].to[0].ipBlock.except).toContain("10.0.0.0/8");
  });
});

describe("the device plugin DaemonSet", () => {
  const ds = one(objects, "DaemonSet");
  const c = ds.spec.template.spec.containers[0];

  it("runs the pinned AWS plugin on the labelled enclave nodes, one enclave per node", () => {
    expect(c.image).toBe("public.ecr.aws/aws-nitro-enclaves/aws-nitro-enclaves-k8s-device-plugin:v0.3");
    expect(ds.spec.template.spec.nodeSelector).toEqual({ "aws-nitro-enclaves-k8s-dp": "enabled" });
    expect(c.env).toContainEqual({ name: "MAX_ENCLAVES_PER_NODE", value: "1" });
    expect(c.env).toContainEqual({ name: "ENCLAVE_CPU_ADVERTISEMENT", value: "true" });
  });

  it("mounts /dev and /sys read-only; only the kubelet's device-plugin directory is writable", () => {
    const mounts = Object.fromEntries(c.volumeMounts.map((m: Obj) => [m.mountPath, m.readOnly ?? false]));
    expect(mounts).toEqual({ "/var/lib/kubelet/device-plugins": false, "/dev": true, "/sys": true });
  });

  it("can be left out when the cluster already runs it", () => {
    expect(synth({ includeDevicePlugin: false }).some((o) => o.kind === "DaemonSet")).toBe(false);
  });

  it("tolerates the enclave node group's taint, as the gateway pods do", () => {
    const objs = synth({ tolerations: [{ key: "aws-nitro-enclaves", effect: "NoSchedule" }] });
    const expected = [{ key: "aws-nitro-enclaves", effect: "NoSchedule", operator: "Exists" }];
    expect(one(objs, "DaemonSet").spec.template.spec.tolerations).toEqual(expected);
    expect(one(objs, "Deployment").spec.template.spec.tolerations).toEqual(expected);
  });
});
