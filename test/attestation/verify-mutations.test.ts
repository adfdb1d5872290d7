import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { Encoder } from "cbor-x";
import { describe, expect, it } from "vitest";
import type { AttestationErrorCode } from "../../attestation/errors.js";
import { trustAnchorFromPem } from "../../attestation/roots.js";
import { verifyAttestation } from "../../attestation/verify.js";
import type { VerifyOptions } from "../../attestation/verify-options.js";
import { loadNitroFixtures } from "../helpers/fixtures.js";
import { buildTestChain, PCR_A, testDocument, type CertSpec } from "../helpers/test-chain.js";

const fixtures = loadNitroFixtures();
const fx = fixtures.find((f) => f.name.startsWith("blocky"))!; // production, 1024-byte fields
const at = new Date(fx.timestampMs);
const base: VerifyOptions = { currentDate: at, expectedPcrs: fx.pcrs };
const otherRoot = await buildTestChain(at);

function indexOfBytes(haystack: Uint8Array, needle: Uint8Array): number {
  return Buffer.from(haystack).indexOf(Buffer.from(needle));
}

function mutate(f: (b: Uint8Array) => Uint8Array | void): Uint8Array {
  const copy = new Uint8Array(fx.bytes);
  return f(copy) ?? copy;
}

const moduleIdAt = indexOfBytes(fx.bytes, Buffer.from(fx.meta.decoded.module_id));
const protectedAt = indexOfBytes(fx.bytes, Uint8Array.of(0x44, 0xa1, 0x01, 0x38, 0x22)) + 1;
const leafAt = indexOfBytes(fx.bytes, Uint8Array.of(0x6b, ...Buffer.from("certificate")));
const publicKeyAt = indexOfBytes(fx.bytes, Uint8Array.of(0x6a, ...Buffer.from("public_key")));
const bundleAt = indexOfBytes(fx.bytes, Uint8Array.of(0x68, ...Buffer.from("cabundle")));

describe("single mutations of a real document", () => {
  it("control: the unmutated document passes with the same options", async () => {
    await expect(verifyAttestation(fx.bytes, base)).resolves.toMatchObject({ moduleId: fx.meta.decoded.module_id });
    expect(moduleIdAt).toBeGreaterThan(0);
    expect(protectedAt).toBeGreaterThan(0);
    expect(leafAt).toBeGreaterThan(0);
    expect(bundleAt).toBeGreaterThan(0);
    expect(publicKeyAt).toBeGreaterThan(bundleAt);
  });

  const table: [string, () => Uint8Array, Partial<VerifyOptions>, AttestationErrorCode][] = [
    ["signature bit flip", () => mutate((b) => void (b[b.length - 10]! ^= 0x01)), {}, "ERR_SIGNATURE_INVALID"],
    ["payload byte flip (module_id)", () => mutate((b) => void (b[moduleIdAt + 3]! ^= 0x01)), {}, "ERR_SIGNATURE_INVALID"],
    [
      "payload byte flip (a PCR value)",
      () => mutate((b) => void (b[indexOfBytes(b, Buffer.from(fx.pcrs["0"]!, "hex"))]! ^= 0x80)),
      { expectedPcrs: "any" },
      "ERR_SIGNATURE_INVALID",
    ],
    ["truncated by one byte", () => fx.bytes.subarray(0, fx.bytes.length - 1), {}, "ERR_CBOR_MALFORMED"],
    ["truncated to half", () => fx.bytes.subarray(0, fx.bytes.length >> 1), {}, "ERR_CBOR_MALFORMED"],
    ["truncated to the header", () => fx.bytes.subarray(0, 1), {}, "ERR_CBOR_MALFORMED"],
    ["trailing byte", () => new Uint8Array([...fx.bytes, 0x00]), {}, "ERR_CBOR_TRAILING_BYTES"],
    ["alg swapped to ES512 (-36)", () => mutate((b) => void (b[protectedAt + 3] = 0x23)), {}, "ERR_COSE_ALG"],
    ["alg swapped to ES256 (-7)", () => mutateAlgEs256(), {}, "ERR_COSE_ALG"],
    ["wrong PCR0 expected", () => fx.bytes, { expectedPcrs: { ...fx.pcrs, 0: `${"00".repeat(47)}01` } }, "ERR_PCR_MISMATCH"],
    ["PCR expected that the document lacks", () => fx.bytes, { expectedPcrs: { 20: "00".repeat(48) } }, "ERR_PCR_MISMATCH"],
    ["wrong nonce", () => fx.bytes, { nonce: fx.meta.decoded.nonce.replace(/^../, "ff") }, "ERR_NONCE_MISMATCH"],
    ["wrong user_data", () => fx.bytes, { userData: "01" }, "ERR_USER_DATA_MISMATCH"],
    ["wrong public_key", () => fx.bytes, { publicKey: "01".repeat(1023) }, "ERR_PUBLIC_KEY_MISMATCH"],
    ["stale timestamp", () => fx.bytes, { currentDate: new Date(fx.timestampMs + 5 * 60_000 + 1) }, "ERR_DOC_STALE"],
    ["stale under a tighter max age", () => fx.bytes, { currentDate: new Date(fx.timestampMs + 1001), maxAgeMs: 1000 }, "ERR_DOC_STALE"],
    // The leaf was issued 3 s before the document, so 2 s early is inside its validity.
    ["timestamp from the future", () => fx.bytes, { currentDate: new Date(fx.timestampMs - 2000), clockSkewMs: 1000 }, "ERR_DOC_FROM_FUTURE"],
    ["wrong root (only a test root trusted)", () => fx.bytes, { trustedRoots: [otherRoot.anchor] }, "ERR_ROOT_UNTRUSTED"],
    ["root certificate byte flipped", () => mutate((b) => void (b[bundleAt + 40]! ^= 0x01)), {}, "ERR_ROOT_UNTRUSTED"],
    // The last cabundle certificate ends with its signature, just before "public_key".
    ["intermediate signature byte flipped", () => mutate((b) => void (b[publicKeyAt - 3]! ^= 0x01)), {}, "ERR_CHAIN_BROKEN"],
  ];

  for (const [name, bytes, options, code] of table) {
    it(`${name} → ${code}`, async () => {
      await expect(verifyAttestation(bytes(), { ...base, ...options })).rejects.toMatchObject({ code });
    });
  }
});

function mutateAlgEs256(): Uint8Array {
  // {1: -7} is one byte shorter than {1: -35}: rebuild the bstr header too.
  const b = Buffer.from(fx.bytes);
  const before = b.subarray(0, protectedAt - 1);
  const after = b.subarray(protectedAt + 4);
  return new Uint8Array(Buffer.concat([before, Buffer.from([0x43, 0xa1, 0x01, 0x26]), after]));
}

describe("PKIX rules, each broken alone with a test CA", async () => {
  const now = new Date("2026-03-01T12:00:00Z");
  const control = await buildTestChain(now);
  const KU = x509.KeyUsageFlags;
  const options = (anchorPem: string): VerifyOptions => ({
    currentDate: now,
    expectedPcrs: { 0: PCR_A },
    trustedRoots: [trustAnchorFromPem(anchorPem, "test")],
  });

  it("control: a well-formed test chain passes, and is not production", async () => {
    const doc = await testDocument(control, { timestamp: now.getTime() });
    const result = await verifyAttestation(doc, options(control.rootPem));
    expect(result.root.production).toBe(false);
    expect(result.chain).toHaveLength(4);
  });

  const rows: [string, { root?: CertSpec; intermediates?: CertSpec[]; leaf?: CertSpec }, AttestationErrorCode][] = [
    ["leaf is a CA", { leaf: { ca: true } }, "ERR_CERT_CONSTRAINTS"],
    ["leaf lacks digitalSignature", { leaf: { keyUsage: KU.keyEncipherment } }, "ERR_CERT_CONSTRAINTS"],
    ["leaf has no keyUsage", { leaf: { keyUsage: null } }, "ERR_CERT_CONSTRAINTS"],
    ["intermediate has no basicConstraints", { intermediates: [{}, { ca: null }] }, "ERR_CERT_CONSTRAINTS"],
    ["intermediate has cA=FALSE", { intermediates: [{ ca: false }, {}] }, "ERR_CERT_CONSTRAINTS"],
    ["intermediate lacks keyCertSign", { intermediates: [{}, { keyUsage: KU.digitalSignature }] }, "ERR_CERT_CONSTRAINTS"],
    ["pathLenConstraint exceeded", { intermediates: [{ pathLen: 0 }, {}] }, "ERR_CERT_CONSTRAINTS"],
    ["root pathLenConstraint exceeded", { root: { pathLen: 1 }, intermediates: [{}, {}] }, "ERR_CERT_CONSTRAINTS"],
    ["unknown critical extension", { intermediates: [{}, { unknownCriticalExtension: true }] }, "ERR_CERT_CONSTRAINTS"],
    ["intermediate expired", { intermediates: [{ notAfter: new Date(now.getTime() - 1000) }, {}] }, "ERR_CERT_EXPIRED"],
    ["leaf not yet valid", { leaf: { notBefore: new Date(now.getTime() + 60_000) } }, "ERR_CERT_NOT_YET_VALID"],
    ["leaf signed with ECDSA-SHA256", { leaf: { hash: "SHA-256" } }, "ERR_CERT_ALGORITHM"],
    ["leaf key on P-256", { leaf: { curve: "P-256" } }, "ERR_CERT_ALGORITHM"],
    ["intermediate key on P-256", { intermediates: [{}, { curve: "P-256" }] }, "ERR_CERT_ALGORITHM"],
    ["leaf issuer name differs from its CA", { leaf: { issuerName: "CN=someone else" } }, "ERR_CHAIN_BROKEN"],
    ["leaf signed by a stranger's key", { leaf: { signWithWrongKey: true } }, "ERR_CHAIN_BROKEN"],
    ["intermediate signed by a stranger's key", { intermediates: [{ signWithWrongKey: true }, {}] }, "ERR_CHAIN_BROKEN"],
  ];

  for (const [name, specs, code] of rows) {
    it(`${name} → ${code}`, async () => {
      const chain = await buildTestChain(now, specs);
      const curve = specs.leaf?.curve === "P-256";
      // A P-256 leaf cannot make an ES384 signature; sign the doc with a valid
      // P-384 chain's leaf instead, the certificate check must fire first.
      const doc = curve ? await testDocument({ ...chain, leafKey: control.leafKey }, { timestamp: now.getTime() }) : await testDocument(chain, { timestamp: now.getTime() });
      await expect(verifyAttestation(doc, options(chain.rootPem))).rejects.toMatchObject({ code });
    });
  }

  it("a document signed by a key other than the leaf's → ERR_SIGNATURE_INVALID", async () => {
    const other = await buildTestChain(now);
    const doc = await testDocument({ ...control, leafKey: other.leafKey }, { timestamp: now.getTime() });
    await expect(verifyAttestation(doc, options(control.rootPem))).rejects.toMatchObject({
      code: "ERR_SIGNATURE_INVALID",
      message: "signature verification failed",
    });
  });
});

describe("structural rules of the payload", () => {
  const encoder = new Encoder({ mapsAsObjects: false, useRecords: false } as ConstructorParameters<typeof Encoder>[0]);
  const cert = Buffer.alloc(fx.meta.decoded.certificate_len).fill(1);
  const pcrs = () => new Map(Array.from({ length: 16 }, (_, i) => [i, Buffer.alloc(48).fill(i + 1)] as const));
  const fields = (): Map<unknown, unknown> =>
    new Map<unknown, unknown>([
      ["module_id", "i-0-enc0"],
      ["digest", "SHA384"],
      ["timestamp", BigInt(fx.timestampMs)], // cbor-x would write a float64 for a large number
      ["pcrs", pcrs()],
      ["certificate", cert],
      ["cabundle", [cert]],
      ["public_key", null],
      ["user_data", null],
      ["nonce", null],
    ]);
  const cose = (payload: Uint8Array): Uint8Array => new Uint8Array(encoder.encode([Buffer.from([0xa1, 0x01, 0x38, 0x22]), new Map(), Buffer.from(payload), Buffer.alloc(96)]));
  const withField = (key: unknown, value: unknown): Uint8Array => {
    const m = fields();
    if (value === undefined) m.delete(key);
    else m.set(key, value);
    return cose(new Uint8Array(encoder.encode(m)));
  };

  const rows: [string, () => Uint8Array, AttestationErrorCode][] = [
    ["missing module_id", () => withField("module_id", undefined), "ERR_DOC_FIELD"],
    ["empty module_id", () => withField("module_id", ""), "ERR_DOC_FIELD"],
    ["digest SHA256", () => withField("digest", "SHA256"), "ERR_DOC_FIELD"],
    ["timestamp zero", () => withField("timestamp", 0), "ERR_DOC_FIELD"],
    ["timestamp as text", () => withField("timestamp", "1"), "ERR_DOC_FIELD"],
    ["pcrs not a map", () => withField("pcrs", [1, 2]), "ERR_DOC_FIELD"],
    ["pcrs empty", () => withField("pcrs", new Map()), "ERR_PCR_INVALID"],
    ["PCR index 32", () => withField("pcrs", new Map([[32, Buffer.alloc(48)]])), "ERR_PCR_INVALID"],
    ["PCR index negative", () => withField("pcrs", new Map([[-1, Buffer.alloc(48)]])), "ERR_PCR_INVALID"],
    ["PCR index as text", () => withField("pcrs", new Map([["0", Buffer.alloc(48)]])), "ERR_PCR_INVALID"],
    ["PCR of 47 bytes", () => withField("pcrs", new Map([[0, Buffer.alloc(47)]])), "ERR_PCR_INVALID"],
    ["PCR of 32 bytes (SHA-256 size under digest SHA384)", () => withField("pcrs", new Map([[0, Buffer.alloc(32)]])), "ERR_PCR_INVALID"],
    ["33 PCRs", () => withField("pcrs", new Map(Array.from({ length: 33 }, (_, i) => [i, Buffer.alloc(48)] as const))), "ERR_PCR_INVALID"],
    ["certificate empty", () => withField("certificate", Buffer.alloc(0)), "ERR_DOC_FIELD"],
    ["certificate 1025 bytes", () => withField("certificate", Buffer.alloc(1025)), "ERR_DOC_FIELD"],
    ["cabundle empty", () => withField("cabundle", []), "ERR_DOC_FIELD"],
    ["cabundle of text", () => withField("cabundle", ["x"]), "ERR_DOC_FIELD"],
    ["public_key empty", () => withField("public_key", Buffer.alloc(0)), "ERR_DOC_FIELD"],
    ["public_key 1025 bytes", () => withField("public_key", Buffer.alloc(1025)), "ERR_DOC_FIELD"],
    ["user_data 1025 bytes", () => withField("user_data", Buffer.alloc(1025)), "ERR_DOC_FIELD"],
    ["nonce as text", () => withField("nonce", "abc"), "ERR_DOC_FIELD"],
    ["unknown field", () => withField("extra", 1), "ERR_DOC_UNKNOWN_FIELD"],
    ["integer key", () => withField(7, 1), "ERR_DOC_UNKNOWN_FIELD"],
    ["payload is an array", () => cose(new Uint8Array(encoder.encode([1]))), "ERR_DOC_FIELD"],
    [
      "duplicate key in the payload",
      () => {
        const bytes = Buffer.from(encoder.encode(fields()));
        // Same length, so only the key changes: "user_data" becomes a second "module_id".
        const at = bytes.indexOf(Buffer.from("user_data"));
        Buffer.from("module_id").copy(bytes, at);
        return cose(new Uint8Array(bytes));
      },
      "ERR_CBOR_DUPLICATE_KEY",
    ],
    [
      "duplicate PCR index",
      () => {
        const m = fields();
        const bytes = Buffer.from(encoder.encode(m));
        // pcrs map: a9..."pcrs" b0 00 58 30 <48> 01 58 30 …: make index 1 read 0.
        const pcrsAt = bytes.indexOf(Buffer.from("pcrs")) + 4;
        expect(bytes[pcrsAt]).toBe(0xb0);
        expect(bytes[pcrsAt + 1]).toBe(0x00);
        const second = pcrsAt + 1 + 1 + 2 + 48;
        expect(bytes[second]).toBe(0x01);
        bytes[second] = 0x00;
        return cose(new Uint8Array(bytes));
      },
      "ERR_CBOR_DUPLICATE_KEY",
    ],
  ];
  for (const [name, bytes, code] of rows) {
    it(`${name} → ${code}`, async () => {
      await expect(verifyAttestation(bytes(), { currentDate: at, expectedPcrs: "any" })).rejects.toMatchObject({ code });
    });
  }

  it("control: the unmutated synthetic payload gets past every structural rule", async () => {
    // It then fails at the chain (its certificates are filler), which proves
    // the structural rules above are what rejected the mutants.
    await expect(verifyAttestation(withField("nonce", null), { currentDate: at, expectedPcrs: "any" })).rejects.toMatchObject({
      code: "ERR_ROOT_UNTRUSTED",
    });
  });
});

describe("structural rules of the COSE envelope", () => {
  const encoder = new Encoder({ mapsAsObjects: false, useRecords: false } as ConstructorParameters<typeof Encoder>[0]);
  const prot = Buffer.from([0xa1, 0x01, 0x38, 0x22]);
  const payload = Buffer.from([0xa0]);
  const sig = Buffer.alloc(96);
  // Buffers, not Uint8Arrays: cbor-x tags typed arrays (tag 64), Buffers become plain bstr.
  const enc = (v: unknown) => Buffer.from(encoder.encode(v));
  const rows: [string, () => Uint8Array, AttestationErrorCode][] = [
    ["array of 3", () => enc([prot, new Map(), payload]), "ERR_COSE_STRUCTURE"],
    ["array of 5", () => enc([prot, new Map(), payload, sig, sig]), "ERR_COSE_STRUCTURE"],
    ["a map instead of an array", () => enc(new Map([[1, 2]])), "ERR_COSE_STRUCTURE"],
    ["protected header as a map, not a bstr", () => enc([new Map([[1, -35]]), new Map(), payload, sig]), "ERR_COSE_STRUCTURE"],
    ["protected header empty", () => enc([Buffer.alloc(0), new Map(), payload, sig]), "ERR_COSE_ALG"],
    ["protected header without alg", () => enc([enc(new Map([[4, Buffer.alloc(1)]])), new Map(), payload, sig]), "ERR_COSE_ALG"],
    ["protected alg as text", () => enc([enc(new Map([[1, "ES384"]])), new Map(), payload, sig]), "ERR_COSE_ALG"],
    [
      "protected header with crit",
      () =>
        enc([
          enc(
            new Map<number, unknown>([
              [1, -35],
              [2, [99]],
            ]),
          ),
          new Map(),
          payload,
          sig,
        ]),
      "ERR_COSE_STRUCTURE",
    ],
    ["unprotected header not empty", () => enc([prot, new Map([[4, Buffer.alloc(1)]]), payload, sig]), "ERR_COSE_STRUCTURE"],
    ["detached (null) payload", () => enc([prot, new Map(), null, sig]), "ERR_COSE_STRUCTURE"],
    ["empty payload", () => enc([prot, new Map(), Buffer.alloc(0), sig]), "ERR_COSE_STRUCTURE"],
    ["signature of 95 bytes", () => enc([prot, new Map(), payload, Buffer.alloc(95)]), "ERR_COSE_STRUCTURE"],
    ["signature of 64 bytes (ES256 size)", () => enc([prot, new Map(), payload, Buffer.alloc(64)]), "ERR_COSE_STRUCTURE"],
    ["input larger than 16 KiB", () => new Uint8Array(16 * 1024 + 1), "ERR_INPUT_TOO_LARGE"],
    ["empty input", () => Buffer.alloc(0), "ERR_CBOR_MALFORMED"],
  ];
  for (const [name, bytes, code] of rows) {
    it(`${name} → ${code}`, async () => {
      await expect(verifyAttestation(bytes(), { currentDate: at, expectedPcrs: "any" })).rejects.toMatchObject({ code });
    });
  }
});
