import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Template } from "aws-cdk-lib/assertions";
import { afterAll, describe, expect, it, vi } from "vitest";
import { readDeployContext } from "../../../../infra/deploy/aws/app-context.js";
import { defineStacks } from "../../../../infra/deploy/aws/app-stacks.js";
import { ADMIN, artifactFiles, MANIFEST, removeTestFiles, testApp } from "./fixtures.js";

// Synthesizing a stack takes seconds on a busy machine.
vi.setConfig({ testTimeout: 120_000 });
afterAll(removeTestFiles);

const files = artifactFiles();
const manifest = path.join(files.dir, "manifest.json");
writeFileSync(manifest, MANIFEST);

const keyContext = { manifest, adminArn: ADMIN };
const fullContext = {
  ...keyContext,
  eif: files.eif,
  hostPackage: files.hostPackage,
  trustPolicy: files.trustPolicy,
  operations: files.operations,
  sealedSecrets: files.sealedSecrets,
  ingressCidr: "0.0.0.0/0",
};

const contextError = (context: Record<string, unknown>): string | undefined => {
  try {
    readDeployContext(testApp({ context }).node);
  } catch (err) {
    return `${(err as { code?: string }).code}: ${(err as Error).message}`;
  }
  return undefined;
};

describe("deployment inputs from CDK context", () => {
  it("without an EIF, describes the key stack alone (first deployment, before sealing)", () => {
    const context = readDeployContext(testApp({ context: keyContext }).node);
    expect(context.enclave).toBeUndefined();
    expect(context.key).toMatchObject({ adminArn: ADMIN, allowDebug: false, sessionManager: true, manifestJson: MANIFEST });
  });

  it("parses -c strings into numbers, lists and flags", () => {
    const context = readDeployContext(
      testApp({
        context: {
          ...fullContext,
          relayPort: "8443",
          egressPorts: "443, 8443",
          enclaveCpuCount: "4",
          allowDebug: "false",
          sessionManager: "false",
          provisionPort: "false",
          hostArgs: '["--provision-timeout","600"]',
        },
      }).node,
    );
    expect(context.key.sessionManager).toBe(false);
    expect(context.enclave).toMatchObject({
      eif: { file: files.eif },
      relayPort: 8443,
      egressPorts: [443, 8443],
      enclaveCpuCount: 4,
      provisionPort: false,
      hostArgs: ["--provision-timeout", "600"],
      sealedSecretsFile: files.sealedSecrets,
    });
  });

  it("takes an EIF URL only with its SHA-256", () => {
    expect(contextError({ ...fullContext, eif: "https://example.com/egw.eif" })).toMatch(/^ERR_DEPLOY_CONTEXT: context "eifSha256"/);
    const context = readDeployContext(testApp({ context: { ...fullContext, eif: "https://example.com/egw.eif", eifSha256: "ab".repeat(32) } }).node);
    expect(context.enclave?.eif).toEqual({ url: "https://example.com/egw.eif", sha256: "ab".repeat(32) });
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ["no manifest", { adminArn: ADMIN }, /"manifest": missing/],
    ["an unreadable manifest", { ...keyContext, manifest: "/nonexistent.json" }, /"manifest": .* is not a readable file/],
    ["no admin", { manifest }, /"adminArn": missing/],
    ["an EIF without the rest", { ...keyContext, eif: files.eif }, /"hostPackage": missing/],
    ["no ingress CIDR", { ...fullContext, ingressCidr: undefined }, /"ingressCidr": missing/],
    ["a port that is not a number", { ...fullContext, relayPort: "https" }, /"relayPort": expected an integer/],
    ["a flag that is not a boolean", { ...keyContext, allowDebug: "yes" }, /"allowDebug": expected true or false/],
    ["hostArgs that are not JSON", { ...fullContext, hostArgs: "--provision" }, /"hostArgs": expected a JSON array/],
    ["an account without region", { ...keyContext, account: "111122223333" }, /"region": account and region go together/],
    ["a VPC without subnets", { ...fullContext, vpcId: "vpc-1234" }, /"vpcId": with vpcId/],
  ])("refuses %s with ERR_DEPLOY_CONTEXT", (_, context, message) => {
    expect(contextError(context)).toMatch(/^ERR_DEPLOY_CONTEXT: /);
    expect(contextError(context)).toMatch(message);
  });
});

describe("the app", () => {
  it("synthesizes both stacks offline: no lookups, no missing context", () => {
    const app = testApp({
      builtinCloudFormationValidation: true,
      context: { ...fullContext, stackPrefix: "Test", vpcId: "vpc-0123456789abcdef0", availabilityZones: "eu-west-1a", publicSubnetIds: "subnet-0123456789abcdef0" },
    });
    const { key, enclave } = defineStacks(app);
    expect([key.stackName, enclave?.stackName]).toEqual(["TestKey", "TestEnclave"]);
    const assembly = app.synth();
    expect(assembly.manifest.missing ?? []).toEqual([]);
    expect(assembly.stacks.map((s) => s.stackName).sort()).toEqual(["TestEnclave", "TestKey"]);
    // CDK's built-in CloudFormation validation ran on both templates during synth: no finding.
    const report = JSON.parse(readFileSync(path.join(assembly.directory, "validation-report.json"), "utf8")) as { pluginReports: { violations?: unknown[] }[] };
    expect(report.pluginReports.flatMap((r) => r.violations ?? [])).toEqual([]);
    // The existing VPC is used as given: no VPC is created, the instance sits in the named subnet.
    const template = Template.fromStack(enclave!);
    template.resourceCountIs("AWS::EC2::VPC", 0);
    template.hasResourceProperties("AWS::EC2::Instance", { NetworkInterfaces: [{ SubnetId: "subnet-0123456789abcdef0" }] });
  }); // app.synth() also runs CDK's CloudFormation validation of both templates (the slow part)

  it("defines only the key stack without an EIF", () => {
    const app = testApp({ context: keyContext });
    expect(defineStacks(app).enclave).toBeUndefined();
    expect(app.node.children.map((c) => c.node.id)).toEqual(["EgwKey"]);
  });
});
