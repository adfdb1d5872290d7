import { generateKeyPairSync, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { decodeBinding, encodeBinding } from "../../../attestation/binding.js";
import { encodeCbor } from "../../../attestation/cbor-encode.js";
import { RECEIPT_HEADER, signReceipt, sha256, verifyReceiptWithKeys, type ReceiptClaims } from "../../../attestation/receipt.js";
import { decodeIdentity, encodeIdentity, openIdentity, sealIdentity, signingSpki, type IdentityKeys } from "../../../enclave/secrets/identity-blob.js";
import { nextIdentityKeys } from "../../../enclave/secrets/identity-source.js";
import { parseSealedFile } from "../../../host/transport/codec/sealed-file.js";

const p256 = () => new Uint8Array(generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey.export({ type: "pkcs8", format: "der" }));
const T = 1_800_000_000_000;
// Times above 2^32 must be bigint for cbor-x to write integers (see attestation/cbor-encode.ts).
const B = (n: number) => BigInt(n);

function keys(): IdentityKeys {
  return nextIdentityKeys({ now: T, validityMs: 1000 });
}

describe("sealed identity format", () => {
  it("round-trips through seal and open, and the data key is required", () => {
    const k = keys();
    const dataKey = randomBytes(32);
    const blob = sealIdentity(k, dataKey, Uint8Array.of(1, 2, 3));
    const back = openIdentity(blob, dataKey);
    expect(Buffer.from(back.signing.pkcs8).equals(Buffer.from(k.signing.pkcs8))).toBe(true);
    expect(() => openIdentity(blob, randomBytes(32))).toThrow(expect.objectContaining({ code: "ERR_IDENTITY_MALFORMED" }));
    expect(() => openIdentity({ ...blob, sealed: blob.sealed.subarray(0, 10) }, dataKey)).toThrow(expect.objectContaining({ code: "ERR_IDENTITY_MALFORMED" }));
  });

  it("refuses malformed plaintexts with ERR_IDENTITY_MALFORMED", () => {
    const k = keys();
    const good = encodeIdentity(k);
    const map = (entries: [string, unknown][]) => new Map<string, unknown>(entries);
    const base: [string, unknown][] = [
      ["v", 1],
      ["created", B(T)],
      ["tls", Buffer.from(k.tlsPkcs8)],
      [
        "signing",
        map([
          ["pkcs8", Buffer.from(k.signing.pkcs8)],
          ["nbf", B(T)],
          ["exp", B(T + 1)],
        ]),
      ],
      ["retired", []],
    ];
    expect(() => decodeIdentity(encodeCbor(map(base)))).not.toThrow();
    const cases: [string, Uint8Array][] = [
      ["not CBOR", Uint8Array.of(0xff)],
      ["trailing byte", Uint8Array.of(...good, 0)],
      ["version 2", encodeCbor(map(base.map(([key, v]) => [key, key === "v" ? 2 : v])))],
      ["unknown field", encodeCbor(map([...base, ["extra", 1]]))],
      ["missing retired", encodeCbor(map(base.filter(([key]) => key !== "retired")))],
      [
        "window reversed",
        encodeCbor(
          map(
            base.map(([key, v]) => [
              key,
              key === "signing"
                ? map([
                    ["pkcs8", Buffer.from(k.signing.pkcs8)],
                    ["nbf", B(T + 1)],
                    ["exp", B(T)],
                  ])
                : v,
            ]),
          ),
        ),
      ],
      ["tls not a key", encodeCbor(map(base.map(([key, v]) => [key, key === "tls" ? Buffer.alloc(40, 1) : v])))],
      [
        "RSA signing key",
        encodeCbor(
          map(
            base.map(([key, v]) => [
              key,
              key === "signing"
                ? map([
                    ["pkcs8", generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({ type: "pkcs8", format: "der" })],
                    ["nbf", B(T)],
                    ["exp", B(T + 1)],
                  ])
                : v,
            ]),
          ),
        ),
      ],
      [
        "four retired keys",
        encodeCbor(
          map(
            base.map(([key, v]) => [
              key,
              key === "retired"
                ? Array.from({ length: 4 }, () =>
                    map([
                      ["spki", Buffer.from(signingSpki(p256()))],
                      ["nbf", B(T)],
                      ["exp", B(T + 1)],
                    ]),
                  )
                : v,
            ]),
          ),
        ),
      ],
      [
        "signing key retired too",
        encodeCbor(
          map(
            base.map(([key, v]) => [
              key,
              key === "retired"
                ? [
                    map([
                      ["spki", Buffer.from(signingSpki(k.signing.pkcs8))],
                      ["nbf", B(T - 5)],
                      ["exp", B(T)],
                    ]),
                  ]
                : v,
            ]),
          ),
        ),
      ],
    ];
    for (const [name, bytes] of cases) {
      expect(() => decodeIdentity(bytes), name).toThrow(expect.objectContaining({ code: "ERR_IDENTITY_MALFORMED" }));
    }
  });

  it("rotation keeps the TLS key, retires the old signing key at the end of the overlap, and keeps at most three", () => {
    let k = keys();
    const tls = Buffer.from(k.tlsPkcs8).toString("hex");
    const spkis = [signingSpki(k.signing.pkcs8)];
    for (let i = 1; i <= 5; i++) {
      k = nextIdentityKeys({ now: T + i * 100, validityMs: 1000, previous: k, overlapMs: 50 });
      spkis.unshift(signingSpki(k.signing.pkcs8));
      expect(Buffer.from(k.tlsPkcs8).toString("hex")).toBe(tls);
      expect(k.retired[0]!.notAfter).toBe(T + i * 100 + 50);
    }
    expect(k.retired.map((r) => Buffer.from(r.spki).toString("hex"))).toEqual(spkis.slice(1, 4).map((s) => Buffer.from(s).toString("hex")));
    expect(() => nextIdentityKeys({ now: T, validityMs: 1000, previous: k })).toThrow(RangeError); // overlap is required
    expect(nextIdentityKeys({ now: T, validityMs: 1000, previous: k, overlapMs: 0, rotateTls: true }).tlsPkcs8).not.toEqual(k.tlsPkcs8);
  });

  it("the sealed-secrets file carries the identity strictly", () => {
    const file = (identity: unknown, secrets: object = {}) =>
      new Uint8Array(Buffer.from(JSON.stringify({ version: 1, keyId: "alias/egw", region: "us-east-1", secrets, ...(identity !== undefined && { identity }) })));
    const ok = { dataKey: "AQID", iv: Buffer.alloc(12).toString("base64"), sealed: Buffer.alloc(40).toString("base64"), attestation: "AAAA" };
    expect(parseSealedFile(file(ok)).identity!.iv).toHaveLength(12);
    expect(() => parseSealedFile(file(undefined))).toThrow(expect.objectContaining({ code: "ERR_SEALED_FILE_MALFORMED" }));
    expect(() => parseSealedFile(file({ ...ok, extra: "AA==" }))).toThrow(expect.objectContaining({ code: "ERR_SEALED_FILE_MALFORMED" }));
    expect(() => parseSealedFile(file({ ...ok, iv: "AAAA" }))).toThrow(expect.objectContaining({ code: "ERR_SEALED_FILE_TOO_LARGE" }));
    expect(() => parseSealedFile(file({ ...ok, sealed: "AB==" }))).toThrow(expect.objectContaining({ code: "ERR_SEALED_FILE_MALFORMED" }));
    // The generator's attestation is required, and bounded.
    const { attestation: _, ...withoutAttestation } = ok;
    expect(() => parseSealedFile(file(withoutAttestation))).toThrow(expect.objectContaining({ code: "ERR_SEALED_FILE_MALFORMED" }));
    expect(() => parseSealedFile(file({ ...ok, attestation: "" }))).toThrow(expect.objectContaining({ code: "ERR_SEALED_FILE_MALFORMED" }));
    expect(() => parseSealedFile(file({ ...ok, attestation: Buffer.alloc(16 * 1024 + 1).toString("base64") }))).toThrow(
      expect.objectContaining({ code: "ERR_SEALED_FILE_TOO_LARGE" }),
    );
  });
});

describe("channel binding v2 and receipts under a key set", () => {
  const spkiOf = (pkcs8: Uint8Array) => signingSpki(pkcs8);
  it("round-trips v2, refuses junk, and stays within user_data's 1024 bytes with four keys", () => {
    const keys = Array.from({ length: 4 }, (_, i) => ({ spki: spkiOf(p256()), notBefore: T + i, notAfter: T + 10 + i }));
    const bytes = encodeBinding({ tlsSpkiSha256: new Uint8Array(32), configSha256: new Uint8Array(32).fill(1), receiptKeys: keys });
    expect(bytes.length).toBeLessThan(1024);
    const back = decodeBinding(bytes);
    expect(back.v).toBe(2);
    expect(back.receiptKeys).toHaveLength(4);
    expect(() => encodeBinding({ tlsSpkiSha256: new Uint8Array(32), configSha256: new Uint8Array(32), receiptKeys: [...keys, keys[0]!] })).toThrow();
    const v2 = (extra: [string, unknown][]) =>
      encodeCbor(new Map<string, unknown>([["v", 2], ["tls_spki_sha256", Buffer.alloc(32)], ["config_sha256", Buffer.alloc(32)], ...extra]));
    for (const bad of [
      v2([]),
      v2([["receipt_keys", []]]),
      v2([
        [
          "receipt_keys",
          [
            new Map<string, unknown>([
              ["spki", Buffer.alloc(10)],
              ["nbf", 5],
              ["exp", 5],
            ]),
          ],
        ],
      ]),
      v2([
        [
          "receipt_keys",
          [
            new Map<string, unknown>([
              ["spki", Buffer.alloc(10)],
              ["nbf", 1],
              ["exp", 5],
              ["x", 1],
            ]),
          ],
        ],
      ]),
    ]) {
      expect(() => decodeBinding(bad)).toThrow(expect.objectContaining({ code: "ERR_USER_DATA_MISMATCH" }));
    }
    // A v1 binding may not carry receipt_keys.
    expect(() =>
      decodeBinding(
        encodeCbor(
          new Map<string, unknown>([
            ["v", 1],
            ["tls_spki_sha256", Buffer.alloc(32)],
            ["config_sha256", Buffer.alloc(32)],
            ["receipt_keys", []],
          ]),
        ),
      ),
    ).toThrow(expect.objectContaining({ code: "ERR_USER_DATA_MISMATCH" }));
  });

  it("verifies with the key whose window holds the receipt time, and says when a key signed outside its window", async () => {
    const { createPrivateKey } = await import("node:crypto");
    const a = p256();
    const b = p256();
    const set = [
      { spki: spkiOf(b), notBefore: T + 100, notAfter: T + 1000 },
      { spki: spkiOf(a), notBefore: T, notAfter: T + 150 },
    ];
    const claims = (time: number): ReceiptClaims => ({
      v: 2,
      id: "r",
      time,
      method: "POST",
      path: "/v1/chat/completions",
      surface: "chat.completions",
      model: "m",
      provider: "p",
      status: 200,
      stream: false,
      bodyRead: true,
      requestSha256: sha256(Uint8Array.of(1)),
      responseSha256: sha256(Uint8Array.of(2)),
    });
    const sign = (pkcs8: Uint8Array, time: number) => signReceipt(claims(time), createPrivateKey({ key: Buffer.from(pkcs8), format: "der", type: "pkcs8" }));
    const digests = { requestSha256: sha256(Uint8Array.of(1)), responseSha256: sha256(Uint8Array.of(2)) };
    expect(verifyReceiptWithKeys(sign(a, T + 120), { keys: set, ...digests }).key.notBefore).toBe(T);
    expect(verifyReceiptWithKeys(sign(b, T + 120), { keys: set, ...digests }).key.notBefore).toBe(T + 100);
    expect(() => verifyReceiptWithKeys(sign(a, T + 151), { keys: set, ...digests })).toThrow(expect.objectContaining({ code: "ERR_RECEIPT_KEY_WINDOW" }));
    expect(() => verifyReceiptWithKeys(sign(p256(), T + 120), { keys: set, ...digests })).toThrow(expect.objectContaining({ code: "ERR_SIGNATURE_INVALID" }));
    expect(() => verifyReceiptWithKeys(sign(a, T + 120), { keys: set, ...digests, responseSha256: sha256(Uint8Array.of(3)) })).toThrow(
      expect.objectContaining({ code: "ERR_RECEIPT_RESPONSE_MISMATCH" }),
    );
    expect(() => verifyReceiptWithKeys(sign(a, T + 120), { keys: [], ...digests })).toThrow(expect.objectContaining({ code: "ERR_POLICY_INVALID" }));
    expect(RECEIPT_HEADER).toBe("x-egw-receipt");
  });
});
