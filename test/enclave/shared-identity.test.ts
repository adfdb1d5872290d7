import { EncryptCommand, GenerateDataKeyCommand } from "@aws-sdk/client-kms";
import { afterAll, describe, expect, it } from "vitest";
import { decodeBinding } from "../../attestation/binding.js";
import { resolvePolicy } from "../../attestation/client/policy.js";
import { verifySavedExchange } from "../../attestation/client/offline.js";
import { createDevCa, type DevCa } from "../../attestation/dev/dev-ca.js";
import { SimulatedNsm } from "../../attestation/dev/simulated-nsm.js";
import { RECEIPT_HEADER, decodeReceipt } from "../../attestation/receipt.js";
import { trustAnchorFromPem, type TrustAnchor } from "../../attestation/roots.js";
import { verifyAttestation } from "../../attestation/verify.js";
import { IDENTITY_ENCRYPTION_CONTEXT, type IdentityKeys } from "../../enclave/secrets/identity-blob.js";
import { generateSealedIdentity, openSealedIdentity } from "../../enclave/secrets/identity-source.js";
import { createKmsClient } from "../../enclave/secrets/kms-source.js";
import type { SealedIdentityBlob } from "../../host/transport/codec/sealed-file.js";
import { startMockKms, type MockKms } from "../../infra/dev/local-kms.js";
import { CLIENT_TOKEN, configJson, startHarness, type Harness } from "../helpers/enclave-harness.js";

/**
 * One identity across replicas, and rotation with overlapping receipt
 * validity (issue: "Secrets only the measured enclave can open"). Every
 * enclave here is the real service on loopback with the simulated NSM; the
 * identity is made and opened through the local KMS with the real SDK.
 */
const PCR0 = new Uint8Array(48).fill(0x11); // the harness's simulated PCR0
const HOUR = 3600_000;
const DAY = 24 * HOUR;
// Injected times stay in the past: the test's TLS client checks the
// enclave's self-signed certificate (notBefore = boot time) on the wall clock.
const T0 = Date.now() - 3 * DAY;
let clock = T0;
const now = () => new Date(clock);

const closers: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

let ca: DevCa;
let anchor: TrustAnchor;
let kms: MockKms;

async function world() {
  if (kms) return;
  ca = await createDevCa({ now: () => new Date(T0 - HOUR) });
  anchor = trustAnchorFromPem(ca.rootPem, "development");
  kms = await startMockKms({ trustedRoot: anchor, policy: { allowedPcrs: { 0: PCR0 } }, now });
  closers.push(() => kms.close());
}

function kmsClient() {
  const client = createKmsClient({ region: kms.region, endpoint: kms.endpoint, credentials: kms.credentials });
  closers.push(async () => client.destroy());
  return client;
}

/** Runs inside the "measured enclave": the simulated NSM with the policy's PCR0. */
function enclaveAttester(pcr0 = PCR0) {
  return new SimulatedNsm({ ca, now, pcrs: { 0: pcr0 } });
}

/** The identity key pin, with production checks (a full key ARN; no debug-mode generator), and the development root. */
const pins = () => ({ keyArn: kms.keyArn, dev: false, trustedRoots: [anchor] });

function sealedFile(identity: SealedIdentityBlob): Uint8Array {
  const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
  return new Uint8Array(
    Buffer.from(
      JSON.stringify({
        version: 1,
        keyId: kms.keyArn,
        region: kms.region,
        secrets: {},
        identity: { dataKey: b64(identity.dataKey), iv: b64(identity.iv), sealed: b64(identity.sealed), attestation: b64(identity.attestation) },
      }),
    ),
  );
}

async function boot(file: Uint8Array): Promise<Harness> {
  const h = await startHarness({
    ca,
    now,
    config: configJson(),
    identity: { mode: "sealed", kmsKeyArn: kms.keyArn },
    sealedSecrets: { file, credentials: kms.credentials, endpoint: kms.endpoint },
  });
  closers.push(() => h.close());
  return h;
}

async function exchange(h: Harness, content: string) {
  const requestBody = new TextEncoder().encode(JSON.stringify({ model: "local", messages: [{ role: "user", content }] }));
  const res = await h.fetch(`${h.baseURL}/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" },
    body: requestBody,
  });
  const responseBody = new Uint8Array(await res.arrayBuffer());
  const header = res.headers.get(RECEIPT_HEADER);
  expect(res.status).toBe(200);
  return { requestBody, responseBody, receipt: new Uint8Array(Buffer.from(header!, "base64url")) };
}

async function document(h: Harness): Promise<Uint8Array> {
  return new Uint8Array(await (await h.fetch(`${h.baseURL}/attestation?nonce=${"ab".repeat(16)}`)).arrayBuffer());
}

const policy = () => resolvePolicy({ measurements: "any", trust: "any", trustedRoots: [anchor] });
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("shared identity", { timeout: 60_000 }, () => {
  let v1: { blob: SealedIdentityBlob; keys: IdentityKeys };

  it("is made inside the enclave: GenerateDataKey with a Recipient, no plaintext data key on the wire", async () => {
    await world();
    const before = kms.requests.length;
    v1 = await generateSealedIdentity({ attester: enclaveAttester(), kmsClient: kmsClient(), ...pins(), now, validityMs: 30 * DAY });
    const calls = kms.requests.slice(before);
    expect(calls.map((r) => r.target)).toEqual(["TrentService.GenerateDataKey"]);
    expect(calls[0]!.body).toMatchObject({ KeySpec: "AES_256", EncryptionContext: IDENTITY_ENCRYPTION_CONTEXT, Recipient: { KeyEncryptionAlgorithm: "RSAES_OAEP_SHA_256" } });
    expect(v1.keys.retired).toEqual([]);
    // The blob holds no key material in the clear.
    expect(Buffer.from(v1.blob.sealed).includes(Buffer.from(v1.keys.tlsPkcs8.subarray(-32)))).toBe(false);
    const reopened = await openSealedIdentity({ blob: v1.blob, attester: enclaveAttester(), kmsClient: kmsClient(), ...pins(), now });
    expect(hex(reopened.tlsPkcs8)).toBe(hex(v1.keys.tlsPkcs8));
    expect(hex(reopened.signing.pkcs8)).toBe(hex(v1.keys.signing.pkcs8));
  });

  it("cannot be made or opened outside a measured enclave", async () => {
    await world();
    const operator = kmsClient();
    // The operator may seal provider keys, but not under the identity context…
    await expect(
      operator.send(new EncryptCommand({ KeyId: kms.keyArn, Plaintext: Buffer.alloc(64, 1), EncryptionContext: { ...IDENTITY_ENCRYPTION_CONTEXT } })),
    ).rejects.toMatchObject({ name: "AccessDeniedException" });
    // …nor get a data key in the clear.
    await expect(operator.send(new GenerateDataKeyCommand({ KeyId: kms.keyArn, KeySpec: "AES_256", EncryptionContext: { ...IDENTITY_ENCRYPTION_CONTEXT } }))).rejects.toMatchObject(
      {
        name: "AccessDeniedException",
      },
    );
    // Another measurement does not accept it (its generator is not this image)…
    const other = enclaveAttester(new Uint8Array(48).fill(0x22));
    await expect(openSealedIdentity({ blob: v1.blob, attester: other, kmsClient: kmsClient(), ...pins(), now })).rejects.toMatchObject({ code: "ERR_IDENTITY_PROVENANCE" });
    // …and even when told to accept this generator (a rollout), KMS does not release it to a measurement the key policy does not admit.
    const generatorPcrs = [new Map([...(await Promise.all([0, 1, 2].map((i) => enclaveAttester().describePcr(i)))).map((d) => [d.index, d.data] as const)])];
    await expect(openSealedIdentity({ blob: v1.blob, attester: other, kmsClient: kmsClient(), ...pins(), generatorPcrs, now })).rejects.toMatchObject({
      code: "ERR_KMS_RELEASE_DENIED",
    });
  });

  it("a tampered blob is refused before KMS is asked: the generator attested another blob", async () => {
    await world();
    for (const field of ["sealed", "iv", "dataKey"] as const) {
      const bad = { ...v1.blob, [field]: Uint8Array.from(v1.blob[field], (b, i) => (i === 3 ? b ^ 1 : b)) };
      const before = kms.requests.length;
      await expect(openSealedIdentity({ blob: bad, attester: enclaveAttester(), kmsClient: kmsClient(), ...pins(), now })).rejects.toMatchObject({
        code: "ERR_IDENTITY_PROVENANCE",
        message: "sealed identity: the generator's attestation is for another blob",
      });
      expect(kms.requests.length).toBe(before);
    }
  });

  it("every replica booted from the same sealed file presents the same attested identity", async () => {
    await world();
    const file = sealedFile(v1.blob);
    const [a, b] = [await boot(file), await boot(file)];
    expect(hex(a.enclave.identity.tls.spkiSha256)).toBe(hex(b.enclave.identity.tls.spkiSha256));
    expect(hex(a.enclave.identity.receipt.publicSpkiDer)).toBe(hex(b.enclave.identity.receipt.publicSpkiDer));
    for (const h of [a, b]) {
      const verified = await verifyAttestation(await document(h), { currentDate: now(), expectedPcrs: "any", trustedRoots: [anchor] });
      const binding = decodeBinding(verified.document.userData);
      expect(binding.v).toBe(3);
      expect(binding.policySha256).toHaveLength(32);
      expect(hex(binding.tlsSpkiSha256)).toBe(hex(a.enclave.identity.tls.spkiSha256));
      expect(binding.receiptKeys!.map((k) => hex(k.spki))).toEqual([hex(verified.document.publicKey!)]);
      expect(binding.receiptKeys![0]).toMatchObject({ notBefore: v1.keys.signing.notBefore, notAfter: v1.keys.signing.notAfter });
    }
    // A receipt from replica A verifies against replica B's attestation.
    const ex = await exchange(a, "hello from a");
    const result = await verifySavedExchange({ ...ex, document: await document(b), policy: policy() });
    expect(result.steps.find((s) => s.step === "receipt-signature")!.detail).toContain("current receipt key");
    // No key material in the logs.
    const logs = [...a.logs, ...b.logs].join("\n");
    expect(logs).toContain("identity.released");
    for (const secret of [v1.keys.tlsPkcs8, v1.keys.signing.pkcs8]) {
      expect(logs).not.toContain(Buffer.from(secret).toString("base64").slice(-40));
      expect(logs).not.toContain(hex(secret).slice(-40));
    }
  });

  it("after rotation, old receipts still verify — inside the overlap, and against the documents of either identity", async () => {
    await world();
    clock = T0;
    const old = await boot(sealedFile(v1.blob));
    const before = await exchange(old, "before rotation");
    const oldDoc = await document(old);

    // Rotate an hour later with a day of overlap; the TLS key carries over.
    clock = T0 + HOUR;
    const previous = await openSealedIdentity({ blob: v1.blob, attester: enclaveAttester(), kmsClient: kmsClient(), ...pins(), now });
    const v2 = await generateSealedIdentity({ attester: enclaveAttester(), kmsClient: kmsClient(), ...pins(), now, validityMs: 30 * DAY, previous, overlapMs: DAY });
    expect(v2.keys.retired).toHaveLength(1);
    expect(v2.keys.retired[0]!.notAfter).toBe(clock + DAY);
    const fresh = await boot(sealedFile(v2.blob));
    expect(hex(fresh.enclave.identity.tls.spkiSha256)).toBe(hex(old.enclave.identity.tls.spkiSha256));
    expect(hex(fresh.enclave.identity.receipt.publicSpkiDer)).not.toBe(hex(old.enclave.identity.receipt.publicSpkiDer));
    const newDoc = await document(fresh);
    const binding = decodeBinding((await verifyAttestation(newDoc, { currentDate: now(), expectedPcrs: "any", trustedRoots: [anchor] })).document.userData);
    expect(binding.receiptKeys).toHaveLength(2);

    // During the rollout the old replica still answers, with the old key.
    clock = T0 + 2 * HOUR;
    const during = await exchange(old, "during rollout");
    const after = await exchange(fresh, "after rotation");

    const detail = async (ex: typeof before, doc: Uint8Array) =>
      (await verifySavedExchange({ ...ex, document: doc, policy: policy() })).steps.find((s) => s.step === "receipt-signature")!.detail;
    expect(await detail(before, newDoc)).toContain("retired receipt key");
    expect(await detail(during, newDoc)).toContain("retired receipt key");
    expect(await detail(after, newDoc)).toContain("current receipt key");
    expect(await detail(before, oldDoc)).toContain("current receipt key");
    // A receipt of the new key against the old document: that key is not attested there.
    await expect(verifySavedExchange({ ...after, document: oldDoc, policy: policy() })).rejects.toMatchObject({ code: "ERR_SIGNATURE_INVALID" });

    // Past the overlap, the old key's receipts no longer verify against the new identity.
    clock = T0 + HOUR + DAY + 1;
    const late = await exchange(old, "after the overlap");
    expect(decodeReceipt(late.receipt).claims.time).toBe(clock);
    await expect(verifySavedExchange({ ...late, document: newDoc, policy: policy(), at: new Date(T0 + HOUR + 60_000) })).rejects.toMatchObject({
      code: "ERR_RECEIPT_KEY_WINDOW",
    });
    clock = T0;
  });

  it("an emergency rotation (overlap 0) cuts the old key off at once; older receipts stay valid", async () => {
    await world();
    clock = T0 + 3 * HOUR;
    const old = await boot(sealedFile(v1.blob));
    const earlier = await exchange(old, "before the incident");
    clock = T0 + 4 * HOUR;
    const previous = await openSealedIdentity({ blob: v1.blob, attester: enclaveAttester(), kmsClient: kmsClient(), ...pins(), now });
    const v3 = await generateSealedIdentity({ attester: enclaveAttester(), kmsClient: kmsClient(), ...pins(), now, validityMs: 30 * DAY, previous, overlapMs: 0, rotateTls: true });
    const fresh = await boot(sealedFile(v3.blob));
    expect(hex(fresh.enclave.identity.tls.spkiSha256)).not.toBe(hex(old.enclave.identity.tls.spkiSha256));
    const newDoc = await document(fresh);
    clock = T0 + 4 * HOUR + 1000;
    const forgedLater = await exchange(old, "signed with the old key after the cut-off");
    await expect(verifySavedExchange({ ...forgedLater, document: newDoc, policy: policy() })).rejects.toMatchObject({ code: "ERR_RECEIPT_KEY_WINDOW" });
    const ok = await verifySavedExchange({ ...earlier, document: newDoc, policy: policy() });
    expect(ok.steps.find((s) => s.step === "receipt-signature")!.detail).toContain("retired receipt key");
    clock = T0;
  });

  it("refuses to boot with an expired signing key, and a replica stops serving when its key expires", async () => {
    await world();
    clock = T0;
    const short = await generateSealedIdentity({ attester: enclaveAttester(), kmsClient: kmsClient(), ...pins(), now, validityMs: 2 * HOUR });
    const h = await boot(sealedFile(short.blob));
    expect((await h.fetch(`${h.baseURL.replace(/\/v1$/, "")}/healthz`)).status).toBe(200);
    clock = T0 + 2 * HOUR;
    const res = await h.fetch(`${h.baseURL}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${CLIENT_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "local", messages: [{ role: "user", content: "x" }] }),
    });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("identity_expired");
    const health = await h.fetch(`${h.baseURL.replace(/\/v1$/, "")}/healthz`);
    expect(health.status).toBe(503);
    await expect(boot(sealedFile(short.blob))).rejects.toMatchObject({ code: "ERR_IDENTITY_EXPIRED" });
    clock = T0;
  });
});
