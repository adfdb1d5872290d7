import { EncryptCommand } from "@aws-sdk/client-kms";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDevCa, type DevCa } from "../../attestation/dev/dev-ca.js";
import { trustAnchorFromPem } from "../../attestation/roots.js";
import { hashToken } from "../../enclave/auth.js";
import { createKmsClient } from "../../enclave/secrets/kms-source.js";
import { providerSecretContext } from "../../enclave/secrets/secret-context.js";
import { startMockKms, type MockKms } from "../../infra/dev/local-kms.js";
import { CLIENT_TOKEN, startHarness } from "../helpers/enclave-harness.js";
import { startMockOpenAI, type MockOpenAI } from "../helpers/mock-openai.js";

/**
 * A hostile host (genuine image, same PCR0) boots the enclave with sealed
 * provider keys it arranged: ciphertexts moved between providers, a file
 * sealed under its own KMS key (its own account), an alias or a bare key id
 * it resolves in its account. The local KMS plays both the deployment's key
 * (account 111122223333) and the host's (account 444455556666). Every boot
 * goes through bootEnclave; the legitimate path runs in the same tests.
 */
const PCR0 = new Uint8Array(48).fill(0x11); // the harness's PCR0
const KEY_A = "sk-CANARY-provider-a-0001";
const KEY_B = "sk-CANARY-provider-b-0002";
const now = () => new Date();
const closers: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

let ca: DevCa;
let kms: MockKms;
let hostKms: MockKms;
let a: MockOpenAI;
let b: MockOpenAI;

beforeAll(async () => {
  ca = await createDevCa({ now });
  const anchor = trustAnchorFromPem(ca.rootPem, "development");
  kms = await startMockKms({ trustedRoot: anchor, policy: { allowedPcrs: { 0: PCR0 } }, now });
  hostKms = await startMockKms({ trustedRoot: anchor, policy: { allowedPcrs: { 0: PCR0 } }, now, account: "444455556666" });
  a = await startMockOpenAI();
  b = await startMockOpenAI();
  closers.push(
    () => kms.close(),
    () => hostKms.close(),
    () => a.close(),
    () => b.close(),
  );
});

/** Two providers, each with its own secret. */
function config(): string {
  return JSON.stringify({
    version: 1,
    providers: [
      { name: "a", kind: "openai", baseUrl: a.url, secret: "A_KEY" },
      { name: "b", kind: "openai", baseUrl: b.url, secret: "B_KEY" },
    ],
    models: { ma: { provider: "a", model: "gpt-4o" }, mb: { provider: "b", model: "gpt-4o" } },
    clients: [{ name: "t", tokenSha256: hashToken(CLIENT_TOKEN), models: ["*"] }],
  });
}

/** What an operator with the given KMS can seal: value for (name, origin) under its key. */
async function seal(by: MockKms, name: string, origin: string, value: string): Promise<string> {
  const operator = createKmsClient({ region: by.region, endpoint: by.endpoint, credentials: by.credentials });
  try {
    const context = { ...providerSecretContext(name, new URL(origin).origin, { dev: true }) };
    const out = await operator.send(new EncryptCommand({ KeyId: by.keyArn, Plaintext: Buffer.from(value), EncryptionContext: context }));
    return Buffer.from(out.CiphertextBlob!).toString("base64");
  } finally {
    operator.destroy();
  }
}

const file = (keyId: string, secrets: Record<string, string>, region = kms.region) => new Uint8Array(Buffer.from(JSON.stringify({ version: 1, keyId, region, secrets })));

async function legitimate(): Promise<Record<string, string>> {
  return { A_KEY: await seal(kms, "A_KEY", a.url, KEY_A), B_KEY: await seal(kms, "B_KEY", b.url, KEY_B) };
}

/** Boots with the trust policy pinning `pinned` (default: the deployment's key) as secrets.kmsKeyArn. */
function boot(bytes: Uint8Array, via: MockKms = kms, pinned: string = kms.keyArn) {
  return startHarness({ ca, now, config: config(), secretsKmsKeyArn: pinned, sealedSecrets: { file: bytes, credentials: via.credentials, endpoint: via.endpoint } });
}

async function chat(h: Awaited<ReturnType<typeof boot>>, model: string) {
  const res = await h.fetch(`${h.baseURL}/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }] }),
  });
  expect(res.status).toBe(200);
}

const decrypts = (k: MockKms) => k.requests.filter((r) => r.target === "TrentService.Decrypt").length;
const upstreamCalls = () => a.requests.length + b.requests.length;

describe("sealed provider keys a hostile host arranged", { timeout: 60_000 }, () => {
  it("the legitimate file boots, and each provider gets its own key", async () => {
    const h = await boot(file(kms.keyArn, await legitimate()));
    closers.push(() => h.close());
    await chat(h, "ma");
    await chat(h, "mb");
    expect(a.requests.at(-1)!.headers.authorization).toBe(`Bearer ${KEY_A}`);
    expect(b.requests.at(-1)!.headers.authorization).toBe(`Bearer ${KEY_B}`);
  });

  it("a ciphertext sealed for origin A handed in as the secret of the provider at origin B → the boot stops (ERR_KMS_RELEASE_DENIED)", async () => {
    const good = await legitimate();
    // The host re-labels A's ciphertext as B's secret (the config says B_KEY goes to b's origin).
    const moved = { A_KEY: good.A_KEY!, B_KEY: await seal(kms, "B_KEY", a.url, KEY_A) };
    const before = upstreamCalls();
    await expect(boot(file(kms.keyArn, moved))).rejects.toMatchObject({ code: "ERR_KMS_RELEASE_DENIED" });
    expect(upstreamCalls()).toBe(before);
  });

  it("two providers' ciphertexts swapped → the boot stops", async () => {
    const good = await legitimate();
    const before = upstreamCalls();
    await expect(boot(file(kms.keyArn, { A_KEY: good.B_KEY!, B_KEY: good.A_KEY! }))).rejects.toMatchObject({ code: "ERR_KMS_RELEASE_DENIED" });
    expect(upstreamCalls()).toBe(before);
  });

  it("a trust policy naming the key by alias or bare id is refused before any KMS or provider call; the file's own keyId decides nothing", async () => {
    const bareId = kms.keyArn.slice(kms.keyArn.indexOf("/") + 1);
    const calls = () => decrypts(kms) + decrypts(hostKms) + upstreamCalls();
    const before = calls();
    // An alias or a bare id resolves in the account of the host's credentials: the trust policy never takes one.
    await expect(boot(file(kms.keyArn, await legitimate()), kms, kms.alias)).rejects.toMatchObject({ code: "ERR_TRUST_POLICY_INVALID" });
    await expect(boot(file(kms.keyArn, await legitimate()), kms, bareId)).rejects.toMatchObject({ code: "ERR_TRUST_POLICY_INVALID" });
    expect(calls()).toBe(before);
    // A file that names the host's key (or an alias) is asked for nothing under that name: KMS is
    // asked for the policy's key only (outside development the file's keyId must also equal it:
    // test/enclave/secrets/kms-source tests, dev: false).
    const h = await boot(file(hostKms.keyArn, await legitimate()));
    closers.push(() => h.close());
    const asked = kms.requests
      .filter((r) => r.target === "TrentService.Decrypt")
      .slice(-2)
      .map((r) => r.body.KeyId);
    expect(asked).toEqual([kms.keyArn, kms.keyArn]);
  });

  it("in development the file's keyId is not compared, but only the pinned key is asked for and accepted", async () => {
    const hostSecrets = { A_KEY: await seal(hostKms, "A_KEY", a.url, KEY_A), B_KEY: await seal(hostKms, "B_KEY", b.url, KEY_B) };
    // The host's KMS does not know the pinned key…
    await expect(boot(file(hostKms.keyArn, hostSecrets), hostKms)).rejects.toMatchObject({ code: "ERR_KMS_RELEASE_DENIED" });
    // …and a host KMS that answers anyway answers for its own key.
    hostKms.misbehave = "any-key-id";
    try {
      await expect(boot(file(hostKms.keyArn, hostSecrets), hostKms)).rejects.toMatchObject({ code: "ERR_KMS_KEY_MISMATCH" });
    } finally {
      hostKms.misbehave = "none";
    }
  });

  it("a secret a provider uses but the file lacks → ERR_SECRET_MISSING; entries no provider uses stay sealed", async () => {
    const good = await legitimate();
    await expect(boot(file(kms.keyArn, { A_KEY: good.A_KEY! }))).rejects.toMatchObject({
      code: "ERR_SECRET_MISSING",
      message: expect.stringContaining('B_KEY is used by provider "b"'),
    });
    const before = decrypts(kms);
    const h = await boot(file(kms.keyArn, { ...good, SPARE_KEY: await seal(kms, "SPARE_KEY", "https://elsewhere.example", "sk-spare") }));
    closers.push(() => h.close());
    expect(decrypts(kms) - before).toBe(2);
    expect(h.logs.join("\n")).toMatch(/"event":"secrets.unused".*"count":1/);
  });
});
