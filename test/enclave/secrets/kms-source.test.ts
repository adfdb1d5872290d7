import { createPublicKey } from "node:crypto";
import { DecryptCommand, EncryptCommand, KMSClient } from "@aws-sdk/client-kms";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { AttestationRequest, Attester } from "../../../attestation/attester.js";
import { createDevCa, type DevCa } from "../../../attestation/dev/dev-ca.js";
import { SimulatedNsm } from "../../../attestation/dev/simulated-nsm.js";
import { trustAnchorFromPem } from "../../../attestation/roots.js";
import { verifyAttestation } from "../../../attestation/verify.js";
import { createKmsClient, openSealedSecrets, type OpenSealedSecretsOptions } from "../../../enclave/secrets/kms-source.js";
import { providerSecretContext } from "../../../enclave/secrets/secret-context.js";
import { SealedSecretsError, type SealedSecretsErrorCode } from "../../../host/transport/codec/sealed-file.js";
import { startMockKms, type MockKms } from "../../../infra/dev/local-kms.js";

/**
 * The whole release: the operator seals with the real SDK's Encrypt against
 * the local KMS; the enclave (simulated NSM) opens the file with Decrypt +
 * Recipient; the mock verifies the document and enforces a PCR policy.
 */

const CANARY = "sk-CANARYKMSRELEASE7d1c0a9b";
const OTHER = "sk-ant-second-secret-value";
const now = new Date("2026-06-01T12:00:00Z");
const clock = (): Date => now;
const PCR0 = new Uint8Array(48).fill(0x11);
const PCR8 = new Uint8Array(48);

let ca: DevCa;
let nsm: SimulatedNsm;
let kms: MockKms;
const logged: string[] = [];

const sdkLogger = {
  debug: (...a: unknown[]) => logged.push(render(a)),
  info: (...a: unknown[]) => logged.push(render(a)),
  warn: (...a: unknown[]) => logged.push(render(a)),
  error: (...a: unknown[]) => logged.push(render(a)),
  trace: (...a: unknown[]) => logged.push(render(a)),
};

function render(value: unknown): string {
  try {
    return JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString("base64") : v));
  } catch {
    return String(value);
  }
}

function client(): KMSClient {
  return new KMSClient({ region: kms.region, endpoint: kms.endpoint, credentials: kms.credentials, logger: sdkLogger, maxAttempts: 1 });
}

/** The provider origin each test secret is bound to. */
const ORIGINS: Record<string, string> = {
  OPENAI_API_KEY: "https://api.openai.com",
  ANTHROPIC_API_KEY: "https://api.anthropic.com",
  A: "https://a.example",
  B: "https://b.example",
};

async function sealWithSdk(values: Record<string, string>, keyId = kms.keyArn, origins: Record<string, string> = ORIGINS): Promise<Uint8Array> {
  const operator = createKmsClient({ region: kms.region, endpoint: kms.endpoint, credentials: kms.credentials });
  const secrets: Record<string, string> = {};
  for (const [name, value] of Object.entries(values)) {
    const context = providerSecretContext(name, origins[name]!);
    const out = await operator.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from(value), EncryptionContext: { ...context } }));
    secrets[name] = Buffer.from(out.CiphertextBlob!).toString("base64");
  }
  operator.destroy();
  kms.requests.length = 0; // only the enclave's calls are looked at
  return new Uint8Array(Buffer.from(JSON.stringify({ version: 1, keyId, region: kms.region, secrets })));
}

/** What the trust policy would pass: the pinned ARN, every secret in the file with its provider's origin, production checks. */
function pinned(file: Uint8Array, extra: Partial<Pick<OpenSealedSecretsOptions, "keyArn" | "secrets" | "dev">> = {}) {
  let names: string[] = [];
  try {
    names = Object.keys((JSON.parse(Buffer.from(file).toString()) as { secrets?: Record<string, string> }).secrets ?? {});
  } catch {
    // a malformed file: the parser's code is what the test wants
  }
  return { file, keyArn: kms.keyArn, dev: false, secrets: names.map((name) => ({ name, origin: ORIGINS[name]! })), ...extra };
}

function encodings(s: string): string[] {
  const b = Buffer.from(s);
  return [s, b.toString("base64"), b.toString("hex")];
}

function expectNoCanary(text: string): void {
  for (const form of encodings(CANARY)) expect(text).not.toContain(form);
}

async function failure(promise: Promise<unknown>): Promise<SealedSecretsErrorCode> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(SealedSecretsError);
    const e = err as SealedSecretsError;
    expectNoCanary([String(e), e.message, e.stack ?? "", JSON.stringify(e), String((e as { cause?: unknown }).cause ?? "")].join("\n"));
    return e.code;
  }
  throw new Error("expected a rejection");
}

beforeAll(async () => {
  ca = await createDevCa({ now: clock });
  nsm = new SimulatedNsm({ ca, now: clock, pcrs: { 0: PCR0 } });
  kms = await startMockKms({ trustedRoot: trustAnchorFromPem(ca.rootPem, "development"), policy: { allowedPcrs: { 0: PCR0, 8: PCR8 } }, now: clock });
});

afterAll(async () => {
  await nsm.close();
  await kms.close();
});

afterEach(() => {
  kms.misbehave = "none";
  kms.policy = { allowedPcrs: { 0: PCR0, 8: PCR8 } };
  kms.requests.length = 0;
  vi.restoreAllMocks();
});

describe("openSealedSecrets against the local KMS", () => {
  it("releases every sealed secret to the attested enclave key", async () => {
    const file = await sealWithSdk({ OPENAI_API_KEY: CANARY, ANTHROPIC_API_KEY: OTHER });
    const requested: AttestationRequest[] = [];
    const attester: Attester = {
      kind: nsm.kind,
      attest: (r) => (requested.push(r), nsm.attest(r)),
      describePcr: (i) => nsm.describePcr(i),
      getRandom: (n) => nsm.getRandom(n),
      close: async () => {},
    };
    const kmsClient = client();
    kms.requests.length = 0;
    const source = await openSealedSecrets({ ...pinned(file), attester, kmsClient, now: clock });

    expect(source.names).toEqual(["OPENAI_API_KEY", "ANTHROPIC_API_KEY"]);
    expect(source.has("OPENAI_API_KEY")).toBe(true);
    expect(source.has("GEMINI_API_KEY")).toBe(false);
    expect(await source.get("OPENAI_API_KEY")).toBe(CANARY);
    expect(await source.get("ANTHROPIC_API_KEY")).toBe(OTHER);
    await expect(source.get("GEMINI_API_KEY")).rejects.toThrow();

    // One document for the boot, carrying the fresh recipient key.
    expect(requested).toHaveLength(1);
    const spki = requested[0]!.publicKey!;
    expect(createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" }).asymmetricKeyDetails?.modulusLength).toBe(2048);

    // What went over the wire: the KMS JSON 1.1 protocol, with Recipient.
    expect(kms.requests).toHaveLength(2);
    for (const req of kms.requests) {
      expect(req.target).toBe("TrentService.Decrypt");
      expect(req.contentType).toBe("application/x-amz-json-1.1");
      expect(req.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIAMOCKKMS000000000\/\d{8}\/us-east-1\/kms\/aws4_request/);
      expect(Object.keys(req.body).sort()).toEqual(["CiphertextBlob", "EncryptionAlgorithm", "EncryptionContext", "KeyId", "Recipient"]);
      expect(req.body.KeyId).toBe(kms.keyArn);
      const name = (req.body.EncryptionContext as Record<string, string>)["egw:secret"]!;
      expect(req.body.EncryptionContext).toEqual({ "egw:purpose": "provider-secret", "egw:secret": name, "egw:origin": ORIGINS[name] });
      expect(req.body.EncryptionAlgorithm).toBe("SYMMETRIC_DEFAULT");
      const recipient = req.body.Recipient as Record<string, string>;
      expect(recipient.KeyEncryptionAlgorithm).toBe("RSAES_OAEP_SHA_256");
      const doc = new Uint8Array(Buffer.from(recipient.AttestationDocument!, "base64"));
      const verified = await verifyAttestation(doc, {
        currentDate: now,
        expectedPcrs: { 0: PCR0 },
        publicKey: spki,
        trustedRoots: [trustAnchorFromPem(ca.rootPem, "development")],
      });
      expect(verified.document.publicKey).toEqual(spki);
    }
    // A second boot gets a different key.
    kms.requests.length = 0;
    await openSealedSecrets({ ...pinned(file), attester, kmsClient, now: clock });
    expect(requested[1]!.publicKey).not.toEqual(spki);
    kmsClient.destroy();
  });

  it("a file naming the key by alias: refused outside development; in development the pinned ARN is what KMS is asked for", async () => {
    const file = await sealWithSdk({ OPENAI_API_KEY: CANARY }, kms.alias);
    kms.requests.length = 0;
    expect(await failure(openSealedSecrets({ ...pinned(file), attester: nsm, kmsClient: client(), now: clock }))).toBe("ERR_KMS_KEY_MISMATCH");
    // The pin itself an alias (or a bare id): it resolves in the host's account.
    expect(await failure(openSealedSecrets({ ...pinned(file, { keyArn: kms.alias }), attester: nsm, kmsClient: client(), now: clock }))).toBe("ERR_KMS_KEY_ID");
    const bareId = kms.keyArn.slice(kms.keyArn.indexOf("/") + 1);
    expect(await failure(openSealedSecrets({ ...pinned(file, { keyArn: bareId }), attester: nsm, kmsClient: client(), now: clock }))).toBe("ERR_KMS_KEY_ID");
    expect(kms.requests).toHaveLength(0);
    const source = await openSealedSecrets({ ...pinned(file, { dev: true }), attester: nsm, kmsClient: client(), now: clock });
    expect(await source.get("OPENAI_API_KEY")).toBe(CANARY);
    expect(source.keyId).toBe(kms.keyArn);
    expect(kms.requests.map((r) => r.body.KeyId)).toEqual([kms.keyArn]);
  });

  it("the mock's policy denies Decrypt without Recipient, and returns Plaintext when allowed", async () => {
    const file = JSON.parse(Buffer.from(await sealWithSdk({ A: CANARY })).toString()) as { secrets: { A: string } };
    const blob = Buffer.from(file.secrets.A, "base64");
    const c = client();
    const EncryptionContext = { ...providerSecretContext("A", ORIGINS.A!) };
    await expect(c.send(new DecryptCommand({ CiphertextBlob: blob, KeyId: kms.keyArn, EncryptionContext }))).rejects.toMatchObject({ name: "AccessDeniedException" });
    kms.policy = { ...kms.policy, denyWithoutRecipient: false };
    const out = await c.send(new DecryptCommand({ CiphertextBlob: blob, KeyId: kms.keyArn, EncryptionContext }));
    expect(Buffer.from(out.Plaintext!).toString()).toBe(CANARY);
    expect(out.CiphertextForRecipient).toBeUndefined();
  });
});

describe("refusals", () => {
  it("a PCR the key policy does not allow → ERR_KMS_RELEASE_DENIED", async () => {
    const file = await sealWithSdk({ OPENAI_API_KEY: CANARY });
    kms.policy = { allowedPcrs: { 0: new Uint8Array(48).fill(0x22) } };
    const opening = openSealedSecrets({ ...pinned(file), attester: nsm, kmsClient: client(), now: clock });
    await expect(opening).rejects.toMatchObject({ message: expect.stringMatching(/OPENAI_API_KEY: AccessDeniedException \(HTTP 400\), request id /) });
    expect(await failure(opening)).toBe("ERR_KMS_RELEASE_DENIED");
  });

  it("a document from an untrusted root → ERR_KMS_RELEASE_DENIED", async () => {
    const file = await sealWithSdk({ OPENAI_API_KEY: CANARY });
    const strangerCa = await createDevCa({ now: clock });
    const stranger = new SimulatedNsm({ ca: strangerCa, now: clock, pcrs: { 0: PCR0 } });
    const opening = openSealedSecrets({ ...pinned(file), attester: stranger, kmsClient: client(), now: clock });
    await expect(opening).rejects.toMatchObject({ message: expect.stringContaining("ValidationException") });
    expect(await failure(opening)).toBe("ERR_KMS_RELEASE_DENIED");
    await stranger.close();
  });

  it("a failed release rejects the whole call, even when other secrets opened", async () => {
    const file = JSON.parse(Buffer.from(await sealWithSdk({ A: CANARY, B: OTHER })).toString()) as { secrets: Record<string, string> };
    file.secrets.B = Buffer.from("not a mock blob at all, tampered").toString("base64");
    const bytes = new Uint8Array(Buffer.from(JSON.stringify({ version: 1, keyId: kms.keyArn, region: kms.region, secrets: file.secrets })));
    expect(await failure(openSealedSecrets({ ...pinned(bytes), attester: nsm, kmsClient: client(), now: clock }))).toBe("ERR_KMS_RELEASE_DENIED");
  });

  it.each([
    ["plaintext-in-clear", "ERR_KMS_PLAINTEXT_EXPOSED"],
    ["plaintext-and-recipient", "ERR_KMS_PLAINTEXT_EXPOSED"],
    ["garbage-cfr", "ERR_KMS_RESPONSE"],
    ["no-cfr", "ERR_KMS_RESPONSE"],
    ["not-json", "ERR_KMS_RESPONSE"],
    ["server-error", "ERR_KMS_UNAVAILABLE"],
  ] as const)("%s → %s", async (mode, code) => {
    const file = await sealWithSdk({ OPENAI_API_KEY: CANARY });
    kms.misbehave = mode;
    expect(await failure(openSealedSecrets({ ...pinned(file), attester: nsm, kmsClient: client(), now: clock }))).toBe(code);
  });

  it("nothing listening → ERR_KMS_UNAVAILABLE", async () => {
    const file = await sealWithSdk({ OPENAI_API_KEY: CANARY });
    const dead = new KMSClient({ region: kms.region, endpoint: "http://127.0.0.1:1", credentials: kms.credentials, maxAttempts: 1 });
    expect(await failure(openSealedSecrets({ ...pinned(file), attester: nsm, kmsClient: dead, now: clock }))).toBe("ERR_KMS_UNAVAILABLE");
  });

  it("an attester that fails → ERR_KMS_ATTESTATION, and KMS is never called", async () => {
    const file = await sealWithSdk({ OPENAI_API_KEY: CANARY });
    kms.requests.length = 0;
    const broken: Attester = {
      ...nsm,
      kind: "simulated",
      attest: () => Promise.reject(new Error("nsm gone")),
      describePcr: (i) => nsm.describePcr(i),
      getRandom: (n) => nsm.getRandom(n),
      close: async () => {},
    };
    expect(await failure(openSealedSecrets({ ...pinned(file), attester: broken, kmsClient: client(), now: clock }))).toBe("ERR_KMS_ATTESTATION");
    expect(kms.requests).toHaveLength(0);
  });

  it("a malformed file → its parser code, before any attestation", async () => {
    const attest = vi.fn();
    const attester = { ...nsm, attest } as unknown as Attester;
    expect(await failure(openSealedSecrets({ ...pinned(new Uint8Array(Buffer.from("{}"))), attester, kmsClient: client(), now: clock }))).toBe("ERR_SEALED_FILE_MALFORMED");
    expect(attest).not.toHaveBeenCalled();
  });
});

describe("a hostile host's file and config (secrets bound to name and origin, under the pinned key)", () => {
  const decrypts = () => kms.requests.filter((r) => r.target === "TrentService.Decrypt");

  it("decrypts only the secrets providers use; the rest stay sealed and are counted", async () => {
    const file = await sealWithSdk({ OPENAI_API_KEY: CANARY, ANTHROPIC_API_KEY: OTHER });
    const source = await openSealedSecrets({
      ...pinned(file, { secrets: [{ name: "ANTHROPIC_API_KEY", origin: ORIGINS.ANTHROPIC_API_KEY! }] }),
      attester: nsm,
      kmsClient: client(),
      now: clock,
    });
    expect(source.names).toEqual(["ANTHROPIC_API_KEY"]);
    expect(source.unused).toBe(1);
    expect(decrypts()).toHaveLength(1);
  });

  it("a secret a provider uses but the file lacks → ERR_SECRET_MISSING, naming it, before any attestation or KMS call", async () => {
    const file = await sealWithSdk({ OPENAI_API_KEY: CANARY });
    const attest = vi.fn();
    const attester = { ...nsm, kind: "simulated", attest } as unknown as Attester;
    const opening = openSealedSecrets({
      ...pinned(file, { secrets: [{ name: "GEMINI_API_KEY", origin: "https://generativelanguage.googleapis.com" }] }),
      attester,
      kmsClient: client(),
      now: clock,
    });
    await expect(opening).rejects.toMatchObject({ code: "ERR_SECRET_MISSING", message: expect.stringContaining("GEMINI_API_KEY") });
    expect(attest).not.toHaveBeenCalled();
    expect(kms.requests).toHaveLength(0);
  });

  it("a ciphertext sealed for origin A, handed in for a provider at origin B → refused by KMS (ERR_KMS_RELEASE_DENIED)", async () => {
    const file = await sealWithSdk({ OPENAI_API_KEY: CANARY });
    const opening = openSealedSecrets({
      ...pinned(file, { secrets: [{ name: "OPENAI_API_KEY", origin: "https://evil.example" }] }),
      attester: nsm,
      kmsClient: client(),
      now: clock,
    });
    await expect(opening).rejects.toMatchObject({ code: "ERR_KMS_RELEASE_DENIED", message: expect.stringContaining("InvalidCiphertextException") });
    // The request named the origin the config gave, not the one it was sealed for.
    expect((decrypts()[0]!.body.EncryptionContext as Record<string, string>)["egw:origin"]).toBe("https://evil.example");
  });

  it("two providers' ciphertexts swapped in the file → refused", async () => {
    const file = JSON.parse(Buffer.from(await sealWithSdk({ OPENAI_API_KEY: CANARY, ANTHROPIC_API_KEY: OTHER })).toString()) as { secrets: Record<string, string> };
    const swapped = { OPENAI_API_KEY: file.secrets.ANTHROPIC_API_KEY!, ANTHROPIC_API_KEY: file.secrets.OPENAI_API_KEY! };
    const bytes = new Uint8Array(Buffer.from(JSON.stringify({ version: 1, keyId: kms.keyArn, region: kms.region, secrets: swapped })));
    expect(await failure(openSealedSecrets({ ...pinned(bytes), attester: nsm, kmsClient: client(), now: clock }))).toBe("ERR_KMS_RELEASE_DENIED");
  });

  it("the same value sealed without a context (a plain Encrypt) does not open", async () => {
    const operator = createKmsClient({ region: kms.region, endpoint: kms.endpoint, credentials: kms.credentials });
    const blob = (await operator.send(new EncryptCommand({ KeyId: kms.keyArn, Plaintext: Buffer.from(CANARY) }))).CiphertextBlob!;
    operator.destroy();
    const bytes = new Uint8Array(
      Buffer.from(JSON.stringify({ version: 1, keyId: kms.keyArn, region: kms.region, secrets: { OPENAI_API_KEY: Buffer.from(blob).toString("base64") } })),
    );
    expect(await failure(openSealedSecrets({ ...pinned(bytes), attester: nsm, kmsClient: client(), now: clock }))).toBe("ERR_KMS_RELEASE_DENIED");
  });

  it("a file sealed under a host-owned key (another account) → ERR_KMS_KEY_MISMATCH before any KMS call, even with the host's KMS", async () => {
    const hostKms = await startMockKms({ trustedRoot: trustAnchorFromPem(ca.rootPem, "development"), policy: { allowedPcrs: { 0: PCR0 } }, now: clock, account: "444455556666" });
    try {
      const operator = createKmsClient({ region: hostKms.region, endpoint: hostKms.endpoint, credentials: hostKms.credentials });
      const context = providerSecretContext("OPENAI_API_KEY", ORIGINS.OPENAI_API_KEY!);
      const blob = (await operator.send(new EncryptCommand({ KeyId: hostKms.keyArn, Plaintext: Buffer.from(CANARY), EncryptionContext: { ...context } }))).CiphertextBlob!;
      operator.destroy();
      hostKms.requests.length = 0;
      const bytes = new Uint8Array(
        Buffer.from(JSON.stringify({ version: 1, keyId: hostKms.keyArn, region: hostKms.region, secrets: { OPENAI_API_KEY: Buffer.from(blob).toString("base64") } })),
      );
      const hostClient = new KMSClient({ region: hostKms.region, endpoint: hostKms.endpoint, credentials: hostKms.credentials, maxAttempts: 1 });
      expect(await failure(openSealedSecrets({ ...pinned(bytes), attester: nsm, kmsClient: hostClient, now: clock }))).toBe("ERR_KMS_KEY_MISMATCH");
      expect(hostKms.requests).toHaveLength(0);
      // In development the file's keyId is not compared, but KMS is asked for the pinned key only:
      // the host's KMS does not know it, and no answer for another key is accepted.
      expect(await failure(openSealedSecrets({ ...pinned(bytes, { dev: true }), attester: nsm, kmsClient: hostClient, now: clock }))).toBe("ERR_KMS_RELEASE_DENIED");
      expect(hostKms.requests.map((r) => r.body.KeyId)).toEqual([kms.keyArn]);
      hostClient.destroy();
    } finally {
      await hostKms.close();
    }
  });

  it("a KMS answer for another key → ERR_KMS_KEY_MISMATCH, and the plaintext is not used", async () => {
    const file = await sealWithSdk({ OPENAI_API_KEY: CANARY });
    kms.misbehave = "foreign-key-id";
    expect(await failure(openSealedSecrets({ ...pinned(file), attester: nsm, kmsClient: client(), now: clock }))).toBe("ERR_KMS_KEY_MISMATCH");
  });

  it("an http origin outside development → ERR_SECRET_ORIGIN; one secret listed for two providers is a programming error", async () => {
    const file = await sealWithSdk({ OPENAI_API_KEY: CANARY });
    expect(
      await failure(
        openSealedSecrets({ ...pinned(file, { secrets: [{ name: "OPENAI_API_KEY", origin: "http://api.openai.com" }] }), attester: nsm, kmsClient: client(), now: clock }),
      ),
    ).toBe("ERR_SECRET_ORIGIN");
    const twice = [
      { name: "OPENAI_API_KEY", origin: "https://api.openai.com" },
      { name: "OPENAI_API_KEY", origin: "https://other.example" },
    ];
    await expect(openSealedSecrets({ ...pinned(file, { secrets: twice }), attester: nsm, kmsClient: client(), now: clock })).rejects.toBeInstanceOf(TypeError);
    expect(kms.requests).toHaveLength(0);
  });
});

describe("the canary", () => {
  it("never appears in console output, SDK logs or errors, on success or failure", async () => {
    const file = await sealWithSdk({ OPENAI_API_KEY: CANARY });
    const captured: string[] = [];
    for (const method of ["log", "info", "warn", "error", "debug", "trace"] as const) {
      vi.spyOn(console, method).mockImplementation((...a: unknown[]) => void captured.push(render(a)));
    }
    const write = (chunk: unknown): boolean => (captured.push(String(chunk)), true);
    vi.spyOn(process.stdout, "write").mockImplementation(write as typeof process.stdout.write);
    vi.spyOn(process.stderr, "write").mockImplementation(write as typeof process.stderr.write);
    logged.length = 0;

    const source = await openSealedSecrets({ ...pinned(file), attester: nsm, kmsClient: client(), now: clock });
    expect(await source.get("OPENAI_API_KEY")).toBe(CANARY);
    expectNoCanary(render(source));
    expectNoCanary(render(Object.entries(source)));
    for (const mode of ["plaintext-in-clear", "plaintext-and-recipient", "garbage-cfr"] as const) {
      kms.misbehave = mode;
      await failure(openSealedSecrets({ ...pinned(file), attester: nsm, kmsClient: client(), now: clock }));
    }
    vi.restoreAllMocks();
    expect(logged.length).toBeGreaterThan(0); // the SDK logger did see the calls
    expectNoCanary(logged.join("\n"));
    expectNoCanary(captured.join("\n"));
  });
});
