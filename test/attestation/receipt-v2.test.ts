import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { encodeCbor } from "../../attestation/cbor-encode.js";
import { sigStructure } from "../../attestation/cose-sign1.js";
import { decodeReceipt, encodeReceiptPayload, MAX_RECEIPT_PATH, receiptPath, sha256, signReceipt, verifyReceiptDigests, type ReceiptClaims } from "../../attestation/receipt.js";
import { sign } from "node:crypto";

const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const base: ReceiptClaims = {
  v: 2,
  id: "egw-1",
  time: 1_700_000_000_000,
  method: "POST",
  path: "/v1/chat/completions",
  surface: "chat.completions",
  model: "m",
  provider: "openai",
  status: 200,
  stream: false,
  bodyRead: true,
  requestSha256: sha256(Uint8Array.of(1)),
  responseSha256: sha256(Uint8Array.of(2)),
  upstream: { origin: "https://api.openai.com", tlsSpkiSha256: sha256(Uint8Array.of(3)), requestId: "req_abc", model: "gpt-4o-2024-08-06" },
};
const digests = { publicKey, requestSha256: sha256(Uint8Array.of(1)), responseSha256: sha256(Uint8Array.of(2)) };

/** Signs an arbitrary payload map, so the decoder can be fed what the encoder refuses to make. */
function signRaw(map: Map<string, unknown>): Uint8Array {
  const prot = Uint8Array.of(0xa1, 0x01, 0x26);
  const payload = encodeCbor(map);
  const sig = sign("sha256", sigStructure(prot, payload), { key: privateKey, dsaEncoding: "ieee-p1363" });
  return encodeCbor([Buffer.from(prot), new Map(), Buffer.from(payload), sig]);
}
function rawMap(c: ReceiptClaims): Map<string, unknown> {
  const m = decodeStrictMap(encodeReceiptPayload(c));
  m.set("time", BigInt(c.time)); // the encoder writes integers above 2^32 from bigint only
  return m;
}
import { decodeStrict } from "../../attestation/cbor-decode.js";
function decodeStrictMap(bytes: Uint8Array): Map<string, unknown> {
  return decodeStrict(bytes, "t") as Map<string, unknown>;
}

describe("receipt format v2", () => {
  it("round-trips every claim, upstream provenance included", () => {
    const claims = verifyReceiptDigests(signReceipt(base, privateKey), digests);
    expect(claims).toEqual(base);
  });

  it("body_read false carries no request hash, and verifies for a refusal whatever body was sent", () => {
    const { requestSha256: _omit, upstream: _u, ...rest } = base;
    const refused: ReceiptClaims = { ...rest, status: 401, bodyRead: false };
    const claims = verifyReceiptDigests(signReceipt(refused, privateKey), digests);
    expect(claims.bodyRead).toBe(false);
    expect(claims.requestSha256).toBeUndefined();
    expect(decodeStrictMap(decodeReceipt(signReceipt(refused, privateKey)).payload).has("req_sha256")).toBe(false);
    // A success that did not read a non-empty body describes another exchange.
    const success = signReceipt({ ...refused, status: 200 }, privateKey);
    expect(() => verifyReceiptDigests(success, digests)).toThrow(expect.objectContaining({ code: "ERR_RECEIPT_REQUEST_MISMATCH" }));
    expect(verifyReceiptDigests(success, { ...digests, requestSha256: sha256(new Uint8Array()) }).status).toBe(200);
  });

  it("the encoder refuses inconsistent claims", () => {
    expect(() => encodeReceiptPayload({ ...base, bodyRead: false })).toThrow(/req_sha256/);
    const { requestSha256: _omit, ...noHash } = base;
    expect(() => encodeReceiptPayload({ ...noHash, bodyRead: true })).toThrow(/req_sha256/);
    expect(() => encodeReceiptPayload({ ...base, path: `/${"a".repeat(MAX_RECEIPT_PATH)}` })).toThrow(/path/);
  });

  const mutations: [string, (m: Map<string, unknown>) => void, string][] = [
    ["v1", (m) => m.set("v", 1), "ERR_DOC_FIELD"],
    [
      "v1 shape (upstream_host)",
      (m) => {
        m.set("v", 1);
        m.set("upstream_host", "h:443");
      },
      "ERR_DOC_FIELD",
    ],
    ["unknown key", (m) => m.set("extra", 1), "ERR_DOC_UNKNOWN_FIELD"],
    ["upstream_host in v2", (m) => m.set("upstream_host", "h:443"), "ERR_DOC_UNKNOWN_FIELD"],
    ["unknown key in upstream", (m) => (m.get("upstream") as Map<string, unknown>).set("ip", "1.2.3.4"), "ERR_DOC_UNKNOWN_FIELD"],
    ["body_read true without req_sha256", (m) => m.delete("req_sha256"), "ERR_DOC_FIELD"],
    ["body_read false with req_sha256", (m) => m.set("body_read", false), "ERR_DOC_FIELD"],
    ["body_read missing", (m) => m.delete("body_read"), "ERR_DOC_FIELD"],
    ["method missing", (m) => m.delete("method"), "ERR_DOC_FIELD"],
    ["method lower-case", (m) => m.set("method", "post"), "ERR_DOC_FIELD"],
    ["path without /", (m) => m.set("path", "v1/x"), "ERR_DOC_FIELD"],
    ["path too long", (m) => m.set("path", `/${"a".repeat(MAX_RECEIPT_PATH)}`), "ERR_DOC_FIELD"],
    ["upstream not a map", (m) => m.set("upstream", "https://x"), "ERR_DOC_FIELD"],
    ["upstream origin empty", (m) => (m.get("upstream") as Map<string, unknown>).set("origin", ""), "ERR_DOC_FIELD"],
    ["upstream spki 31 bytes", (m) => (m.get("upstream") as Map<string, unknown>).set("tls_spki_sha256", Buffer.alloc(31)), "ERR_DOC_FIELD"],
    ["upstream request_id too long", (m) => (m.get("upstream") as Map<string, unknown>).set("request_id", "r".repeat(129)), "ERR_DOC_FIELD"],
    ["upstream model not text", (m) => (m.get("upstream") as Map<string, unknown>).set("model", 7), "ERR_DOC_FIELD"],
  ];
  for (const [name, mutate, code] of mutations) {
    it(`refuses ${name} (${code})`, () => {
      const m = rawMap(base);
      mutate(m);
      expect(() => decodeReceipt(signRaw(m))).toThrow(expect.objectContaining({ code }));
    });
  }

  it("receiptPath keeps short paths and cuts long ones the same way on both sides", () => {
    expect(receiptPath("/v1/chat/completions")).toBe("/v1/chat/completions");
    const long = `/${"x".repeat(5000)}`;
    expect(receiptPath(long)).toHaveLength(MAX_RECEIPT_PATH);
    expect(receiptPath(long)).toBe(long.slice(0, MAX_RECEIPT_PATH));
  });
});
