import { GenerateDataKeyCommand } from "@aws-sdk/client-kms";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeBinding } from "../../../attestation/binding.js";
import { encodeCbor } from "../../../attestation/cbor-encode.js";
import { createDevCa, type DevCa } from "../../../attestation/dev/dev-ca.js";
import { SimulatedNsm } from "../../../attestation/dev/simulated-nsm.js";
import { trustAnchorFromPem, type TrustAnchor } from "../../../attestation/roots.js";
import { IDENTITY_ENCRYPTION_CONTEXT, sealIdentity, type IdentityKeys } from "../../../enclave/secrets/identity-blob.js";
import { decodeIdentityClaims, encodeIdentityClaims, identityBlobSha256, identityKeyHashes, IDENTITY_ATTESTATION_PURPOSE } from "../../../enclave/secrets/identity-provenance.js";
import { generateSealedIdentity, nextIdentityKeys, openSealedIdentity } from "../../../enclave/secrets/identity-source.js";
import { createKmsClient } from "../../../enclave/secrets/kms-source.js";
import type { SealedIdentityBlob } from "../../../host/transport/codec/sealed-file.js";
import { startMockKms, type MockKms } from "../../../infra/dev/local-kms.js";
import { configJson, startHarness } from "../../helpers/enclave-harness.js";

/**
 * An identity the host cannot choose. The local KMS plays the deployment's
 * key (account 111122223333) and a host-owned key (444455556666); the
 * simulated NSM plays the measured enclave. The host may run a genuine
 * image under its own key, or build a blob offline with keys it knows, and
 * hand either to a replica: both must be refused, at generation and at open.
 */
const PCR0 = new Uint8Array(48).fill(0x11);
const DAY = 24 * 3600_000;
const now = () => new Date();
const closers: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close();
});

let ca: DevCa;
let anchor: TrustAnchor;
let kms: MockKms;
let hostKms: MockKms;

beforeAll(async () => {
  ca = await createDevCa({ now });
  anchor = trustAnchorFromPem(ca.rootPem, "development");
  kms = await startMockKms({ trustedRoot: anchor, policy: { allowedPcrs: { 0: PCR0 } }, now });
  // The host's key: its policy is the host's to write, so it hands out data keys in the clear too.
  hostKms = await startMockKms({ trustedRoot: anchor, policy: { allowedPcrs: { 0: PCR0 }, denyWithoutRecipient: false }, now, account: "444455556666" });
  closers.push(
    () => kms.close(),
    () => hostKms.close(),
  );
});

const enclave = (pcr0 = PCR0, withCa = ca) => new SimulatedNsm({ ca: withCa, now, pcrs: { 0: pcr0 } });
function client(k: MockKms) {
  const c = createKmsClient({ region: k.region, endpoint: k.endpoint, credentials: k.credentials });
  closers.push(async () => c.destroy());
  return c;
}
/** The replica's view: the deployment key pinned, production checks, the development root. */
const open = (blob: SealedIdentityBlob, via: MockKms = kms, extra: object = {}) =>
  openSealedIdentity({ blob, attester: enclave(), kmsClient: client(via), keyArn: kms.keyArn, dev: false, trustedRoots: [anchor], now, ...extra });
const dataKeyCalls = (k: MockKms) => k.requests.filter((r) => r.target === "TrentService.Decrypt").length;

/** A blob built offline: keys the host knows, sealed with a data key its own KMS gave it in the clear. */
async function offlineBlob(): Promise<{ keys: IdentityKeys; blob: Omit<SealedIdentityBlob, "attestation"> }> {
  const out = await client(hostKms).send(new GenerateDataKeyCommand({ KeyId: hostKms.keyArn, KeySpec: "AES_256", EncryptionContext: { ...IDENTITY_ENCRYPTION_CONTEXT } }));
  const keys = nextIdentityKeys({ now: Date.now(), validityMs: 30 * DAY });
  return { keys, blob: sealIdentity(keys, out.Plaintext!, out.CiphertextBlob!) };
}

/** The claims a genuine generator would attest for this blob and these keys. */
function claimsFor(keys: IdentityKeys, blob: Omit<SealedIdentityBlob, "attestation">, keyArn = kms.keyArn) {
  const h = identityKeyHashes(keys);
  return { publicKey: h.signingSpki, userData: encodeIdentityClaims({ ...h, blobSha256: identityBlobSha256(blob), keyArn }) };
}

describe("the legitimate path", { timeout: 60_000 }, () => {
  it("generates under the pinned key with an attestation binding keys, blob and key; opens; rotates with a new document", async () => {
    const v1 = await generateSealedIdentity({ attester: enclave(), kmsClient: client(kms), keyArn: kms.keyArn, dev: false, now, validityMs: 30 * DAY });
    expect(v1.blob.attestation.length).toBeGreaterThan(1000);
    const opened = await open(v1.blob);
    expect(Buffer.from(opened.signing.pkcs8).equals(Buffer.from(v1.keys.signing.pkcs8))).toBe(true);
    const v2 = await generateSealedIdentity({
      attester: enclave(),
      kmsClient: client(kms),
      keyArn: kms.keyArn,
      dev: false,
      now,
      validityMs: 30 * DAY,
      previous: opened,
      overlapMs: DAY,
    });
    expect(Buffer.from(v2.blob.attestation).equals(Buffer.from(v1.blob.attestation))).toBe(false);
    const rotated = await open(v2.blob);
    expect(rotated.retired).toHaveLength(1);
    // A later image accepts it only when told to (generatorPcrs), since its own PCRs differ.
    const next = enclave(new Uint8Array(48).fill(0x12));
    await expect(openSealedIdentity({ blob: v2.blob, attester: next, kmsClient: client(kms), keyArn: kms.keyArn, dev: false, trustedRoots: [anchor], now })).rejects.toMatchObject({
      code: "ERR_IDENTITY_PROVENANCE",
    });
  });
});

describe("an identity under the host's key", { timeout: 60_000 }, () => {
  it("is refused at generation: the pinned key is asked for, and an answer for another key is not used", async () => {
    // The host points the enclave at its own KMS: it does not hold the pinned key.
    await expect(generateSealedIdentity({ attester: enclave(), kmsClient: client(hostKms), keyArn: kms.keyArn, dev: false, now, validityMs: DAY })).rejects.toMatchObject({
      code: "ERR_KMS_RELEASE_DENIED",
    });
    // A host KMS that answers anyway answers for its own key.
    hostKms.misbehave = "any-key-id";
    try {
      await expect(generateSealedIdentity({ attester: enclave(), kmsClient: client(hostKms), keyArn: kms.keyArn, dev: false, now, validityMs: DAY })).rejects.toMatchObject({
        code: "ERR_KMS_KEY_MISMATCH",
      });
    } finally {
      hostKms.misbehave = "none";
    }
    // An alias or a bare id as the pin resolves in the host's account: refused outside development.
    for (const keyArn of [kms.alias, kms.keyArn.slice(kms.keyArn.indexOf("/") + 1)]) {
      await expect(generateSealedIdentity({ attester: enclave(), kmsClient: client(kms), keyArn, dev: false, now, validityMs: DAY })).rejects.toMatchObject({
        code: "ERR_KMS_KEY_ID",
      });
    }
  });

  it("is refused at open: a genuine image's blob made under the host's key names that key", async () => {
    // `egw host --generate-identity` with the host's key: a real enclave, a real document, the host's key.
    const theirs = await generateSealedIdentity({ attester: enclave(), kmsClient: client(hostKms), keyArn: hostKms.keyArn, dev: false, now, validityMs: DAY });
    const before = dataKeyCalls(hostKms) + dataKeyCalls(kms);
    await expect(open(theirs.blob, hostKms)).rejects.toMatchObject({ code: "ERR_IDENTITY_PROVENANCE", message: expect.stringContaining("another KMS key") });
    expect(dataKeyCalls(hostKms) + dataKeyCalls(kms)).toBe(before);
    // Even if the host's KMS answers for the pinned key's name, the document already said no.
    hostKms.misbehave = "any-key-id";
    try {
      await expect(open(theirs.blob, hostKms)).rejects.toMatchObject({ code: "ERR_IDENTITY_PROVENANCE" });
    } finally {
      hostKms.misbehave = "none";
    }
  });
});

describe("a blob made offline", { timeout: 60_000 }, () => {
  it("with no attestation document → ERR_IDENTITY_PROVENANCE, before KMS is asked", async () => {
    const { blob } = await offlineBlob();
    await expect(open({ ...blob, attestation: new Uint8Array(0) }, hostKms)).rejects.toMatchObject({ code: "ERR_IDENTITY_PROVENANCE" });
    await expect(open({ ...blob, attestation: new Uint8Array(64).fill(7) }, hostKms)).rejects.toMatchObject({ code: "ERR_IDENTITY_PROVENANCE" });
    expect(dataKeyCalls(hostKms)).toBe(0);
  });

  it("with a forged document (right PCRs and claims, signed under a CA of the host's) → refused", async () => {
    const { keys, blob } = await offlineBlob();
    const forger = enclave(PCR0, await createDevCa({ now }));
    const attestation = await forger.attest(claimsFor(keys, blob));
    await expect(open({ ...blob, attestation }, hostKms)).rejects.toMatchObject({ code: "ERR_IDENTITY_PROVENANCE", message: expect.stringContaining("does not verify") });
  });

  it("with a genuine document from another image (foreign PCRs) → refused", async () => {
    const { keys, blob } = await offlineBlob();
    const attestation = await enclave(new Uint8Array(48).fill(0x33)).attest(claimsFor(keys, blob));
    await expect(open({ ...blob, attestation }, hostKms)).rejects.toMatchObject({ code: "ERR_IDENTITY_PROVENANCE", message: expect.stringContaining("PCR0..2") });
  });

  it("with a document of the right image but another purpose (the serving channel binding, or a near-miss claim map) → refused", async () => {
    const { keys, blob } = await offlineBlob();
    const h = identityKeyHashes(keys);
    // What GET /v1/attestation would hand anyone: the serving map, with the signing key as public_key.
    const binding = encodeBinding({ tlsSpkiSha256: h.tlsSpkiSha256, configSha256: new Uint8Array(32), receiptKeys: [{ spki: h.signingSpki, notBefore: 1, notAfter: 2 }] });
    const claims = claimsFor(keys, blob);
    const wrongPurpose = encodeCbor(
      new Map<string, unknown>([
        ["purpose", "egw-identity-v0"],
        ["tls_spki_sha256", Buffer.from(h.tlsSpkiSha256)],
        ["receipt_keys_sha256", Buffer.from(h.receiptKeysSha256)],
        ["blob_sha256", Buffer.from(identityBlobSha256(blob))],
        ["key_arn", kms.keyArn],
      ]),
    );
    for (const userData of [binding, wrongPurpose]) {
      const attestation = await enclave().attest({ publicKey: claims.publicKey, userData });
      await expect(open({ ...blob, attestation }, hostKms)).rejects.toMatchObject({ code: "ERR_IDENTITY_PROVENANCE" });
    }
    const noUserData = await enclave().attest({ publicKey: claims.publicKey });
    await expect(open({ ...blob, attestation: noUserData }, hostKms)).rejects.toMatchObject({ code: "ERR_IDENTITY_PROVENANCE" });
  });

  it("with a genuine document for another blob, or attested keys that are not the blob's → refused", async () => {
    const { keys, blob } = await offlineBlob();
    const other = await offlineBlob();
    const forOther = await enclave().attest(claimsFor(keys, other.blob));
    await expect(open({ ...blob, attestation: forOther }, hostKms)).rejects.toMatchObject({ code: "ERR_IDENTITY_PROVENANCE", message: expect.stringContaining("another blob") });

    // Even with a data key of the pinned key in hand (a key policy that once leaked one), a document that
    // attests other keys than the blob holds fails once the blob is opened, before the keys are used.
    kms.policy = { ...kms.policy, denyWithoutRecipient: false };
    let leaked;
    try {
      leaked = await client(kms).send(new GenerateDataKeyCommand({ KeyId: kms.keyArn, KeySpec: "AES_256", EncryptionContext: { ...IDENTITY_ENCRYPTION_CONTEXT } }));
    } finally {
      kms.policy = { ...kms.policy, denyWithoutRecipient: true };
    }
    const sealed = sealIdentity(keys, leaked.Plaintext!, leaked.CiphertextBlob!);
    const claims = claimsFor(other.keys, sealed); // the blob's hash, another identity's key hashes
    const attestation = await enclave().attest({ publicKey: claimsFor(keys, sealed).publicKey, userData: claims.userData });
    await expect(open({ ...sealed, attestation })).rejects.toMatchObject({ code: "ERR_IDENTITY_PROVENANCE", message: expect.stringContaining("TLS key is not") });
    const wrongPublicKey = await enclave().attest({ publicKey: claims.publicKey, userData: claimsFor(keys, sealed).userData });
    await expect(open({ ...sealed, attestation: wrongPublicKey })).rejects.toMatchObject({ code: "ERR_IDENTITY_PROVENANCE", message: expect.stringContaining("public_key") });
    // The same blob with an honest document opens: the refusals above are the claims, nothing else.
    const honest = await enclave().attest(claimsFor(keys, sealed));
    expect((await open({ ...sealed, attestation: honest })).signing.notAfter).toBe(keys.signing.notAfter);
  });

  it("a debug-mode generator is refused unless in development", async () => {
    const zero = new Uint8Array(48);
    const { keys, blob } = await offlineBlob();
    const debug = new SimulatedNsm({ ca, now, pcrs: { 0: zero, 1: zero, 2: zero } });
    const attestation = await debug.attest(claimsFor(keys, blob));
    const generatorPcrs = [
      new Map([
        [0, zero],
        [1, zero],
        [2, zero],
      ]),
    ];
    await expect(open({ ...blob, attestation }, hostKms, { generatorPcrs })).rejects.toMatchObject({
      code: "ERR_IDENTITY_PROVENANCE",
      message: expect.stringContaining("ERR_DEBUG_MODE"),
    });
    // In development the document passes; the host's data key still does not open under the pinned key.
    await expect(open({ ...blob, attestation }, kms, { generatorPcrs, dev: true })).rejects.toMatchObject({ code: "ERR_KMS_RELEASE_DENIED" });
  });

  it("a replica booted with it stops (ERR_IDENTITY_PROVENANCE)", async () => {
    const { keys, blob } = await offlineBlob();
    const attestation = await enclave(PCR0, await createDevCa({ now })).attest(claimsFor(keys, blob));
    const b64 = (x: Uint8Array) => Buffer.from(x).toString("base64");
    const file = new Uint8Array(
      Buffer.from(
        JSON.stringify({
          version: 1,
          keyId: kms.keyArn,
          region: kms.region,
          secrets: {},
          identity: { dataKey: b64(blob.dataKey), iv: b64(blob.iv), sealed: b64(blob.sealed), attestation: b64(attestation) },
        }),
      ),
    );
    await expect(
      startHarness({
        ca,
        now,
        config: configJson(),
        identity: { mode: "sealed", kmsKeyArn: kms.keyArn },
        sealedSecrets: { file, credentials: kms.credentials, endpoint: kms.endpoint },
      }),
    ).rejects.toMatchObject({ code: "ERR_IDENTITY_PROVENANCE" });
  });
});

describe("the claim map", () => {
  it("decodes only its one encoding", () => {
    const claims = {
      tlsSpkiSha256: new Uint8Array(32).fill(1),
      receiptKeysSha256: new Uint8Array(32).fill(2),
      blobSha256: new Uint8Array(32).fill(3),
      keyArn: "arn:aws:kms:us-east-1:111122223333:key/x",
    };
    const bytes = encodeIdentityClaims(claims);
    expect(decodeIdentityClaims(bytes)).toEqual(claims);
    const map = (entries: [string, unknown][]) => encodeCbor(new Map(entries));
    const base: [string, unknown][] = [
      ["purpose", IDENTITY_ATTESTATION_PURPOSE],
      ["tls_spki_sha256", Buffer.alloc(32, 1)],
      ["receipt_keys_sha256", Buffer.alloc(32, 2)],
      ["blob_sha256", Buffer.alloc(32, 3)],
      ["key_arn", claims.keyArn],
    ];
    const bad = {
      "keys reordered": map([base[1]!, base[0]!, ...base.slice(2)]),
      "an extra key": map([...base, ["x", 1]]),
      "a missing key": map(base.slice(0, 4)),
      "a short hash": map([base[0]!, ["tls_spki_sha256", Buffer.alloc(31)], ...base.slice(2)]),
      "an indefinite-length map": Uint8Array.from([0xbf, ...bytes.subarray(1), 0xff]),
      "not CBOR": Uint8Array.of(0xff),
    };
    for (const [what, b] of Object.entries(bad)) expect(() => decodeIdentityClaims(b), what).toThrow(expect.objectContaining({ code: "ERR_IDENTITY_PROVENANCE" }));
    expect(() => decodeIdentityClaims(null)).toThrow(expect.objectContaining({ code: "ERR_IDENTITY_PROVENANCE" }));
  });
});
