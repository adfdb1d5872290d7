import fs from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_CMS_BYTES, MAX_CONTENT_CHUNKS, parseCmsEnvelope } from "../../../enclave/secrets/cms-envelope.js";
import { CmsError, type CmsErrorCode } from "../../../enclave/secrets/cms-error.js";
import { KMS_CMS_DIR } from "../../helpers/fixtures.js";
import { KMS_LAYOUT, NULL, OID, algId, assemble, cons, int, ktri, oaepParams, octets, prim, seq, type CmsParts, type Layout } from "../../../infra/dev/cms-encode.js";

/**
 * Parse-only: the two real KMS samples (aws-nitro-enclaves-sdk-c
 * tests/kmstool-enclaves/cms_test.c) have no private key, so they are checked
 * against the key, IV and ciphertext their .json states. Mutations are built
 * with an independent BER encoder (cms-builder.ts), one field at a time.
 */

interface Fixture {
  name: string;
  bytes: Uint8Array;
  expected: { encrypted_key: string; iv: string; ciphertext: string };
}

const FIXTURES: Fixture[] = fs
  .readdirSync(KMS_CMS_DIR)
  .filter((f) => f.endsWith(".ber"))
  .sort()
  .map((f) => ({
    name: f,
    bytes: new Uint8Array(fs.readFileSync(path.join(KMS_CMS_DIR, f))),
    expected: JSON.parse(fs.readFileSync(path.join(KMS_CMS_DIR, f.replace(/\.ber$/, ".json")), "utf8")).expected,
  }));

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "hex"));

function codeOf(fn: () => unknown): CmsErrorCode | "ok" {
  try {
    fn();
    return "ok";
  } catch (err) {
    if (err instanceof CmsError) return err.code;
    throw err;
  }
}

describe("KMS CiphertextForRecipient fixtures", () => {
  it("has both shapes", () => {
    expect(FIXTURES.map((f) => f.name)).toEqual(["envelopeddata-constructed-content.ber", "envelopeddata-primitive-ctx-content.ber"]);
  });

  for (const f of FIXTURES) {
    it(`${f.name} parses to the stated encrypted key, IV and ciphertext`, () => {
      const env = parseCmsEnvelope(f.bytes);
      expect(hex(env.encryptedKey)).toBe(f.expected.encrypted_key);
      expect(hex(env.iv)).toBe(f.expected.iv);
      expect(hex(env.encryptedContent)).toBe(f.expected.ciphertext);
      expect(env.encryptedKey.length).toBe(256);
      expect(env.subjectKeyIdentifier.length).toBe(32);
      expect(env.contentEncoding).toBe(f.name.includes("constructed") ? "constructed" : "primitive");
    });

    it(`${f.name}: the test builder reproduces it byte for byte (so builder-made mutations are in KMS's shape)`, () => {
      const env = parseCmsEnvelope(f.bytes);
      const rebuilt = assemble(partsFrom(env.subjectKeyIdentifier, f), {
        ...KMS_LAYOUT,
        content: env.contentEncoding,
      });
      expect(hex(rebuilt)).toBe(hex(f.bytes));
    });
  }
});

function partsFrom(ski: Uint8Array, f: Fixture): CmsParts {
  return {
    outerContentType: OID.envelopedData,
    envelopedVersion: 2,
    ktriVersion: 2,
    rid: prim(0x80, ski),
    keyEncryptionAlgorithm: algId(OID.rsaesOaep, oaepParams()),
    encryptedKey: unhex(f.expected.encrypted_key),
    innerContentType: OID.data,
    contentEncryptionAlgorithm: algId(OID.aes256Cbc, octets(unhex(f.expected.iv))),
    encryptedContent: unhex(f.expected.ciphertext),
  };
}

const BASE: CmsParts = partsFrom(new Uint8Array(32).fill(7), FIXTURES[0]!);

describe("layouts KMS may use", () => {
  const layouts: [string, Layout][] = [
    ["indefinite, constructed, one chunk", KMS_LAYOUT],
    ["indefinite, constructed, 16-byte chunks", { indefinite: true, content: "constructed", chunkSize: 16 }],
    ["indefinite, constructed, 1-byte chunks with an empty one", { indefinite: true, content: "constructed", chunkSize: 0 }],
    ["indefinite, primitive", { indefinite: true, content: "primitive", chunkSize: 0 }],
    ["definite (DER-like), primitive", { indefinite: false, content: "primitive", chunkSize: 0 }],
    ["definite, constructed", { indefinite: false, content: "constructed", chunkSize: 7 }],
  ];
  for (const [name, layout] of layouts) {
    it(name, () => {
      const env = parseCmsEnvelope(assemble(BASE, layout));
      expect(hex(env.encryptedContent)).toBe(hex(BASE.encryptedContent));
      expect(hex(env.iv)).toBe(hex(BASE.contentEncryptionAlgorithm.subarray(-16)));
      expect(hex(env.encryptedKey)).toBe(hex(BASE.encryptedKey));
    });
  }

  it("OAEP hash parameters may be absent instead of NULL (RFC 4055 §2.1), and an explicit empty label is the default", () => {
    const params = seq([
      cons(0xa0, [algId(OID.sha256)], false),
      cons(0xa1, [algId(OID.mgf1, algId(OID.sha256))], false),
      cons(0xa2, [algId(OID.pSpecified, octets(new Uint8Array(0)))], false),
    ]);
    expect(codeOf(() => parseCmsEnvelope(assemble({ ...BASE, keyEncryptionAlgorithm: algId(OID.rsaesOaep, params) })))).toBe("ok");
  });
});

describe("one mutated field → one code", () => {
  const wrongOaep = (hash: string, mgfHash: string) => algId(OID.rsaesOaep, oaepParams(hash, mgfHash));
  const cases: [string, Uint8Array, CmsErrorCode][] = [
    ["outer contentType signedData", assemble({ ...BASE, outerContentType: OID.signedData }), "ERR_CMS_CONTENT_TYPE"],
    ["inner contentType not id-data", assemble({ ...BASE, innerContentType: OID.signedData }), "ERR_CMS_CONTENT_TYPE"],
    ["EnvelopedData version 0", assemble({ ...BASE, envelopedVersion: 0 }), "ERR_CMS_MALFORMED"],
    ["EnvelopedData version 3", assemble({ ...BASE, envelopedVersion: 3 }), "ERR_CMS_MALFORMED"],
    ["originatorInfo present", assemble({ ...BASE, originatorInfo: cons(0xa0, [], false) }), "ERR_CMS_MALFORMED"],
    ["unprotectedAttrs present", assemble({ ...BASE, unprotectedAttrs: cons(0xa1, [], false) }), "ERR_CMS_MALFORMED"],
    ["two recipients", assemble({ ...BASE, recipients: [ktri(BASE), ktri(BASE)] }), "ERR_CMS_RECIPIENT"],
    ["no recipient", assemble({ ...BASE, recipients: [] }), "ERR_CMS_RECIPIENT"],
    ["KeyAgreeRecipientInfo [1]", assemble({ ...BASE, recipients: [cons(0xa1, [int(3)], false)] }), "ERR_CMS_RECIPIENT"],
    ["KTRI version 0", assemble({ ...BASE, ktriVersion: 0 }), "ERR_CMS_RECIPIENT"],
    ["rid issuerAndSerialNumber", assemble({ ...BASE, rid: seq([seq([]), int(1)]) }), "ERR_CMS_RECIPIENT"],
    ["rid empty", assemble({ ...BASE, rid: prim(0x80, new Uint8Array(0)) }), "ERR_CMS_MALFORMED"],
    ["PKCS#1 v1.5 (rsaEncryption)", assemble({ ...BASE, keyEncryptionAlgorithm: algId(OID.rsaEncryption, NULL) }), "ERR_CMS_ALGORITHM"],
    ["OAEP without parameters", assemble({ ...BASE, keyEncryptionAlgorithm: algId(OID.rsaesOaep) }), "ERR_CMS_ALGORITHM"],
    ["OAEP with all-default (SHA-1) parameters", assemble({ ...BASE, keyEncryptionAlgorithm: algId(OID.rsaesOaep, seq([])) }), "ERR_CMS_ALGORITHM"],
    ["OAEP hash SHA-1", assemble({ ...BASE, keyEncryptionAlgorithm: wrongOaep(OID.sha1, OID.sha256) }), "ERR_CMS_ALGORITHM"],
    ["OAEP hash SHA-384", assemble({ ...BASE, keyEncryptionAlgorithm: wrongOaep(OID.sha384, OID.sha256) }), "ERR_CMS_ALGORITHM"],
    ["OAEP MGF1-SHA-1", assemble({ ...BASE, keyEncryptionAlgorithm: wrongOaep(OID.sha256, OID.sha1) }), "ERR_CMS_ALGORITHM"],
    [
      "OAEP without maskGenFunc (MGF1-SHA-1 default)",
      assemble({ ...BASE, keyEncryptionAlgorithm: algId(OID.rsaesOaep, seq([cons(0xa0, [algId(OID.sha256, NULL)], false)])) }),
      "ERR_CMS_ALGORITHM",
    ],
    [
      "OAEP with a non-empty label",
      assemble({
        ...BASE,
        keyEncryptionAlgorithm: algId(OID.rsaesOaep, seq([...oaepInner(), cons(0xa2, [algId(OID.pSpecified, octets(Uint8Array.of(1)))], false)])),
      }),
      "ERR_CMS_ALGORITHM",
    ],
    [
      "OAEP params with an unknown field",
      assemble({ ...BASE, keyEncryptionAlgorithm: algId(OID.rsaesOaep, seq([...oaepInner(), cons(0xa3, [NULL], false)])) }),
      "ERR_CMS_MALFORMED",
    ],
    [
      "OAEP hash params not NULL",
      assemble({ ...BASE, keyEncryptionAlgorithm: algId(OID.rsaesOaep, seq([cons(0xa0, [algId(OID.sha256, int(0))], false), oaepInner()[1]!])) }),
      "ERR_CMS_MALFORMED",
    ],
    ["encryptedKey 255 bytes", assemble({ ...BASE, encryptedKey: BASE.encryptedKey.subarray(1) }), "ERR_CMS_MALFORMED"],
    ["encryptedKey 512 bytes", assemble({ ...BASE, encryptedKey: new Uint8Array(512) }), "ERR_CMS_MALFORMED"],
    [
      "encryptedKey constructed",
      assemble({ ...BASE, recipients: [seq([int(2), BASE.rid, BASE.keyEncryptionAlgorithm, cons(0x24, [octets(BASE.encryptedKey)], false)])] }),
      "ERR_CMS_MALFORMED",
    ],
    ["AES-128-CBC", assemble({ ...BASE, contentEncryptionAlgorithm: algId(OID.aes128Cbc, octets(new Uint8Array(16))) }), "ERR_CMS_ALGORITHM"],
    ["AES-256-GCM", assemble({ ...BASE, contentEncryptionAlgorithm: algId(OID.aes256Gcm, seq([octets(new Uint8Array(12))])) }), "ERR_CMS_ALGORITHM"],
    ["IV 12 bytes", assemble({ ...BASE, contentEncryptionAlgorithm: algId(OID.aes256Cbc, octets(new Uint8Array(12))) }), "ERR_CMS_MALFORMED"],
    ["IV missing", assemble({ ...BASE, contentEncryptionAlgorithm: algId(OID.aes256Cbc) }), "ERR_CMS_MALFORMED"],
    ["IV as NULL", assemble({ ...BASE, contentEncryptionAlgorithm: algId(OID.aes256Cbc, NULL) }), "ERR_CMS_MALFORMED"],
    ["encryptedContent missing", assemble(BASE, { ...KMS_LAYOUT, content: "absent" }), "ERR_CMS_MALFORMED"],
    ["encryptedContent 47 bytes", assemble({ ...BASE, encryptedContent: BASE.encryptedContent.subarray(1) }), "ERR_CMS_MALFORMED"],
    ["encryptedContent empty", assemble({ ...BASE, encryptedContent: new Uint8Array(0) }, { ...KMS_LAYOUT, content: "primitive" }), "ERR_CMS_MALFORMED"],
    ["encryptedContent chunk not an OCTET STRING", assemble(BASE, KMS_LAYOUT).map((b, i, all) => (i === findChunkTag(all) ? 0x0c : b)), "ERR_CMS_MALFORMED"],
    ["trailing byte", cat(assemble(BASE), Uint8Array.of(0)), "ERR_CMS_MALFORMED"],
    ["trailing end-of-contents", cat(assemble(BASE), Uint8Array.of(0, 0)), "ERR_CMS_MALFORMED"],
    ["two ContentInfos", cat(assemble(BASE), assemble(BASE)), "ERR_CMS_MALFORMED"],
    ["empty input", new Uint8Array(0), "ERR_CMS_MALFORMED"],
    ["primitive with indefinite length", Uint8Array.of(0x04, 0x80, 0x01, 0x00, 0x00), "ERR_CMS_MALFORMED"],
    ["deeper than the schema", nested(64), "ERR_CMS_MALFORMED"],
    ["high tag number", Uint8Array.of(0x3f, 0x81, 0x00, 0x00), "ERR_CMS_MALFORMED"],
    ["over 64 KiB", new Uint8Array(MAX_CMS_BYTES + 1), "ERR_CMS_TOO_LARGE"],
    [
      "too many content chunks",
      assemble({ ...BASE, encryptedContent: new Uint8Array(MAX_CONTENT_CHUNKS + 16) }, { indefinite: true, content: "constructed", chunkSize: 1 }),
      "ERR_CMS_TOO_LARGE",
    ],
  ];
  for (const [name, bytes, code] of cases) {
    it(`${name} → ${code}`, () => {
      expect(codeOf(() => parseCmsEnvelope(bytes))).toBe(code);
    });
  }

  it("every truncation of both fixtures → ERR_CMS_MALFORMED", () => {
    for (const f of FIXTURES) {
      for (let n = 0; n < f.bytes.length; n++) {
        expect(codeOf(() => parseCmsEnvelope(f.bytes.subarray(0, n)))).toBe("ERR_CMS_MALFORMED");
      }
    }
  });

  it("a 64 KiB envelope at the limit still parses", () => {
    const small = assemble({ ...BASE, encryptedContent: new Uint8Array(16) });
    const content = new Uint8Array(16 * Math.floor((MAX_CMS_BYTES - small.length - 16) / 16));
    const bytes = assemble({ ...BASE, encryptedContent: content }, { ...KMS_LAYOUT, content: "primitive" });
    expect(bytes.length).toBeLessThanOrEqual(MAX_CMS_BYTES);
    expect(parseCmsEnvelope(bytes).encryptedContent.length).toBe(content.length);
  });

  it("non-Uint8Array input → ERR_CMS_MALFORMED", () => {
    expect(codeOf(() => parseCmsEnvelope("30 80" as unknown as Uint8Array))).toBe("ERR_CMS_MALFORMED");
  });
});

function oaepInner(): Uint8Array[] {
  return [cons(0xa0, [algId(OID.sha256, NULL)], false), cons(0xa1, [algId(OID.mgf1, algId(OID.sha256, NULL))], false)];
}

function cat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

function nested(depth: number): Uint8Array {
  let inner: Uint8Array = NULL;
  for (let i = 0; i < depth; i++) inner = seq([inner], true);
  return inner;
}

/** Offset of the first chunk's tag inside the constructed [0] content (`a0 80 04 ..`). */
function findChunkTag(bytes: Uint8Array): number {
  for (let i = bytes.length - 1; i > 0; i--) {
    if (bytes[i - 1] === 0x80 && bytes[i - 2] === 0xa0 && bytes[i] === 0x04) return i;
  }
  throw new Error("no constructed content");
}

describe("property: junk only ever yields a CmsError", () => {
  const onlyTyped = (bytes: Uint8Array): void => {
    try {
      parseCmsEnvelope(bytes);
    } catch (err) {
      if (!(err instanceof CmsError)) throw err;
    }
  };

  it("random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1024 }), (b) => onlyTyped(b)),
      { numRuns: 2000 },
    );
  });

  it("random bytes behind a valid-looking prefix", () => {
    const prefix = FIXTURES[0]!.bytes.subarray(0, 15);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => onlyTyped(cat(prefix, b))),
      { numRuns: 2000 },
    );
  });

  const mutation = fc.oneof(
    fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant("delete" as const), at: fc.nat() }),
  );
  type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;
  function mutate(src: Uint8Array, muts: Mutation[]): Uint8Array {
    let b = Array.from(src);
    for (const m of muts) {
      const at = m.at % (b.length + 1);
      if (m.kind === "flip" && at < b.length) b[at] = b[at]! ^ (1 << m.bit);
      if (m.kind === "set" && at < b.length) b[at] = m.value;
      if (m.kind === "insert") b = [...b.slice(0, at), m.value, ...b.slice(at)];
      if (m.kind === "delete" && at < b.length) b = [...b.slice(0, at), ...b.slice(at + 1)];
    }
    return Uint8Array.from(b);
  }

  for (const f of FIXTURES) {
    it(`random mutations of ${f.name}`, () => {
      fc.assert(
        fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (muts) => onlyTyped(mutate(f.bytes, muts))),
        { numRuns: 3000 },
      );
    });
  }

  it("every single-byte change in the structure (not the key/IV/ciphertext payload) is refused or harmless", () => {
    // A change inside a payload (SKI, encrypted key, IV, ciphertext) still parses;
    // a change in any tag, length or OID must not. Count both, so the test
    // would notice a parser that accepted everything.
    const f = FIXTURES[0]!;
    let refused = 0;
    for (let i = 0; i < f.bytes.length; i++) {
      const b = Uint8Array.from(f.bytes);
      b[i] = b[i]! ^ 0x01;
      if (codeOf(() => parseCmsEnvelope(b)) !== "ok") refused++;
    }
    const payload = 32 + 256 + 16 + 48;
    expect(refused).toBe(f.bytes.length - payload);
  });
});
