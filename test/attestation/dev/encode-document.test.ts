import { Decoder } from "cbor-x";
import fc from "fast-check";
import { X509Certificate, verify } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { encodeCoseSign1, encodeDocumentPayload, encodeSigStructure, es384ProtectedHeader } from "../../../attestation/dev/encode-document.js";
import type { AttestationDocument } from "../../../attestation/types.js";

/** ../shared beside the repository root, as in test/helpers/fixtures.ts. */
const NITRO_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../../../../shared/fixtures/nitro");
const decoder = new Decoder({ mapsAsObjects: false, useRecords: false });

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

interface Fixture {
  name: string;
  bytes: Uint8Array;
  cose: [Uint8Array, Map<unknown, unknown>, Uint8Array, Uint8Array];
  doc: AttestationDocument;
}

function loadFixtures(): Fixture[] {
  return readdirSync(NITRO_DIR)
    .filter((f) => f.endsWith(".cbor"))
    .sort()
    .map((file) => {
      const bytes = new Uint8Array(readFileSync(join(NITRO_DIR, file)));
      const cose = decoder.decode(bytes) as Fixture["cose"];
      const p = decoder.decode(cose[2]) as Map<string, any>;
      const doc: AttestationDocument = {
        moduleId: p.get("module_id"),
        digest: p.get("digest"),
        timestamp: Number(p.get("timestamp")),
        pcrs: p.get("pcrs"),
        certificate: p.get("certificate"),
        cabundle: p.get("cabundle"),
        publicKey: p.get("public_key"),
        userData: p.get("user_data"),
        nonce: p.get("nonce"),
      };
      return { name: file.replace(/\.cbor$/, ""), bytes, cose, doc };
    });
}

function sampleDoc(overrides: Partial<AttestationDocument> = {}): AttestationDocument {
  const pcrs = new Map<number, Uint8Array>();
  for (let i = 0; i < 16; i++) pcrs.set(i, new Uint8Array(48).fill(i));
  return {
    moduleId: "dev-0123456789abcdef-enc0123456789abcdef",
    digest: "SHA384",
    timestamp: 1_900_000_000_123,
    pcrs,
    certificate: new Uint8Array(600).fill(0xc1),
    cabundle: [new Uint8Array(500).fill(0xca), new Uint8Array(650).fill(0xcb)],
    publicKey: null,
    userData: null,
    nonce: null,
    ...overrides,
  };
}

const KEY_ORDER = ["module_id", "digest", "timestamp", "pcrs", "certificate", "cabundle", "public_key", "user_data", "nonce"];

describe("encoder against documents from real Nitro hardware", () => {
  const fixtures = loadFixtures();
  // Hardware emitted definite-length maps until at least 2024; the one 2026
  // fixture has an indefinite-length top-level map (0xbf), which we do not copy.
  const definite = fixtures.filter((f) => f.cose[2][0] === 0xa9);

  it("has fixtures to compare with", () => {
    expect(definite.length).toBeGreaterThanOrEqual(5);
  });

  it.each(definite.map((f) => [f.name, f] as const))("reproduces the payload of %s byte for byte", (_name, f) => {
    expect(hex(encodeDocumentPayload(f.doc))).toBe(hex(f.cose[2]));
  });

  it.each(definite.map((f) => [f.name, f] as const))("reproduces the COSE_Sign1 of %s byte for byte", (_name, f) => {
    expect(hex(f.cose[0])).toBe(hex(es384ProtectedHeader()));
    expect(hex(encodeCoseSign1(f.cose[0], f.cose[2], f.cose[3]))).toBe(hex(f.bytes));
  });

  it.each(fixtures.map((f) => [f.name, f] as const))("builds a Sig_structure that the hardware signature of %s verifies over", (_name, f) => {
    const leaf = new X509Certificate(f.doc.certificate);
    const toBeSigned = encodeSigStructure(f.cose[0], f.cose[2]);
    expect(verify("sha384", toBeSigned, { key: leaf.publicKey, dsaEncoding: "ieee-p1363" }, f.cose[3])).toBe(true);
  });
});

describe("encodeDocumentPayload", () => {
  it("writes a definite 9-entry map with the NSM key order and null for absent fields", () => {
    const bytes = encodeDocumentPayload(sampleDoc());
    expect(bytes[0]).toBe(0xa9);
    const decoded = decoder.decode(bytes) as Map<string, unknown>;
    expect([...decoded.keys()]).toEqual(KEY_ORDER);
    // The three optional fields are the last three values: 0xf6 each, at the very end.
    expect(hex(bytes.subarray(bytes.length - "nonce".length - 2))).toBe(`${hex(Buffer.from("\x65nonce"))}f6`);
    expect(decoded.get("public_key")).toBeNull();
    expect(decoded.get("user_data")).toBeNull();
    expect(decoded.get("nonce")).toBeNull();
  });

  it("writes the timestamp as a CBOR uint (uint64 head above 2^32, like hardware)", () => {
    const bytes = encodeDocumentPayload(sampleDoc({ timestamp: 1_725_719_859_545 }));
    const key = Buffer.from("\x69timestamp");
    const at = Buffer.from(bytes).indexOf(key) + key.length;
    expect(hex(bytes.subarray(at, at + 9))).toBe("1b00000191cceb5159");
  });

  it("writes PCRs in ascending index order whatever the Map order", () => {
    const pcrs = new Map<number, Uint8Array>([
      [2, new Uint8Array(48).fill(2)],
      [0, new Uint8Array(48)],
      [1, new Uint8Array(48).fill(1)],
    ]);
    const decoded = decoder.decode(encodeDocumentPayload(sampleDoc({ pcrs }))) as Map<string, any>;
    expect([...decoded.get("pcrs").keys()]).toEqual([0, 1, 2]);
  });

  it("writes an empty but present field as an empty bstr, not null", () => {
    const bytes = encodeDocumentPayload(sampleDoc({ nonce: new Uint8Array(0) }));
    expect(bytes[bytes.length - 1]).toBe(0x40);
  });

  it.each([
    ["user_data of 1025 bytes", { userData: new Uint8Array(1025) }],
    ["nonce of 1025 bytes", { nonce: new Uint8Array(1025) }],
    ["public_key of 1025 bytes", { publicKey: new Uint8Array(1025) }],
    ["a 47-byte PCR", { pcrs: new Map([[0, new Uint8Array(47)]]) }],
    ["PCR index 32", { pcrs: new Map([[32, new Uint8Array(48)]]) }],
    ["no PCRs", { pcrs: new Map() }],
    ["an empty certificate", { certificate: new Uint8Array(0) }],
    ["an empty cabundle", { cabundle: [] }],
    ["a fractional timestamp", { timestamp: 1.5 }],
    ["a negative timestamp", { timestamp: -1 }],
    ["an empty module_id", { moduleId: "" }],
    ["a digest other than SHA384", { digest: "SHA256" as "SHA384" }],
    ["user_data that is not bytes", { userData: "hello" as unknown as Uint8Array }],
  ])("rejects %s with ERR_NSM_REQUEST", (_what, overrides) => {
    expect(() => encodeDocumentPayload(sampleDoc(overrides as Partial<AttestationDocument>))).toThrow(expect.objectContaining({ code: "ERR_NSM_REQUEST" }));
  });

  it("accepts 1024-byte user_data, nonce and public_key (the NSM maximum)", () => {
    const full = new Uint8Array(1024).fill(1);
    const decoded = decoder.decode(encodeDocumentPayload(sampleDoc({ userData: full, nonce: full, publicKey: full }))) as Map<string, unknown>;
    expect(decoded.get("user_data")).toEqual(full);
  });

  it("round-trips any valid document through a generic CBOR decoder", () => {
    const bytes = (max: number) => fc.uint8Array({ maxLength: max });
    const optional = fc.option(bytes(1024), { nil: null });
    fc.assert(
      fc.property(
        fc.record({
          timestamp: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
          moduleId: fc.string({ minLength: 1, maxLength: 64 }),
          pcrs: fc.uniqueArray(fc.integer({ min: 0, max: 31 }), { minLength: 1, maxLength: 32 }),
          publicKey: optional,
          userData: optional,
          nonce: optional,
          certificate: fc.uint8Array({ minLength: 1, maxLength: 1024 }),
          cabundle: fc.array(fc.uint8Array({ minLength: 1, maxLength: 1024 }), { minLength: 1, maxLength: 5 }),
        }),
        (r) => {
          const pcrs = new Map(r.pcrs.map((i) => [i, new Uint8Array(48).fill(i)] as [number, Uint8Array]));
          const doc = sampleDoc({ ...r, pcrs });
          const encoded = encodeDocumentPayload(doc);
          expect(encoded[0]).toBe(0xa9);
          const decoded = decoder.decode(encoded) as Map<string, any>;
          expect([...decoded.keys()]).toEqual(KEY_ORDER);
          expect(Number(decoded.get("timestamp"))).toBe(r.timestamp);
          expect(decoded.get("module_id")).toBe(r.moduleId);
          expect([...decoded.get("pcrs").keys()]).toEqual([...r.pcrs].sort((a, b) => a - b));
          for (const [field, value] of [
            ["public_key", r.publicKey],
            ["user_data", r.userData],
            ["nonce", r.nonce],
          ] as const) {
            expect(decoded.get(field) === null ? null : new Uint8Array(decoded.get(field))).toEqual(value);
          }
          expect(decoded.get("cabundle").map((c: Uint8Array) => new Uint8Array(c))).toEqual(r.cabundle);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("COSE_Sign1 framing", () => {
  it("is the protected header {1: -35}", () => {
    expect(hex(es384ProtectedHeader())).toBe("a1013822");
  });

  it("builds Sig_structure as [\"Signature1\", protected, h'', payload]", () => {
    const payload = Uint8Array.of(0xa0);
    expect(hex(encodeSigStructure(es384ProtectedHeader(), payload))).toBe(`84${"6a"}${hex(Buffer.from("Signature1"))}44a1013822${"40"}41a0`);
  });

  it("frames an untagged 4-array with an empty unprotected map", () => {
    const payload = new Uint8Array(300).fill(7);
    const signature = new Uint8Array(96).fill(9);
    const bytes = encodeCoseSign1(es384ProtectedHeader(), payload, signature);
    expect(hex(bytes.subarray(0, 10))).toBe("8444a1013822a059012c");
    expect(hex(bytes.subarray(10 + 300, 10 + 300 + 2))).toBe("5860");
    expect(bytes.length).toBe(10 + 300 + 2 + 96);
  });

  it("refuses a signature that is not 96 bytes", () => {
    expect(() => encodeCoseSign1(es384ProtectedHeader(), Uint8Array.of(0xa0), new Uint8Array(64))).toThrow(expect.objectContaining({ code: "ERR_NSM_REQUEST" }));
  });
});
