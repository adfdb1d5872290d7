import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { App, type AppProps } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import type { Construct } from "constructs";
import { EnclaveStack, type EnclaveStackProps } from "../../../../infra/deploy/aws/enclave-stack.js";
import { KeyStack, type KeyStackProps } from "../../../../infra/deploy/aws/key-stack.js";

export const PCR0 = "a0".repeat(48);
export const PCR1 = "b1".repeat(48);
export const PCR2 = "c2".repeat(48);
export const PCR0_NEXT = "d3".repeat(48);
export const ZERO = "00".repeat(48);
export const ADMIN = "arn:aws:iam::111122223333:root";

export function manifestJson(measurements: unknown, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ version: 1, measurements, trust: "any", ...extra });
}

export const MANIFEST = manifestJson([
  { label: "gateway 0.1.0", pcrs: { 0: PCR0, 1: PCR1, 2: PCR2 } },
  { label: "gateway 0.1.1", pcrs: { 0: PCR0_NEXT, 1: PCR1, 2: PCR2 } },
]);

type ArtifactFiles = { dir: string; eif: string; hostPackage: string; trustPolicy: string; localTrustPolicy: string; operations: string; sealedSecrets: string };

export const KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
/** A trust policy whose one provider uses a sealed secret under KEY_ARN (the enclave would check every file below as it does at boot). */
export const TRUST_POLICY = JSON.stringify({
  version: 1,
  providers: [{ name: "openai", kind: "openai", secret: "OPENAI_API_KEY" }],
  secrets: { kmsKeyArn: KEY_ARN },
  identity: { mode: "ephemeral" },
});
/** Only the built-in model: no secret, no egress; deployable without a sealed file. */
export const LOCAL_TRUST_POLICY = JSON.stringify({ version: 1, providers: [{ name: "local", kind: "local" }], identity: { mode: "ephemeral" } });
export const OPERATIONS = JSON.stringify({ version: 1, clients: [{ name: "app", tokenSha256: "0".repeat(64), models: ["*"] }] });
export const SEALED_SECRETS = JSON.stringify({
  version: 1,
  keyId: KEY_ARN,
  region: "eu-west-1",
  secrets: { OPENAI_API_KEY: Buffer.from("not a real ciphertext").toString("base64") },
});
let shared: ArtifactFiles | undefined;

/** Small stand-ins for the files a deployment uploads (assets are hashed and copied at synth); one set per test file. */
export function artifactFiles(): ArtifactFiles {
  if (shared) return shared;
  const dir = mkdtempSync(path.join(tmpdir(), "egw-aws-"));
  const file = (name: string, content: string) => {
    const p = path.join(dir, name);
    writeFileSync(p, content);
    return p;
  };
  shared = {
    dir,
    eif: file("egw.eif", "not a real EIF"),
    hostPackage: file("enclave-gateway.tgz", "not a real tarball"),
    trustPolicy: file("trust-policy.json", TRUST_POLICY),
    localTrustPolicy: file("local-trust-policy.json", LOCAL_TRUST_POLICY),
    operations: file("operations.json", OPERATIONS),
    sealedSecrets: file("sealed-secrets.json", SEALED_SECRETS),
  };
  return shared;
}

/** Removes the stand-in files and every cloud assembly the tests wrote (afterAll in each test file). */
export function removeTestFiles(): void {
  if (shared) rmSync(shared.dir, { recursive: true, force: true });
  shared = undefined;
}

/**
 * An App that writes its cloud assembly under the test files' folder, and by
 * default without CDK's built-in CloudFormation validation, which costs
 * seconds per synth (app-context.test.ts runs it once over both templates).
 */
export function testApp(props: AppProps = {}): App {
  const outdir = mkdtempSync(path.join(artifactFiles().dir, "cdk.out-"));
  return new App({ builtinCloudFormationValidation: false, outdir, ...props });
}

export interface Stacks {
  key: KeyStack;
  enclave: EnclaveStack;
  keyTemplate: Template;
  enclaveTemplate: Template;
}

export function synthStacks(keyProps: Partial<KeyStackProps> = {}, enclaveProps: Partial<EnclaveStackProps> = {}): Stacks {
  const files = artifactFiles();
  const app = testApp();
  const key = new KeyStack(app, "EgwKey", { manifestJson: MANIFEST, adminArn: ADMIN, ...keyProps });
  const enclave = new EnclaveStack(app, "EgwEnclave", {
    keyStack: key,
    eif: { file: files.eif },
    hostPackage: { file: files.hostPackage },
    trustPolicyFile: files.trustPolicy,
    operationsFile: files.operations,
    sealedSecretsFile: files.sealedSecrets,
    ingressCidr: "0.0.0.0/0",
    ...enclaveProps,
  });
  return { key, enclave, keyTemplate: Template.fromStack(key), enclaveTemplate: Template.fromStack(enclave) };
}

/**
 * Fn::Join and Fn::Base64 flattened to text, other intrinsics written as
 * {Ref:…}/{GetAtt:…}/{…}, so a test can read user data as the instance will.
 */
export function intrinsicText(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return value.map(intrinsicText).join("");
  if (value && typeof value === "object") {
    const [fn, arg] = Object.entries(value)[0] ?? [];
    if (fn === "Fn::Base64") return intrinsicText(arg);
    if (fn === "Fn::Join") {
      const [sep, parts] = arg as [string, unknown[]];
      return parts.map(intrinsicText).join(sep);
    }
    if (fn === "Ref") return `{Ref:${String(arg)}}`;
    if (fn === "Fn::GetAtt") return `{GetAtt:${(arg as string[]).join(".")}}`;
    return `{${fn}}`;
  }
  return "";
}

/**
 * Warning annotations of a stack's constructs, read from construct metadata
 * (Annotations.fromStack would synthesize the app again, with CDK's template
 * validation: seconds per call).
 */
export function warningsOf(stack: Construct): string[] {
  return stack.node
    .findAll()
    .flatMap((c) => c.node.metadata)
    .filter((m) => m.type === "aws:cdk:warning")
    .map((m) => String(m.data));
}
