import { Encoder } from "cbor-x";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeCoseSign1 } from "../../attestation/cose-sign1.js";
import { AttestationError } from "../../attestation/errors.js";
import { verifyAttestation } from "../../attestation/verify.js";
import { loadNitroFixtures } from "../helpers/fixtures.js";

const fixtures = loadNitroFixtures();
const first = fixtures[0]!;
const options = { currentDate: new Date(first.timestampMs), expectedPcrs: "any" as const, allowDebug: true, maxAgeMs: Infinity };

/** Runs verification and returns the error code, or "accepted". Anything else fails the test. */
async function outcome(bytes: Uint8Array): Promise<string> {
  try {
    await verifyAttestation(bytes, options);
    return "accepted";
  } catch (err) {
    if (!(err instanceof AttestationError)) throw new Error(`untyped failure: ${String(err)}`, { cause: err });
    expect(typeof err.code).toBe("string");
    return err.code;
  }
}

const hex = (h: string) => new Uint8Array(Buffer.from(h, "hex"));
const repeat = (byte: number, n: number) => new Uint8Array(n).fill(byte);

describe("junk input", () => {
  const table: [string, Uint8Array, string][] = [
    ["empty", new Uint8Array(0), "ERR_CBOR_MALFORMED"],
    ["CBOR null", hex("f6"), "ERR_COSE_STRUCTURE"],
    ["CBOR undefined", hex("f7"), "ERR_CBOR_MALFORMED"],
    ["a float", hex("fb3ff0000000000000"), "ERR_CBOR_MALFORMED"],
    ["a lone break", hex("ff"), "ERR_CBOR_MALFORMED"],
    ["reserved additional info 28", hex("1c"), "ERR_CBOR_MALFORMED"],
    ["indefinite integer", hex("1f"), "ERR_CBOR_MALFORMED"],
    ["byte string claiming 2^64-1 bytes", hex("5bffffffffffffffff"), "ERR_CBOR_MALFORMED"],
    ["byte string claiming 4 GiB", hex("5affffffff00"), "ERR_CBOR_MALFORMED"],
    ["array claiming 2^32 items", hex("9affffffff"), "ERR_CBOR_MALFORMED"],
    ["map claiming 2^32 pairs", hex("baffffffff"), "ERR_CBOR_MALFORMED"],
    ["unterminated indefinite array", hex("9f01"), "ERR_CBOR_MALFORMED"],
    ["unterminated indefinite map", hex("bf6161"), "ERR_CBOR_MALFORMED"],
    ["indefinite bstr with a text chunk", hex("5f6161ff"), "ERR_CBOR_MALFORMED"],
    ["nesting 10,000 deep", repeat(0x81, 10_000), "ERR_CBOR_MALFORMED"],
    ["indefinite nesting 10,000 deep", repeat(0x9f, 10_000), "ERR_CBOR_MALFORMED"],
    ["tag bomb", repeat(0xd2, 10_000), "ERR_CBOR_MALFORMED"],
    ["more items than the scan allows", new Uint8Array([0x99, 0x10, 0x00, ...repeat(0x00, 0x1000)]), "ERR_CBOR_MALFORMED"],
    ["larger than 16 KiB", new Uint8Array([0x9a, 0x00, 0x01, 0x00, 0x00, ...repeat(0x00, 0x10000)]), "ERR_INPUT_TOO_LARGE"],
    ["invalid UTF-8 text", hex("62c328"), "ERR_CBOR_MALFORMED"],
    ["tag 1 (date) inside", hex("84c11a5f5e1000a04040"), "ERR_CBOR_MALFORMED"],
    ["cbor-x record extension tag", hex("d9dfff8401020304"), "ERR_COSE_STRUCTURE"],
    // "{" is 0x7b: a text string whose 8-byte length runs past the input.
    ["JSON text", new TextEncoder().encode('{"module_id":"x"}'), "ERR_CBOR_MALFORMED"],
    // "-" is 0x2d, the integer -14, and the rest trails it.
    ["PEM text", new TextEncoder().encode("-----BEGIN CERTIFICATE-----\nMIIB\n"), "ERR_CBOR_TRAILING_BYTES"],
    ["two documents back to back", new Uint8Array([...first.bytes, ...first.bytes]), "ERR_CBOR_TRAILING_BYTES"],
    ["zero bytes the size of a document", new Uint8Array(first.bytes.length), "ERR_CBOR_TRAILING_BYTES"],
  ];
  for (const [name, bytes, code] of table) {
    it(`${name} → ${code}`, async () => {
      expect(await outcome(bytes)).toBe(code);
    });
  }

  it("every one-byte input is a typed error", async () => {
    for (let b = 0; b < 256; b++) {
      expect(await outcome(Uint8Array.of(b))).not.toBe("accepted");
    }
  });

  it("rejects non-bytes input with a typed error", () => {
    for (const value of [null, undefined, "string", 42, {}, [1, 2]]) {
      expect(() => decodeCoseSign1(value as unknown as Uint8Array)).toThrow(AttestationError);
    }
  });
});

describe("property: junk only ever produces typed errors", () => {
  it("random bytes", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 20_000 }), async (bytes) => {
        expect(await outcome(bytes)).not.toBe("accepted");
      }),
      { numRuns: 400 },
    );
  });

  it("random CBOR values", async () => {
    const encoder = new Encoder({ useRecords: false } as ConstructorParameters<typeof Encoder>[0]);
    await fc.assert(
      fc.asyncProperty(fc.anything({ maxDepth: 4, withMap: true, withTypedArray: true, withBigInt: true }), async (value) => {
        let bytes: Uint8Array;
        try {
          bytes = new Uint8Array(encoder.encode(value));
        } catch {
          return; // cbor-x cannot encode it; nothing to feed the verifier
        }
        expect(await outcome(bytes)).not.toBe("accepted");
      }),
      { numRuns: 400 },
    );
  });

  it("mutated real documents: typed error, or accepted with the original payload only", async () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant("delete" as const), at: fc.nat() }),
      fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
    );
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: fixtures.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), async (which, mutations) => {
        const fx = fixtures[which]!;
        let bytes = Array.from(fx.bytes);
        for (const m of mutations) {
          const at = m.at % Math.max(bytes.length, 1);
          if (m.kind === "flip") bytes[at] = (bytes[at] ?? 0) ^ (1 << m.bit);
          else if (m.kind === "set") bytes[at] = m.value;
          else if (m.kind === "insert") bytes.splice(at, 0, m.value);
          else if (m.kind === "delete") bytes.splice(at, 1);
          else bytes = bytes.slice(0, at);
        }
        const mutated = Uint8Array.from(bytes);
        try {
          const result = await verifyAttestation(mutated, {
            currentDate: new Date(fx.timestampMs),
            expectedPcrs: "any",
            allowDebug: true,
          });
          // Only framing can change harmlessly (e.g. a leading tag 18 byte);
          // what was signed must be exactly what the hardware signed.
          const original = decodeCoseSign1(fx.bytes);
          expect(Buffer.from(decodeCoseSign1(mutated).payload).equals(Buffer.from(original.payload))).toBe(true);
          expect(result.moduleId).toBe(fx.meta.decoded.module_id);
        } catch (err) {
          if (!(err instanceof AttestationError)) throw new Error(`untyped failure: ${String(err)}`, { cause: err });
        }
      }),
      { numRuns: 500 },
    );
  });
});
