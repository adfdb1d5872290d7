import { createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CmsError, type CmsErrorCode } from "../../../enclave/secrets/cms-error.js";
import { decryptCiphertextForRecipient, generateRecipientKey } from "../../../enclave/secrets/recipient-decrypt.js";
import { KMS_LAYOUT, assemble, seal, type Layout } from "../../../infra/dev/cms-encode.js";

/**
 * Round trips through envelopes sealed the way KMS seals them (RSAES-OAEP
 * SHA-256 + AES-256-CBC, BER indefinite lengths, primitive or chunked
 * content) to a freshly generated recipient key. A canary provider key is the
 * plaintext throughout; it must never show up in any error.
 */

const CANARY = "sk-CANARYSEALEDSECRET8e4f1";
const PLAINTEXT = new Uint8Array(Buffer.from(CANARY));
const recipient = generateRecipientKey();
const other = generateRecipientKey();

function encodings(s: string): string[] {
  const b = Buffer.from(s);
  return [s, b.toString("base64"), b.toString("base64url"), b.toString("hex"), s.toLowerCase()];
}

/** Everything a logger could render from an error. */
function rendered(err: unknown): string {
  const e = err as Error & { cause?: unknown };
  return [String(err), e.message, e.stack ?? "", JSON.stringify(err), JSON.stringify(Object.entries(e)), String(e.cause ?? "")].join("\n");
}

function expectNoCanary(err: unknown): void {
  const text = rendered(err);
  for (const form of encodings(CANARY)) expect(text).not.toContain(form);
}

function outcome(fn: () => Uint8Array): CmsErrorCode | "ok" {
  try {
    fn();
    return "ok";
  } catch (err) {
    if (!(err instanceof CmsError)) throw err;
    expectNoCanary(err);
    return err.code;
  }
}

describe("generateRecipientKey", () => {
  it("gives an RSA-2048 pair and the SPKI DER of its public half", () => {
    expect(recipient.privateKey.type).toBe("private");
    expect(recipient.privateKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(recipient.privateKey.asymmetricKeyDetails?.publicExponent).toBe(65537n);
    const fromSpki = createPublicKey({ key: Buffer.from(recipient.spkiDer), format: "der", type: "spki" });
    expect(fromSpki.equals(recipient.publicKey)).toBe(true);
    expect(recipient.spkiDer.length).toBe(294); // RSA-2048 SubjectPublicKeyInfo
    expect(other.publicKey.equals(recipient.publicKey)).toBe(false);
  });
});

describe("round trip", () => {
  const layouts: [string, Layout][] = [
    ["KMS shape: indefinite lengths, constructed content", KMS_LAYOUT],
    ["indefinite lengths, primitive [0] content", { indefinite: true, content: "primitive", chunkSize: 0 }],
    ["indefinite lengths, 5-byte chunks", { indefinite: true, content: "constructed", chunkSize: 5 }],
    ["definite lengths, primitive content", { indefinite: false, content: "primitive", chunkSize: 0 }],
  ];
  for (const [name, layout] of layouts) {
    it(name, () => {
      const { parts } = seal(PLAINTEXT, recipient.publicKey);
      const out = decryptCiphertextForRecipient(assemble(parts, layout), recipient.privateKey);
      expect(Buffer.from(out).toString()).toBe(CANARY); // control: the canary really goes through
    });
  }

  it("empty plaintext and block-aligned plaintext (a full padding block)", () => {
    for (const pt of [new Uint8Array(0), new Uint8Array(32).fill(0x41)]) {
      const { parts } = seal(pt, recipient.publicKey);
      expect(Buffer.from(decryptCiphertextForRecipient(assemble(parts), recipient.privateKey))).toEqual(Buffer.from(pt));
    }
  });

  it("property: any plaintext, any layout", () => {
    const layout = fc.record({
      indefinite: fc.boolean(),
      content: fc.constantFrom("primitive" as const, "constructed" as const),
      chunkSize: fc.integer({ min: 0, max: 64 }),
    });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), layout, (pt, l) => {
        const { parts } = seal(pt, recipient.publicKey);
        const out = decryptCiphertextForRecipient(assemble(parts, l), recipient.privateKey);
        expect(Buffer.from(out).equals(Buffer.from(pt))).toBe(true);
      }),
      { numRuns: 100 },
    );
  });
});

describe("decryption failures → their code, canary never in the error", () => {
  const sealed = seal(PLAINTEXT, recipient.publicKey);
  const withPadding = (last16: number[]) => {
    const padded = new Uint8Array(32);
    padded.set(PLAINTEXT.subarray(0, 16));
    padded.set(last16, 16);
    return assemble(seal(PLAINTEXT, recipient.publicKey, { padded }).parts);
  };
  const flip = (b: Uint8Array, at: number) => {
    const c = Uint8Array.from(b);
    c[at] = c[at]! ^ 0x01;
    return c;
  };
  const ec = sealed.parts.encryptedContent;

  const cases: [string, () => Uint8Array, CmsErrorCode][] = [
    ["wrong private key", () => decryptCiphertextForRecipient(assemble(sealed.parts), other.privateKey), "ERR_CMS_KEY_DECRYPT"],
    [
      "tampered encryptedKey",
      () => decryptCiphertextForRecipient(assemble({ ...sealed.parts, encryptedKey: flip(sealed.parts.encryptedKey, 100) }), recipient.privateKey),
      "ERR_CMS_KEY_DECRYPT",
    ],
    [
      "content key of 16 bytes (AES-128 smuggled under the AES-256 OID)",
      () => decryptCiphertextForRecipient(assemble(seal(PLAINTEXT, recipient.publicKey, { cek: new Uint8Array(16) }).parts), recipient.privateKey),
      "ERR_CMS_KEY_DECRYPT",
    ],
    ["padding byte 0", () => decryptCiphertextForRecipient(withPadding(Array(16).fill(0)), recipient.privateKey), "ERR_CMS_CONTENT_DECRYPT"],
    ["padding byte 17", () => decryptCiphertextForRecipient(withPadding(Array(16).fill(17)), recipient.privateKey), "ERR_CMS_CONTENT_DECRYPT"],
    ["padding bytes disagree", () => decryptCiphertextForRecipient(withPadding([...Array(12).fill(0x41), 4, 4, 3, 4]), recipient.privateKey), "ERR_CMS_CONTENT_DECRYPT"],
    [
      "tampered last ciphertext block",
      // Flipping the low bit of the second-to-last block's last byte turns pad
      // 0x06 (10 canary bytes + 6) into 0x07, which the 0x06 before it contradicts.
      () => decryptCiphertextForRecipient(assemble({ ...sealed.parts, encryptedContent: flip(ec, ec.length - 17) }), recipient.privateKey),
      "ERR_CMS_CONTENT_DECRYPT",
    ],
    ["structure error comes before key use", () => decryptCiphertextForRecipient(new Uint8Array(3), recipient.privateKey), "ERR_CMS_MALFORMED"],
    ["public key instead of private", () => decryptCiphertextForRecipient(assemble(sealed.parts), recipient.publicKey), "ERR_CMS_KEY_INVALID"],
    ["RSA-3072 key", () => decryptCiphertextForRecipient(assemble(sealed.parts), generateKeyPairSync("rsa", { modulusLength: 3072 }).privateKey), "ERR_CMS_KEY_INVALID"],
    ["EC key", () => decryptCiphertextForRecipient(assemble(sealed.parts), generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey), "ERR_CMS_KEY_INVALID"],
    ["not a KeyObject", () => decryptCiphertextForRecipient(assemble(sealed.parts), "pem" as unknown as KeyObject), "ERR_CMS_KEY_INVALID"],
  ];
  it("control: the unmutated envelope opens", () => {
    expect(outcome(() => decryptCiphertextForRecipient(assemble(sealed.parts), recipient.privateKey))).toBe("ok");
    expect(CANARY.length % 16).toBe(10); // the tampered-block case relies on a 6-byte pad
  });
  for (const [name, run, code] of cases) {
    it(`${name} → ${code}`, () => {
      expect(outcome(run)).toBe(code);
    });
  }

  it("key and content failures each carry one fixed message (no oracle)", () => {
    const messages = new Map<CmsErrorCode, Set<string>>();
    for (const [, run] of cases) {
      try {
        run();
      } catch (err) {
        if (err instanceof CmsError) messages.set(err.code, (messages.get(err.code) ?? new Set()).add(err.message));
      }
    }
    expect(messages.get("ERR_CMS_KEY_DECRYPT")?.size).toBe(1);
    expect(messages.get("ERR_CMS_CONTENT_DECRYPT")?.size).toBe(1);
  });

  it("property: random mutations of a sealed envelope give the plaintext, altered bytes, or a CmsError without the canary", () => {
    const bytes = assemble(sealed.parts);
    fc.assert(
      fc.property(fc.array(fc.record({ at: fc.nat({ max: bytes.length - 1 }), xor: fc.integer({ min: 1, max: 255 }) }), { minLength: 1, maxLength: 3 }), (muts) => {
        const b = Uint8Array.from(bytes);
        for (const m of muts) b[m.at] = b[m.at]! ^ m.xor;
        const result = outcome(() => decryptCiphertextForRecipient(b, recipient.privateKey));
        expect(typeof result).toBe("string");
      }),
      { numRuns: 300 },
    );
  });

  it("property: random bytes give only CmsErrors", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1024 }), (b) => {
        expect(outcome(() => decryptCiphertextForRecipient(b, recipient.privateKey))).not.toBe("ok");
      }),
      { numRuns: 1000 },
    );
  });
});
