import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { bootEnclave } from "../../enclave/boot.js";
import { loadEnclaveSettings } from "../../enclave/config.js";
import { memoryLogger } from "../../enclave/observability/log.js";
import { staticSecrets } from "../../enclave/secrets.js";

/**
 * The host sets the enclave's environment and command line. Outside
 * development a provider key comes sealed to the measurement or not at all:
 * a key the host puts in the environment is the host's, and so is whatever
 * it is billed to or logged by. And the host's choice of files cannot
 * replace the trust policy with something unparsed.
 */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "egw-settings-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const write = (name: string, v: unknown) => {
  const file = path.join(dir, name);
  fs.writeFileSync(file, JSON.stringify(v));
  return file;
};
const ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const trust = { version: 1, providers: [{ name: "openai", kind: "openai", secret: "OPENAI_API_KEY" }], secrets: { kmsKeyArn: ARN }, identity: { mode: "ephemeral" } };

describe("a hostile host's environment", () => {
  it("provider keys are read from the environment only with the simulated NSM", async () => {
    const flags = { trustPolicy: write("t.json", trust), operations: write("o.json", { version: 1, clients: [] }) };
    const env = { OPENAI_API_KEY: "sk-host-own" };
    const nitro = await loadEnclaveSettings({ ...env, EGW_ATTESTER: "nsm" }, flags);
    expect(nitro.mode === "files" && nitro.secrets.size).toBe(0);
    const dev = await loadEnclaveSettings(env, { ...flags, dev: true });
    expect(dev.mode === "files" && dev.secrets.get("OPENAI_API_KEY")).toBe("sk-host-own");
  });

  it("outside development a policy whose providers use secrets does not boot without a sealed file (ERR_SECRET_MISSING), before any attestation", async () => {
    const attester = { kind: "nsm" as const, attest: () => Promise.reject(new Error("not reached")), close: async () => {} } as never;
    await expect(
      bootEnclave({
        trustPolicyBytes: new TextEncoder().encode(JSON.stringify(trust)),
        operationsBytes: new TextEncoder().encode('{"version":1,"clients":[]}'),
        attester,
        secrets: staticSecrets(new Map([["OPENAI_API_KEY", "sk-host-own"]])),
        log: memoryLogger(),
        listen: { kind: "tcp", host: "127.0.0.1", port: 0 },
      }),
    ).rejects.toMatchObject({ code: "ERR_SECRET_MISSING" });
  });

  it("each input needs its own flag or variable, and provisioning refuses both", async () => {
    await expect(loadEnclaveSettings({}, { dev: true, operations: write("o2.json", { version: 1, clients: [] }) })).rejects.toMatchObject({
      code: "ERR_CONFIG",
      message: expect.stringMatching(/no trust policy/),
    });
    await expect(loadEnclaveSettings({}, { dev: true, trustPolicy: write("t2.json", trust) })).rejects.toMatchObject({ message: expect.stringMatching(/no operations file/) });
    await expect(loadEnclaveSettings({ EGW_TRUST_POLICY: "x" }, { provisionListen: "tcp://127.0.0.1:0" })).rejects.toMatchObject({
      message: expect.stringMatching(/EGW_TRUST_POLICY/),
    });
    await expect(loadEnclaveSettings({}, { provisionListen: "tcp://127.0.0.1:0", operations: "o.json" })).rejects.toMatchObject({ message: expect.stringMatching(/--operations/) });
  });
});

describe("AWS credentials for Bedrock from the environment", () => {
  it("AWS_* without a sealed file become the Bedrock credentials (useless to a host: STS must confirm the pinned account first)", async () => {
    const bedrock = { version: 1, providers: [{ name: "aws", kind: "bedrock", region: "us-east-1", accountId: "111122223333" }], identity: { mode: "ephemeral" } };
    const flags = { trustPolicy: write("b.json", bedrock), operations: write("o2.json", { version: 1, clients: [] }) };
    const settings = await loadEnclaveSettings({ AWS_ACCESS_KEY_ID: "AKIA1", AWS_SECRET_ACCESS_KEY: "s", AWS_SESSION_TOKEN: "t", EGW_ATTESTER: "nsm" }, flags);
    expect(settings.mode === "files" && settings.awsCredentials).toEqual({ accessKeyId: "AKIA1", secretAccessKey: "s", sessionToken: "t" });
    const none = await loadEnclaveSettings({ AWS_ACCESS_KEY_ID: "AKIA1", EGW_ATTESTER: "nsm" }, flags);
    expect(none.mode === "files" && none.awsCredentials).toBeUndefined();
  });
});
