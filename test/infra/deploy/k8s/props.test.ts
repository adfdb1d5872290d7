import { describe, expect, it } from "vitest";
import { K8sChartError } from "../../../../infra/deploy/k8s/errors.js";
import { renderManifest } from "../../../../infra/deploy/k8s/render.js";
import { resolveProps, type EnclaveGatewayInput } from "../../../../infra/deploy/k8s/props.js";
import { bytes, input, LOCAL_ONLY, ops, sealed, trust } from "./synth-helpers.js";

function refusal(extra: Partial<EnclaveGatewayInput>): K8sChartError {
  try {
    resolveProps(input(extra));
  } catch (err) {
    expect(err).toBeInstanceOf(K8sChartError);
    return err as K8sChartError;
  }
  throw new Error("expected a refusal");
}

describe("props the chart refuses, each with its code", () => {
  const cases: [string, Partial<EnclaveGatewayInput>, string][] = [
    ["replicas 0", { replicas: 0 }, "ERR_K8S_REPLICAS"],
    ["replicas -1", { replicas: -1 }, "ERR_K8S_REPLICAS"],
    ["replicas 1.5", { replicas: 1.5 }, "ERR_K8S_REPLICAS"],
    ["replicas NaN", { replicas: Number.NaN }, "ERR_K8S_REPLICAS"],
    ["replicas above the cap", { replicas: 257 }, "ERR_K8S_REPLICAS"],
    ["zero enclave CPUs", { enclave: { cpuCount: 0 } }, "ERR_K8S_ENCLAVE_CPU"],
    ["odd CPUs on a hyperthreaded instance", { enclave: { cpuCount: 3 } }, "ERR_K8S_ENCLAVE_CPU"],
    ["one CPU on a hyperthreaded instance", { enclave: { cpuCount: 1, threadsPerCore: 2 } }, "ERR_K8S_ENCLAVE_CPU"],
    ["fractional CPUs", { enclave: { cpuCount: 2.5 } }, "ERR_K8S_ENCLAVE_CPU"],
    ["3 threads per core", { enclave: { cpuCount: 6, threadsPerCore: 3 } }, "ERR_K8S_ENCLAVE_CPU"],
    ["memory under 4 × the EIF (nitro-cli E26)", { enclave: { memoryMiB: 2047, eifSizeMiB: 512, hugepageSize: "2Mi" } }, "ERR_K8S_ENCLAVE_MEMORY"],
    ["memory under 4 × a bigger EIF", { enclave: { memoryMiB: 4096, eifSizeMiB: 1025 } }, "ERR_K8S_ENCLAVE_MEMORY"],
    ["memory under the driver's 64 MiB", { enclave: { memoryMiB: 62, eifSizeMiB: 1, hugepageSize: "2Mi" } }, "ERR_K8S_ENCLAVE_MEMORY"],
    ["memory not whole 1 GiB pages", { enclave: { memoryMiB: 4608 } }, "ERR_K8S_ENCLAVE_MEMORY"],
    ["memory not whole 2 MiB pages", { enclave: { memoryMiB: 4097, hugepageSize: "2Mi" } }, "ERR_K8S_ENCLAVE_MEMORY"],
    ["an unknown huge page size", { enclave: { hugepageSize: "4Mi" as "2Mi" } }, "ERR_K8S_ENCLAVE_MEMORY"],
    ["a zero EIF size", { enclave: { eifSizeMiB: 0 } }, "ERR_K8S_ENCLAVE_MEMORY"],
    ["an untagged image", { image: "111122223333.dkr.ecr.eu-west-1.amazonaws.com/enclave-gateway" }, "ERR_K8S_IMAGE"],
    ["a :latest image", { image: "111122223333.dkr.ecr.eu-west-1.amazonaws.com/enclave-gateway:latest" }, "ERR_K8S_IMAGE"],
    ["a :LATEST image", { image: "registry.example.com/egw:LATEST" }, "ERR_K8S_IMAGE"],
    ["a short digest", { image: "registry.example.com/egw@sha256:abcd" }, "ERR_K8S_IMAGE"],
    ["an uppercase repository", { image: "registry.example.com/EGW:1.0" }, "ERR_K8S_IMAGE"],
    ["an unpinned device plugin", { devicePluginImage: "public.ecr.aws/aws-nitro-enclaves/aws-nitro-enclaves-k8s-device-plugin:latest" }, "ERR_K8S_IMAGE"],
    ["an uppercase name", { name: "Gateway" }, "ERR_K8S_NAME"],
    ["a name starting with a digit (Service names must not)", { name: "1gw" }, "ERR_K8S_NAME"],
    ["a name over 40 characters", { name: "g".repeat(41) }, "ERR_K8S_NAME"],
    ["an invalid namespace", { namespace: "egw_prod" }, "ERR_K8S_NAME"],
    ["an invalid metrics namespace", { metricsNamespace: "" }, "ERR_K8S_NAME"],
    ["a trust policy that is not JSON", { trustPolicy: bytes("{") }, "ERR_K8S_TRUST_POLICY"],
    ["a trust policy that is not UTF-8", { trustPolicy: Uint8Array.from([0x7b, 0xff, 0x7d]) }, "ERR_K8S_TRUST_POLICY"],
    ["a trust policy with an unknown field", { trustPolicy: trust({ replicas: 3 }) }, "ERR_K8S_TRUST_POLICY"],
    ["a trust policy that still lists egress by hand", { trustPolicy: trust({ egressAllowlist: ["api.openai.com:443"] }) }, "ERR_K8S_TRUST_POLICY"],
    // Real enclave rules, not development ones: the pod runs on Nitro.
    [
      "a trust policy with a plain-http origin",
      { trustPolicy: trust({ providers: [{ name: "acme", kind: "openai-compatible", baseUrl: "http://llm.acme.example/v1", secret: "OPENAI_API_KEY" }], models: {} }) },
      "ERR_K8S_TRUST_POLICY",
    ],
    [
      "a first-party kind pointed elsewhere",
      { trustPolicy: trust({ providers: [{ name: "openai", kind: "openai", baseUrl: "https://evil.example/v1", secret: "OPENAI_API_KEY" }] }) },
      "ERR_K8S_TRUST_POLICY",
    ],
    ["a secrets key given as an alias", { trustPolicy: trust({ secrets: { kmsKeyArn: "alias/egw" } }) }, "ERR_K8S_TRUST_POLICY"],
    ["operations that are not JSON", { operations: bytes("{") }, "ERR_K8S_OPERATIONS"],
    ["operations that name a destination", { operations: ops({ egressAllowlist: ["evil.example:443"] }) }, "ERR_K8S_OPERATIONS"],
    [
      "operations whose client names a model the policy lacks",
      { operations: ops({ clients: [{ name: "a", tokenSha256: "0".repeat(64), models: ["nope"] }] }) },
      "ERR_K8S_OPERATIONS",
    ],
    ["a sealed-secrets file of the wrong version", { sealedSecrets: sealed({ version: 2 }) }, "ERR_K8S_SEALED_SECRETS"],
    ["a sealed-secrets file with an unknown field", { sealedSecrets: sealed({ plaintext: "x" }) }, "ERR_K8S_SEALED_SECRETS"],
    ["a policy whose provider uses a secret, without a sealed file (ERR_SECRET_MISSING at boot)", { sealedSecrets: undefined }, "ERR_K8S_SEALED_SECRETS"],
    ["a sealed file without the secret the policy's provider uses", { sealedSecrets: sealed({ secrets: { OTHER_KEY: "AQID" } }) }, "ERR_K8S_SEALED_SECRETS"],
    [
      "a sealed identity in the policy, none in the file (ERR_IDENTITY_MISSING at boot)",
      { trustPolicy: trust({ identity: { mode: "sealed", kmsKeyArn: "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab" } }) },
      "ERR_K8S_SEALED_SECRETS",
    ],
    // Each file within the enclave's own cap (256 KiB, 1 MiB), together over what one ConfigMap holds.
    [
      "more than a ConfigMap holds",
      { trustPolicy: bytes(new TextDecoder().decode(trust()) + " ".repeat(200 * 1024)), operations: bytes(new TextDecoder().decode(ops()) + " ".repeat(900 * 1024)) },
      "ERR_K8S_CONFIG_TOO_LARGE",
    ],
    ["a negative deregistration wait", { deregistrationWaitSeconds: -1 }, "ERR_K8S_PROP"],
    ["a deregistration wait over the cap", { deregistrationWaitSeconds: 541 }, "ERR_K8S_PROP"],
    ["load balancer port 0", { loadBalancer: { port: 0 } }, "ERR_K8S_PROP"],
    ["an unknown scheme", { loadBalancer: { scheme: "public" as "internal" } }, "ERR_K8S_PROP"],
    ["a source range without a prefix", { loadBalancer: { sourceRanges: ["203.0.113.0"] } }, "ERR_K8S_PROP"],
    ["an IRSA role that is not a role ARN", { serviceAccountRoleArn: "arn:aws:iam::111122223333:user/egw" }, "ERR_K8S_PROP"],
    ["a toleration with an unknown effect", { tolerations: [{ key: "enclaves", effect: "Never" as "NoSchedule" }] }, "ERR_K8S_PROP"],
    ["relay CPU below 50m", { relay: { cpuMillis: 10 } }, "ERR_K8S_PROP"],
    ["enclave CID 3 (the parent)", { enclave: { cid: 3 } }, "ERR_K8S_PROP"],
  ];

  for (const [what, extra, code] of cases) {
    it(`refuses ${what}: ${code}`, () => {
      const err = refusal(extra);
      expect(err.code).toBe(code);
      expect(err.message.length).toBeGreaterThan(10);
    });
  }

  it("refuses before any YAML exists", () => {
    expect(() => renderManifest(input({ replicas: 0 }))).toThrow(K8sChartError);
  });

  it("says which number nitro-cli needs", () => {
    const err = refusal({ enclave: { memoryMiB: 1024, eifSizeMiB: 512 } });
    expect(err.message).toContain("2048");
    expect(err.message).toContain("E26");
  });

  it("keeps the enclave parser's reason as the cause", () => {
    expect((refusal({ trustPolicy: trust({ replicas: 3 }) }).cause as { cause?: { code?: string } }).cause?.code).toBe("ERR_TRUST_POLICY_INVALID");
    expect((refusal({ operations: ops({ replicas: 3 }) }).cause as { cause?: { code?: string } }).cause?.code).toBe("ERR_CONFIG");
  });
});

describe("props the chart accepts at the edges", () => {
  it("one replica", () => expect(resolveProps(input({ replicas: 1 })).replicas).toBe(1));
  it("one CPU on Graviton (1 thread per core) and three", () => {
    expect(resolveProps(input({ enclave: { cpuCount: 1, threadsPerCore: 1 } })).enclave.cpuCount).toBe(1);
    expect(resolveProps(input({ enclave: { cpuCount: 3, threadsPerCore: 1 } })).enclave.cpuCount).toBe(3);
  });
  it("memory of exactly 4 × the EIF", () => {
    expect(resolveProps(input({ enclave: { memoryMiB: 2048, eifSizeMiB: 512 } })).enclave.memoryMiB).toBe(2048);
  });
  it("2 MiB pages for memory that is not whole GiB", () => {
    expect(resolveProps(input({ enclave: { memoryMiB: 3000, eifSizeMiB: 700, hugepageSize: "2Mi" } })).enclave.hugepageSize).toBe("2Mi");
  });
  it("no sealed-secrets file (a gateway with only the local model)", () => {
    const resolved = resolveProps({ trustPolicy: trust(LOCAL_ONLY), operations: ops() });
    expect(resolved.inputs.sealedSecrets).toBeUndefined();
    expect(resolved.inputs.trustPolicy.egressPorts).toEqual([]);
  });
  it("egress ports derived from the trust policy: provider origins and the KMS endpoint of the key's region", () => {
    const policy = trust({
      providers: [
        { name: "openai", kind: "openai", secret: "OPENAI_API_KEY" },
        { name: "acme", kind: "openai-compatible", baseUrl: "https://llm.acme.example:8443/v1" },
      ],
    });
    expect(resolveProps(input({ trustPolicy: policy })).inputs.trustPolicy.egressPorts).toEqual([443, 8443]);
  });
});
