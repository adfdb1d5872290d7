import { writeFileSync } from "node:fs";
import path from "node:path";
import { Match, type Template } from "aws-cdk-lib/assertions";
import { afterAll, describe, expect, it, vi } from "vitest";
import { EnclaveStack, type EnclaveStackProps } from "../../../../infra/deploy/aws/enclave-stack.js";
import { DeployError } from "../../../../infra/deploy/aws/errors.js";
import { KeyStack } from "../../../../infra/deploy/aws/key-stack.js";
import { PARENT_NODE } from "../../../../infra/deploy/aws/parent-node.js";
import { ADMIN, artifactFiles, intrinsicText, KEY_ARN, MANIFEST, manifestJson, OPERATIONS, synthStacks, testApp, TRUST_POLICY, ZERO, removeTestFiles } from "./fixtures.js";

/** A JSON file next to the other test files. */
function fixture(name: string, value: unknown): string {
  const file = path.join(artifactFiles().dir, name);
  writeFileSync(file, JSON.stringify(value));
  return file;
}

// Synthesizing a stack takes seconds on a busy machine.
vi.setConfig({ testTimeout: 120_000 });
afterAll(removeTestFiles);

type Rule = { IpProtocol: string; FromPort?: number; ToPort?: number; CidrIp?: string; CidrIpv6?: string };

/** Every ingress (or egress) rule of a template: inline in security groups and as separate resources. */
function rules(template: Template, direction: "Ingress" | "Egress"): Rule[] {
  const inline = Object.values(template.findResources("AWS::EC2::SecurityGroup")).flatMap((sg) => (sg.Properties[`SecurityGroup${direction}`] ?? []) as Rule[]);
  const separate = Object.values(template.findResources(`AWS::EC2::Security${direction === "Ingress" ? "GroupIngress" : "GroupEgress"}`)).map((r) => r.Properties as Rule);
  return [...inline, ...separate].map(({ IpProtocol, FromPort, ToPort, CidrIp, CidrIpv6 }) => ({
    IpProtocol,
    FromPort,
    ToPort,
    ...(CidrIp && { CidrIp }),
    ...(CidrIpv6 && { CidrIpv6 }),
  }));
}

function instanceProps(template: Template): Record<string, any> {
  const instances = Object.values(template.findResources("AWS::EC2::Instance"));
  expect(instances).toHaveLength(1);
  return instances[0]!.Properties;
}

function userData(template: Template): string {
  return intrinsicText(instanceProps(template).UserData);
}

/** The text of a file the boot script writes with a quoted heredoc. */
function writtenFile(script: string, path: string): string {
  const match = new RegExp(`cat > '${path}' <<'EGW_EOF'\\n([\\s\\S]*?)\\nEGW_EOF\\n`).exec(script);
  expect(match, `${path} is written by the boot script`).not.toBeNull();
  return match![1]!;
}

function execStart(unit: string, key = "ExecStart"): string {
  return unit
    .split("\n")
    .find((l) => l.startsWith(`${key}=`))!
    .slice(key.length + 1);
}

const EGW = `${PARENT_NODE.node} /opt/egw/lib/node_modules/enclave-gateway/dist/infra/cli/egw.js`;

describe("parent instance with defaults", () => {
  const { enclaveTemplate: template } = synthStacks();
  const props = instanceProps(template);
  const script = userData(template);

  it("enables Nitro Enclaves on a Nitro-capable type, requires IMDSv2 with one hop, and has no SSH key", () => {
    expect(props.EnclaveOptions).toEqual({ Enabled: true });
    expect(props.InstanceType).toBe("m6i.xlarge");
    expect(props.MetadataOptions).toMatchObject({ HttpTokens: "required", HttpPutResponseHopLimit: 1, HttpEndpoint: "enabled" });
    expect(props.KeyName).toBeUndefined();
    expect(props.BlockDeviceMappings).toEqual([expect.objectContaining({ Ebs: expect.objectContaining({ Encrypted: true }) })]);
  });

  it("admits only the relay port, from the configured CIDR; no SSH; egress 443 only", () => {
    expect(rules(template, "Ingress")).toEqual([{ IpProtocol: "tcp", FromPort: 443, ToPort: 443, CidrIp: "0.0.0.0/0" }]);
    expect(rules(template, "Egress")).toEqual([{ IpProtocol: "tcp", FromPort: 443, ToPort: 443, CidrIp: "0.0.0.0/0" }]);
  });

  it("writes the allocator config with the enclave's sizes, then enables the allocator", () => {
    expect(writtenFile(script, "/etc/nitro_enclaves/allocator.yaml")).toMatch(/^---\n(#.*\n)?memory_mib: 4096\ncpu_count: 2$/);
    expect(script.indexOf("systemctl enable --now nitro-enclaves-allocator.service")).toBeGreaterThan(script.indexOf("allocator.yaml"));
    expect(script.startsWith("#!/bin/bash\nset -euo pipefail\n")).toBe(true);
  });

  it("starts the enclave from the fetched EIF with nitro-cli, after checking it against the manifest", () => {
    const unit = writtenFile(script, "/etc/systemd/system/egw-enclave.service");
    expect(execStart(unit)).toBe("/usr/bin/nitro-cli run-enclave --eif-path /opt/egw/egw.eif --cpu-count 2 --memory 4096 --enclave-cid 16");
    expect(execStart(unit, "ExecStartPre")).toBe(`${EGW} measure /opt/egw/egw.eif --manifest /etc/egw/manifest.json`);
    expect(unit).toMatch(/^Requires=nitro-enclaves-allocator\.service$/m);
    // The measurements only (what `egw measure --manifest` compares): the trust section is the clients' business.
    expect(JSON.parse(writtenFile(script, "/etc/egw/manifest.json"))).toEqual({ version: 1, measurements: (JSON.parse(MANIFEST) as { measurements: unknown }).measurements });
    expect(script).toMatch(/aws s3 cp .*'s3:\/\/\{Fn::Sub\}\/[0-9a-f]{64}\.eif' '\/opt\/egw\/egw\.eif\.part'\nmv -f '\/opt\/egw\/egw\.eif\.part' '\/opt\/egw\/egw\.eif'/);
    expect(script).not.toMatch(/nitro-cli build-enclave|docker/);
  });

  it("runs the relay as a service: vsock to the enclave, TCP 443 in, egress proxy on vsock, provisioning with trust policy, operations and sealed secrets", () => {
    const unit = writtenFile(script, "/etc/systemd/system/egw-relay.service");
    // Ports as infra/deploy/image/Dockerfile's ENTRYPOINT has them: TLS 8443, egress proxy 8128, provisioning 9000.
    expect(execStart(unit)).toBe(
      `${EGW} host --enclave vsock://16:8443 --listen tcp://0.0.0.0:443 --egress-listen vsock://4294967295:8128 --trust-policy /etc/egw/trust-policy.json --operations /etc/egw/operations.json --provision vsock://16:9000 --sealed-secrets /etc/egw/sealed-secrets.json`,
    );
    expect(unit).toMatch(/^User=egw$/m);
    expect(unit).toMatch(/^AmbientCapabilities=CAP_NET_BIND_SERVICE$/m);
    expect(unit).toMatch(/^Requires=egw-enclave\.service$/m);
    expect(script.trimEnd().split("\n").at(-1)).toBe("systemctl enable --now egw-enclave.service egw-relay.service");
    for (const file of ["/etc/egw/trust-policy.json", "/etc/egw/operations.json", "/etc/egw/sealed-secrets.json"]) {
      expect(script).toContain(`chown root:egw '${file}'\nchmod 0640 '${file}'`);
    }
  });

  it("lets the role read exactly the uploaded objects, nothing bucket-wide", () => {
    const statements = Object.values(template.findResources("AWS::IAM::Policy")).flatMap((p) => p.Properties.PolicyDocument.Statement);
    expect(statements).toHaveLength(1);
    expect(statements[0].Action).toBe("s3:GetObject");
    expect(statements[0].Resource).toHaveLength(5);
    for (const r of statements[0].Resource) expect(intrinsicText(r)).toMatch(/^arn:\{Ref:AWS::Partition\}:s3:::\{Fn::Sub\}\/[0-9a-f]{64}\.(eif|tgz|json)$/);
  });

  it("replaces the instance when the boot script changes (user data runs once)", () => {
    const { enclaveTemplate: other } = synthStacks({}, { enclaveMemoryMib: 8192 });
    expect(Object.keys(other.findResources("AWS::EC2::Instance"))).not.toEqual(Object.keys(template.findResources("AWS::EC2::Instance")));
  });
});

describe("parent instance with its props set", () => {
  const { enclaveTemplate: template } = synthStacks(
    {},
    {
      instanceType: "c6a.2xlarge",
      ingressCidr: "203.0.113.0/24",
      relayPort: 8443,
      egressPorts: [443, 8443],
      enclaveCpuCount: 4,
      enclaveMemoryMib: 8192,
      enclaveCid: 21,
      enclavePort: 9443,
      egressVsockPort: 8002,
      provisionPort: 9100,
      trustPolicyPath: "/srv/egw/trust.json",
      operationsPath: "/srv/egw/ops.json",
      sealedSecretsPath: "/srv/egw/sealed.json",
      hostArgs: ["--provision-timeout", "600", "--metrics-listen", "tcp://127.0.0.1:9100"],
      eif: { url: "https://releases.example.com/egw-0.1.0.eif", sha256: "ab".repeat(32) },
    },
  );
  const script = userData(template);

  it("carries every size, port and CID into the security group, allocator and units", () => {
    expect(instanceProps(template).InstanceType).toBe("c6a.2xlarge");
    expect(rules(template, "Ingress")).toEqual([{ IpProtocol: "tcp", FromPort: 8443, ToPort: 8443, CidrIp: "203.0.113.0/24" }]);
    expect(rules(template, "Egress").map((r) => r.FromPort)).toEqual([443, 8443]);
    expect(writtenFile(script, "/etc/nitro_enclaves/allocator.yaml")).toMatch(/memory_mib: 8192\ncpu_count: 4$/);
    expect(execStart(writtenFile(script, "/etc/systemd/system/egw-enclave.service"))).toBe(
      "/usr/bin/nitro-cli run-enclave --eif-path /opt/egw/egw.eif --cpu-count 4 --memory 8192 --enclave-cid 21",
    );
  });

  it("appends the extra relay flags after its own, and reads the files from their paths", () => {
    expect(execStart(writtenFile(script, "/etc/systemd/system/egw-relay.service"))).toBe(
      `${EGW} host --enclave vsock://21:9443 --listen tcp://0.0.0.0:8443 --egress-listen vsock://4294967295:8002 --trust-policy /srv/egw/trust.json --operations /srv/egw/ops.json --provision vsock://21:9100 --sealed-secrets /srv/egw/sealed.json --provision-timeout 600 --metrics-listen tcp://127.0.0.1:9100`,
    );
    expect(script).toContain("'/srv/egw/trust.json.part'");
    expect(script).toContain("'/srv/egw/ops.json.part'");
    expect(script).toContain("'/srv/egw/sealed.json.part'");
  });

  it("downloads an EIF given by URL over https only, and checks its SHA-256 before moving it in place", () => {
    expect(script).toContain(
      `curl --fail --silent --show-error --location --proto '=https' --proto-redir '=https' --retry 5 --output '/opt/egw/egw.eif.part' 'https://releases.example.com/egw-0.1.0.eif'\necho '${"ab".repeat(32)}  /opt/egw/egw.eif.part' | sha256sum --check --strict --quiet\nmv -f '/opt/egw/egw.eif.part' '/opt/egw/egw.eif'`,
    );
  });
});

describe("an image that reads its files itself (provisionPort: false)", () => {
  it("runs the relay without provisioning flags (it still derives its egress from the trust policy)", () => {
    const { enclaveTemplate } = synthStacks({}, { provisionPort: false, sealedSecretsFile: undefined, trustPolicyFile: artifactFiles().localTrustPolicy });
    const relay = execStart(writtenFile(userData(enclaveTemplate), "/etc/systemd/system/egw-relay.service"));
    expect(relay).not.toMatch(/--provision|--sealed-secrets/);
    expect(relay).toMatch(/--trust-policy \/etc\/egw\/trust-policy\.json --operations \/etc\/egw\/operations\.json$/);
  });
});

describe("egress ports derived from the trust policy", () => {
  it("adds a provider's port to the instance's own, without a hand-kept list", () => {
    const policy = path.join(artifactFiles().dir, "acme-trust-policy.json");
    writeFileSync(
      policy,
      JSON.stringify({ version: 1, providers: [{ name: "acme", kind: "openai-compatible", baseUrl: "https://llm.acme.example:8443/v1" }], identity: { mode: "ephemeral" } }),
    );
    const { enclaveTemplate } = synthStacks({}, { trustPolicyFile: policy, sealedSecretsFile: undefined });
    expect(rules(enclaveTemplate, "Egress").map((r) => r.FromPort)).toEqual([443, 8443]);
  });
});

describe("development deployment (allowDebug)", () => {
  it("starts the enclave with --debug-mode and skips the measure check, only when the key stack allows debug", () => {
    const debug = manifestJson([{ label: "debug", pcrs: { 0: ZERO, 1: ZERO, 2: ZERO } }]);
    const script = userData(synthStacks({ manifestJson: debug, allowDebug: true }).enclaveTemplate);
    const unit = writtenFile(script, "/etc/systemd/system/egw-enclave.service");
    expect(execStart(unit)).toMatch(/ --debug-mode$/);
    expect(unit).not.toMatch(/ExecStartPre/);
    expect(script).not.toContain("/etc/egw/manifest.json");
  });
});

describe("parent instance: refusals", () => {
  const files = artifactFiles();
  const app = testApp();
  const keyStack = new KeyStack(app, "EgwKey", { manifestJson: MANIFEST, adminArn: ADMIN });
  let n = 0;
  const attempt = (props: Partial<EnclaveStackProps>): string | undefined => {
    try {
      new EnclaveStack(app, `Attempt${n++}`, {
        keyStack,
        eif: { file: files.eif },
        hostPackage: { file: files.hostPackage },
        trustPolicyFile: files.trustPolicy,
        operationsFile: files.operations,
        sealedSecretsFile: files.sealedSecrets,
        ingressCidr: "0.0.0.0/0",
        ...props,
      });
    } catch (err) {
      return err instanceof DeployError ? err.code : `not a DeployError: ${String(err)}`;
    }
    return undefined;
  };

  it.each<[string, Partial<EnclaveStackProps>]>([
    ["a burstable type", { instanceType: "t3.xlarge" }],
    ["a parent with 2 vCPUs", { instanceType: "m6i.large" }],
    ["a malformed type", { instanceType: "m6i" }],
    ["an odd vCPU count on x86", { enclaveCpuCount: 3 }],
    ["no vCPU", { enclaveCpuCount: 0 }],
    ["too little memory", { enclaveMemoryMib: 100 }],
    ["a reserved CID (the parent's)", { enclaveCid: 3 }],
    ["port 0", { relayPort: 0 }],
    ["no egress port", { egressPorts: [] }],
    ["an address without prefix", { ingressCidr: "0.0.0.0" }],
    ["a prefix too long", { ingressCidr: "10.0.0.0/33" }],
    ["a word", { ingressCidr: "anywhere" }],
    ["a flag the stack sets itself", { hostArgs: ["--listen=tcp://0.0.0.0:80"] }],
    ["a flag the stack sets itself, separately", { hostArgs: ["--enclave", "vsock://5:1"] }],
    ["provisioning flags in hostArgs", { hostArgs: ["--sealed-secrets", "/tmp/x.json"] }],
    ["sealed secrets without provisioning", { provisionPort: false, sealedSecretsFile: "/dev/null" }],
    ["an argument with a space", { hostArgs: ["a b"] }],
    ["a command substitution", { hostArgs: ["$(reboot)"] }],
    ["a systemd specifier", { hostArgs: ["%n"] }],
    ["a relative trust policy path", { trustPolicyPath: "etc/egw/trust.json" }],
    ["an operations path with ..", { operationsPath: "/etc/egw/../shadow" }],
    ["an http EIF URL", { eif: { url: "http://example.com/egw.eif", sha256: "ab".repeat(32) } }],
    ["an EIF URL with a quote", { eif: { url: "https://example.com/a'b.eif", sha256: "ab".repeat(32) } }],
    ["an EIF URL without a valid SHA-256", { eif: { url: "https://example.com/egw.eif", sha256: "AB".repeat(32) } }],
    ["a missing EIF file", { eif: { file: "/nonexistent/egw.eif" } }],
  ])("refuses %s with ERR_DEPLOY_PROPS", (_, props) => {
    expect(attempt(props)).toBe("ERR_DEPLOY_PROPS");
  });

  // Checked as a real enclave checks them at boot (infra/deploy/deployment-inputs.ts): a template that boots into a refusal is never written.
  it.each<[string, () => Partial<EnclaveStackProps>]>([
    ["a missing sealed-secrets file", () => ({ sealedSecretsFile: "/nonexistent/sealed.json" })],
    ["a missing trust policy", () => ({ trustPolicyFile: "/nonexistent/trust.json" })],
    ["a policy whose provider uses a secret, without a sealed file (ERR_SECRET_MISSING at boot)", () => ({ sealedSecretsFile: undefined })],
    ["a trust policy that lists egress by hand", () => ({ trustPolicyFile: fixture("t1.json", { ...JSON.parse(TRUST_POLICY), egressAllowlist: ["evil.example:443"] }) })],
    [
      "a trust policy with a plain-http origin (development only)",
      () => ({
        trustPolicyFile: fixture("t2.json", {
          version: 1,
          providers: [{ name: "acme", kind: "openai-compatible", baseUrl: "http://llm.acme.example/v1" }],
          identity: { mode: "ephemeral" },
        }),
        sealedSecretsFile: undefined,
      }),
    ],
    ["a secrets key named by alias", () => ({ trustPolicyFile: fixture("t3.json", { ...JSON.parse(TRUST_POLICY), secrets: { kmsKeyArn: "alias/egw" } }) })],
    ["operations that name a destination", () => ({ operationsFile: fixture("o1.json", { ...JSON.parse(OPERATIONS), egressAllowlist: ["evil.example:443"] }) })],
    [
      "a sealed identity in the policy, none in the file (ERR_IDENTITY_MISSING at boot)",
      () => ({ trustPolicyFile: fixture("t4.json", { ...JSON.parse(TRUST_POLICY), identity: { mode: "sealed", kmsKeyArn: KEY_ARN } }) }),
    ],
    ["a sealed-secrets file the enclave cannot parse", () => ({ sealedSecretsFile: fixture("s1.json", { version: 1, secrets: {} }) })],
  ])("refuses %s with ERR_DEPLOY_INPUTS", (_, props) => {
    expect(attempt(props())).toBe("ERR_DEPLOY_INPUTS");
  });

  it("accepts the same base props (the table above fails for its own reason)", () => {
    expect(attempt({})).toBeUndefined();
    expect(attempt({ provisionPort: false, sealedSecretsFile: undefined, trustPolicyFile: files.localTrustPolicy })).toBeUndefined();
    expect(attempt({ sealedSecretsFile: files.sealedSecrets })).toBeUndefined();
    expect(attempt({ ingressCidr: "2001:db8::/32" })).toBeUndefined();
  });

  it("refuses a boot script over EC2's user-data limit", () => {
    // Long labels: the user data carries them, the key policy does not (it must stay under KMS's 32 KiB).
    const many = manifestJson(Array.from({ length: 56 }, (_, i) => ({ label: `${"x".repeat(120)} ${i}`, pcrs: { 0: i.toString(16).padStart(96, "a") } })));
    const big = new KeyStack(app, "BigKey", { manifestJson: many, adminArn: ADMIN });
    let caught: unknown;
    try {
      new EnclaveStack(app, "Big", {
        keyStack: big,
        eif: { file: files.eif },
        hostPackage: { file: files.hostPackage },
        trustPolicyFile: files.localTrustPolicy,
        operationsFile: files.operations,
        ingressCidr: "0.0.0.0/0",
      });
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({ code: "ERR_DEPLOY_PROPS", message: expect.stringMatching(/user data/) });
  });
});

it("matches the instance's role to the key stack's role (the one the key policy names)", () => {
  const { keyTemplate, enclaveTemplate } = synthStacks();
  const roleId = Object.keys(keyTemplate.findResources("AWS::IAM::Role"))[0]!;
  enclaveTemplate.hasResourceProperties("AWS::IAM::InstanceProfile", { Roles: [{ "Fn::ImportValue": Match.stringLikeRegexp(roleId) }] });
});
