/**
 * The detached manifest signature (attestation/manifest/signature.ts):
 * the format checked with cbor-x and node:crypto directly rather than with
 * our own encoder, one changed byte anywhere refused, foreign keys refused,
 * and loadPolicyFile failing closed when a key is pinned.
 */
import { createHash, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { Decoder, Encoder, Tag } from "cbor-x";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MANIFEST_CONTENT_TYPE, verifyManifestSignature } from "../../../attestation/manifest/signature.js";
import { loadPolicyFile } from "../../../attestation/client/policy.js";
import { signManifest } from "../../../attestation/manifest/sign.js";
import { manifestJson, removeTempDirs, tempDir } from "../client/helpers.js";

afterAll(removeTempDirs);

const p384 = () => generateKeyPairSync("ec", { namedCurve: "P-384" });
const spkiOf = (key: KeyObject) => new Uint8Array((key.type === "private" ? createPublicKey(key) : key).export({ type: "spki", format: "der" }));
const sha256 = (b: Uint8Array) => new Uint8Array(createHash("sha256").update(b).digest());

// An encoder/decoder that owes nothing to attestation/cbor-*.ts.
const cbor = new Encoder({ mapsAsObjects: false, useRecords: false, tagUint8Array: false, variableMapSize: true } as ConstructorParameters<typeof Encoder>[0]);
const decoder = new Decoder({ mapsAsObjects: false, useRecords: false } as ConstructorParameters<typeof Decoder>[0]);
const enc = (v: unknown) => new Uint8Array(cbor.encode(v));

/** A COSE_Sign1 built by hand per RFC 9052, with every part overridable. */
function handMade(
  manifest: Uint8Array,
  signer: KeyObject,
  o: { header?: Map<number, unknown>; unprotected?: Map<unknown, unknown>; payload?: Uint8Array | null; tag?: number | null; alterSig?: (s: Uint8Array) => Uint8Array } = {},
): Uint8Array {
  const spki = spkiOf(signer);
  const header =
    o.header ??
    new Map<number, unknown>([
      [1, -35],
      [3, MANIFEST_CONTENT_TYPE],
      [4, sha256(spki)],
      [-65537, spki],
    ]);
  const protectedBytes = enc(header);
  const toBeSigned = enc(["Signature1", protectedBytes, new Uint8Array(0), manifest]);
  let signature: Uint8Array = new Uint8Array(sign("sha384", toBeSigned, { key: signer, dsaEncoding: "ieee-p1363" }));
  if (o.alterSig) signature = o.alterSig(signature);
  const body = [protectedBytes, o.unprotected ?? new Map(), o.payload === undefined ? null : o.payload, signature];
  return enc(o.tag === null ? body : new Tag(body, o.tag ?? 18));
}

let key: ReturnType<typeof p384>;
let pin: Uint8Array;
const manifest = new TextEncoder().encode(`${manifestJson({ label: "egw 0.1.0" })}\n`);
let sig: Uint8Array;

beforeAll(async () => {
  key = p384();
  pin = sha256(spkiOf(key.publicKey));
  sig = (await signManifest(manifest, key.privateKey)).signature;
});

const refused = (p: Promise<unknown>, message?: RegExp) =>
  expect(p).rejects.toMatchObject({ code: "ERR_MANIFEST_SIGNATURE", action: "reject", ...(message && { message: expect.stringMatching(message) }) });

describe("manifest signature format", () => {
  it("is a tagged COSE_Sign1 with a detached payload, as documented, verifiable with plain cbor-x and node:crypto", () => {
    const tagged = decoder.decode(sig) as Tag;
    expect(tagged).toBeInstanceOf(Tag);
    expect(tagged.tag).toBe(18);
    const [protectedBytes, unprotected, payload, signature] = tagged.value as [Uint8Array, Map<unknown, unknown>, unknown, Uint8Array];
    expect(unprotected).toEqual(new Map());
    expect(payload).toBeNull();
    expect(signature.length).toBe(96);
    const header = decoder.decode(protectedBytes) as Map<number, unknown>;
    expect([...header.keys()]).toEqual([1, 3, 4, -65537]); // RFC 8949 §4.2.1 order
    expect(header.get(1)).toBe(-35);
    expect(header.get(3)).toBe(MANIFEST_CONTENT_TYPE);
    expect(new Uint8Array(header.get(4) as Uint8Array)).toEqual(pin);
    expect(new Uint8Array(header.get(-65537) as Uint8Array)).toEqual(spkiOf(key.publicKey));
    // -65537 is major type 1 with a 4-byte argument 65536.
    expect(Buffer.from(protectedBytes).includes(Buffer.from([0x3a, 0x00, 0x01, 0x00, 0x00]))).toBe(true);
    const toBeSigned = enc(["Signature1", protectedBytes, new Uint8Array(0), manifest]);
    expect(verify("sha384", toBeSigned, { key: key.publicKey, dsaEncoding: "ieee-p1363" }, signature)).toBe(true);
  });

  it("verifies a signature made by hand per RFC 9052 (so other tools can produce one)", async () => {
    await expect(verifyManifestSignature(manifest, handMade(manifest, key.privateKey), { spkiSha256: pin })).resolves.toMatchObject({ keyId: Buffer.from(pin).toString("hex") });
  });
});

describe("verifyManifestSignature", () => {
  it("round trip: sign, then verify with the pin", async () => {
    const r = await verifyManifestSignature(manifest, sig, { spkiSha256: pin });
    expect(r.keyId).toBe(Buffer.from(pin).toString("hex"));
    expect(r.spki).toEqual(spkiOf(key.publicKey));
  });

  it("refuses one flipped byte anywhere in the manifest", async () => {
    for (let i = 0; i < manifest.length; i++) {
      const bad = new Uint8Array(manifest);
      bad[i]! ^= 0x01;
      await refused(verifyManifestSignature(bad, sig, { spkiSha256: pin }), /does not verify/);
    }
    // A trailing newline added or removed is a different file too.
    await refused(verifyManifestSignature(manifest.subarray(0, -1), sig, { spkiSha256: pin }));
    await refused(verifyManifestSignature(new Uint8Array([...manifest, 0x0a]), sig, { spkiSha256: pin }));
  });

  it("refuses one flipped byte anywhere in the signature file", async () => {
    for (let i = 0; i < sig.length; i++) {
      const bad = new Uint8Array(sig);
      bad[i]! ^= 0x01;
      await refused(verifyManifestSignature(manifest, bad, { spkiSha256: pin }));
    }
  });

  it("refuses a valid signature by another key, and another key posing under the pinned kid", async () => {
    const other = p384();
    const foreign = (await signManifest(manifest, other.privateKey)).signature;
    await refused(verifyManifestSignature(manifest, foreign, { spkiSha256: pin }), /not by the pinned key/);
    // The pinned key and kid in the header, the signature by another key.
    const posing = handMade(manifest, other.privateKey, {
      header: new Map<number, unknown>([
        [1, -35],
        [3, MANIFEST_CONTENT_TYPE],
        [4, pin],
        [-65537, spkiOf(key.publicKey)],
      ]),
    });
    await refused(verifyManifestSignature(manifest, posing, { spkiSha256: pin }), /does not verify/);
    // Another key carried under the pinned kid.
    const mismatched = handMade(manifest, other.privateKey, {
      header: new Map<number, unknown>([
        [1, -35],
        [3, MANIFEST_CONTENT_TYPE],
        [4, pin],
        [-65537, spkiOf(other.publicKey)],
      ]),
    });
    await refused(verifyManifestSignature(manifest, mismatched, { spkiSha256: pin }), /kid is not the SHA-256/);
  });

  it("refuses every other shape: one change per case", async () => {
    const spki = spkiOf(key.publicKey);
    const header = (changes: [number, unknown][], drop: number[] = []) => {
      const m = new Map<number, unknown>([
        [1, -35],
        [3, MANIFEST_CONTENT_TYPE],
        [4, pin],
        [-65537, spki],
      ]);
      for (const d of drop) m.delete(d);
      for (const [k, v] of changes) m.set(k, v);
      return m;
    };
    const cases: [string, Uint8Array, RegExp][] = [
      ["untagged", handMade(manifest, key.privateKey, { tag: null }), /tagged 18/],
      ["tag 17 (COSE_Mac0)", handMade(manifest, key.privateKey, { tag: 17 }), /tag 17/],
      ["embedded payload", handMade(manifest, key.privateKey, { payload: manifest }), /payload must be nil/],
      ["unprotected header", handMade(manifest, key.privateKey, { unprotected: new Map([[4, pin]]) }), /unprotected/],
      ["alg ES256", handMade(manifest, key.privateKey, { header: header([[1, -7]]) }), /alg -7/],
      ["alg EdDSA", handMade(manifest, key.privateKey, { header: header([[1, -8]]) }), /alg -8/],
      ["no content type", handMade(manifest, key.privateKey, { header: header([], [3]) }), /exactly the labels/],
      ["other content type", handMade(manifest, key.privateKey, { header: header([[3, "application/json"]]) }), /content type/],
      ["crit label", handMade(manifest, key.privateKey, { header: header([[2, [4]]]) }), /exactly the labels/],
      ["kid of 31 bytes", handMade(manifest, key.privateKey, { header: header([[4, pin.subarray(1)]]) }), /kid must be 32 bytes/],
      ["no key", handMade(manifest, key.privateKey, { header: header([], [-65537]) }), /exactly the labels/],
      ["first byte of r altered", handMade(manifest, key.privateKey, { alterSig: (s) => new Uint8Array([s[0]! ^ 0x01, ...s.subarray(1)]) }), /does not verify/],
      ["short signature", handMade(manifest, key.privateKey, { alterSig: (s) => s.subarray(0, 95) }), /96 bytes/],
      ["trailing byte", new Uint8Array([...sig, 0]), /CBOR/],
      ["too large", new Uint8Array(5000), /at most 4096/],
      ["empty", new Uint8Array(0), /CBOR/],
    ];
    for (const [name, bytes, message] of cases) {
      await expect(verifyManifestSignature(manifest, bytes, { spkiSha256: pin }), name).rejects.toMatchObject({
        code: "ERR_MANIFEST_SIGNATURE",
        message: expect.stringMatching(message),
      });
    }
  });

  it("refuses keys that are not P-384, even when pinned", async () => {
    for (const pair of [generateKeyPairSync("ec", { namedCurve: "P-256" }), generateKeyPairSync("ed25519")]) {
      const spki = spkiOf(pair.publicKey);
      const header = new Map<number, unknown>([
        [1, -35],
        [3, MANIFEST_CONTENT_TYPE],
        [4, sha256(spki)],
        [-65537, spki],
      ]);
      const protectedBytes = enc(header);
      const bytes = enc(new Tag([protectedBytes, new Map(), null, new Uint8Array(96)], 18));
      await refused(verifyManifestSignature(manifest, bytes, { spkiSha256: sha256(spki) }), /P-384/);
    }
  });

  it("a pin that is not 32 bytes is a policy error", async () => {
    await expect(verifyManifestSignature(manifest, sig, { spkiSha256: pin.subarray(1) })).rejects.toMatchObject({ code: "ERR_POLICY_INVALID" });
    await expect(verifyManifestSignature(manifest, sig, undefined as never)).rejects.toMatchObject({ code: "ERR_POLICY_INVALID" });
  });

  it("any junk as a signature file is ERR_MANIFEST_SIGNATURE, never another error", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), async (junk) => {
        await expect(verifyManifestSignature(manifest, junk, { spkiSha256: pin })).rejects.toMatchObject({ code: "ERR_MANIFEST_SIGNATURE" });
      }),
      { numRuns: 200 },
    );
  });
});

describe("loadPolicyFile with a pinned signing key", () => {
  const now = () => new Date();
  let dir: string;
  const file = (name: string) => path.join(dir, name);
  beforeAll(() => {
    dir = tempDir();
    fs.writeFileSync(file("m.json"), manifest);
    fs.writeFileSync(file("m.json.sig"), sig);
  });

  it("accepts the signed manifest and says by which key", async () => {
    const loaded = await loadPolicyFile(file("m.json"), { now, signedBy: { spkiSha256: pin } });
    expect(loaded.signature?.keyId).toBe(Buffer.from(pin).toString("hex"));
    expect(loaded.manifest.measurements[0]!.label).toBe("egw 0.1.0");
  });

  it("reads the signature from signatureFile when given", async () => {
    fs.writeFileSync(file("published.cose"), sig);
    fs.copyFileSync(file("m.json"), file("alone.json"));
    await expect(loadPolicyFile(file("alone.json"), { now, signedBy: { spkiSha256: pin, signatureFile: file("published.cose") } })).resolves.toBeTruthy();
  });

  it("fails closed: missing signature, wrong key, tampered manifest, tampered signature", async () => {
    fs.copyFileSync(file("m.json"), file("unsigned.json"));
    await refused(loadPolicyFile(file("unsigned.json"), { now, signedBy: { spkiSha256: pin } }), /m?unsigned\.json\.sig: cannot read \(ENOENT\).*not used without its signature/);
    await refused(loadPolicyFile(file("m.json"), { now, signedBy: { spkiSha256: sha256(spkiOf(p384().publicKey)) } }), /not by the pinned key/);

    const tampered = Buffer.from(manifest).toString("utf8").replace("egw 0.1.0", "egw 0.1.1");
    fs.writeFileSync(file("t.json"), tampered);
    fs.writeFileSync(file("t.json.sig"), sig);
    await refused(loadPolicyFile(file("t.json"), { now, signedBy: { spkiSha256: pin } }), /does not verify/);

    const badSig = new Uint8Array(sig);
    badSig[badSig.length - 1]! ^= 0x80;
    fs.writeFileSync(file("s.json"), manifest);
    fs.writeFileSync(file("s.json.sig"), badSig);
    await refused(loadPolicyFile(file("s.json"), { now, signedBy: { spkiSha256: pin } }), /does not verify/);

    fs.writeFileSync(file("big.json"), manifest);
    fs.writeFileSync(file("big.json.sig"), new Uint8Array(4097));
    await refused(loadPolicyFile(file("big.json"), { now, signedBy: { spkiSha256: pin } }), /too large/);
  });

  it("a signing-key option that is present but unusable is refused, not skipped", async () => {
    await expect(loadPolicyFile(file("m.json"), { now, signedBy: undefined })).rejects.toMatchObject({ code: "ERR_POLICY_INVALID" });
    await expect(loadPolicyFile(file("m.json"), { now, signedBy: { spkiSha256: new Uint8Array(31) } })).rejects.toMatchObject({ code: "ERR_POLICY_INVALID" });
    await expect(loadPolicyFile(file("m.json"), { now, signedBy: { spkiSha256: pin, signatureFile: "" } })).rejects.toMatchObject({ code: "ERR_POLICY_INVALID" });
  });

  it("without a pin, a manifest loads as before, whatever lies beside it", async () => {
    fs.writeFileSync(file("junk.json"), manifest);
    fs.writeFileSync(file("junk.json.sig"), "not a signature");
    const loaded = await loadPolicyFile(file("junk.json"), { now });
    expect(loaded.signature).toBeUndefined();
    expect(loaded.manifest.measurements).toHaveLength(1);
  });
});
