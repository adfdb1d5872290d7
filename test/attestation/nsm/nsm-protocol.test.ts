import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { AttestationError } from "../../../attestation/errors.js";
import {
  NSM_ERROR_CODES,
  NSM_REQUEST_MAX_SIZE,
  NSM_RESPONSE_MAX_SIZE,
  decodeAttestationResponse,
  decodeDescribePcrResponse,
  decodeGetRandomResponse,
  encodeAttestationRequest,
  encodeDescribePcrRequest,
  encodeGetRandomRequest,
  nsmErrorCodeOf,
} from "../../../attestation/nsm/nsm-protocol.js";

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");
const unhex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text.replace(/\s+/g, ""), "hex"));

// A tiny CBOR writer (RFC 8949 §3), independent of cbor-x, for building
// expected requests and test responses.
function head(major: number, value: number): string {
  const m = major << 5;
  if (value < 24) return (m | value).toString(16).padStart(2, "0");
  if (value < 0x100) return (m | 24).toString(16) + value.toString(16).padStart(2, "0");
  if (value < 0x10000) return (m | 25).toString(16) + value.toString(16).padStart(4, "0");
  return (m | 26).toString(16) + value.toString(16).padStart(8, "0");
}
const tstr = (s: string): string => head(3, Buffer.byteLength(s)) + Buffer.from(s).toString("hex");
const bstr = (b: Uint8Array): string => head(2, b.length) + hex(b);
const map = (...entries: [string, string][]): string => head(5, entries.length) + entries.map(([k, v]) => tstr(k) + v).join("");
const TRUE = "f5";
const FALSE = "f4";
const NULL = "f6";

function expectError(fn: () => unknown, code: string, message?: RegExp): AttestationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AttestationError);
    const e = err as AttestationError;
    expect(e.code).toBe(code);
    if (message) expect(e.message).toMatch(message);
    return e;
  }
  throw new Error("expected an AttestationError");
}

const pcr48 = new Uint8Array(48).map((_, i) => i);

describe("request encoding (byte-exact, serde_cbor layout of src/api/mod.rs Request)", () => {
  it("GetRandom is the unit variant as a text string", () => {
    // 69 = text(9), "GetRandom"
    expect(hex(encodeGetRandomRequest())).toBe("69" + "47657452616e646f6d");
  });

  it("DescribePCR is a one-key map holding { index: u16 }", () => {
    const prefix =
      "a1" + // map(1)
      "6b" +
      "4465736372696265504352" + // text(11) "DescribePCR"
      "a1" + // map(1)
      "65" +
      "696e646578"; // text(5) "index"
    expect(hex(encodeDescribePcrRequest(0))).toBe(`${prefix}00`);
    expect(hex(encodeDescribePcrRequest(4))).toBe(`${prefix}04`);
    expect(hex(encodeDescribePcrRequest(23))).toBe(`${prefix}17`);
    expect(hex(encodeDescribePcrRequest(24))).toBe(`${prefix}1818`);
    expect(hex(encodeDescribePcrRequest(255))).toBe(`${prefix}18ff`);
    expect(hex(encodeDescribePcrRequest(256))).toBe(`${prefix}190100`);
    expect(hex(encodeDescribePcrRequest(65535))).toBe(`${prefix}19ffff`);
  });

  const attestationPrefix =
    "a1" + // map(1)
    "6b" +
    "4174746573746174696f6e" + // text(11) "Attestation"
    "a3"; // map(3)
  const USER_DATA = "69" + "757365725f64617461"; // text(9) "user_data"
  const NONCE = "65" + "6e6f6e6365"; // text(5) "nonce"
  const PUBLIC_KEY = "6a" + "7075626c69635f6b6579"; // text(10) "public_key"

  it("Attestation with every field omitted sends three nulls, in declaration order", () => {
    expect(hex(encodeAttestationRequest({}))).toBe(`${attestationPrefix + USER_DATA}f6${NONCE}f6${PUBLIC_KEY}f6`);
  });

  it("Attestation byte fields are major type 2 byte strings; an empty one is not null", () => {
    const encoded = encodeAttestationRequest({
      userData: new Uint8Array([1, 2, 3]),
      nonce: new Uint8Array(0),
      publicKey: new Uint8Array(24).fill(0xaa),
    });
    expect(hex(encoded)).toBe(
      attestationPrefix +
        USER_DATA +
        "43" +
        "010203" + // bytes(3)
        NONCE +
        "40" + // bytes(0)
        PUBLIC_KEY +
        "5818" +
        "aa".repeat(24), // bytes(24)
    );
  });

  it("Attestation with all three fields at the 1024-byte limit", () => {
    const encoded = encodeAttestationRequest({
      userData: new Uint8Array(1024).fill(0x11),
      nonce: new Uint8Array(1024).fill(0x22),
      publicKey: new Uint8Array(1024).fill(0x33),
    });
    expect(hex(encoded)).toBe(`${attestationPrefix + USER_DATA}590400${"11".repeat(1024)}${NONCE}590400${"22".repeat(1024)}${PUBLIC_KEY}590400${"33".repeat(1024)}`);
    expect(encoded.length).toBeLessThanOrEqual(NSM_REQUEST_MAX_SIZE);
  });

  it("accepts Buffers and subarray views and encodes only the viewed bytes", () => {
    const backing = new Uint8Array([9, 9, 1, 2, 9]);
    const encoded = encodeAttestationRequest({ nonce: backing.subarray(2, 4), userData: Buffer.from([7]) });
    expect(hex(encoded)).toBe(`${attestationPrefix + USER_DATA}4107${NONCE}420102${PUBLIC_KEY}f6`);
  });

  it("returns a plain Uint8Array that is not shared between calls", () => {
    const a = encodeGetRandomRequest();
    const b = encodeDescribePcrRequest(1);
    expect(a.constructor).toBe(Uint8Array);
    expect(hex(a)).toBe("6947657452616e646f6d");
    expect(b.buffer).not.toBe(a.buffer);
  });

  it("matches an independent encoder for any valid attestation request (property)", () => {
    const field = fc.option(fc.uint8Array({ maxLength: 1024 }), { nil: undefined });
    fc.assert(
      fc.property(field, field, field, (userData, nonce, publicKey) => {
        const opt = (b: Uint8Array | undefined): string => (b === undefined ? NULL : bstr(b));
        const expected = attestationPrefix + USER_DATA + opt(userData) + NONCE + opt(nonce) + PUBLIC_KEY + opt(publicKey);
        expect(hex(encodeAttestationRequest({ userData, nonce, publicKey }))).toBe(expected);
      }),
      { numRuns: 200 },
    );
  });
});

describe("request limits", () => {
  it.each([
    ["userData", "user_data"],
    ["nonce", "nonce"],
    ["publicKey", "public_key"],
  ] as const)("%s above 1024 bytes is ERR_NSM_REQUEST naming %s and the size", (key, field) => {
    const e = expectError(
      () => encodeAttestationRequest({ [key]: new Uint8Array(1025) }),
      "ERR_NSM_REQUEST",
      new RegExp(`"${field}" expected Uint8Array of at most 1024 bytes, got length=1025`),
    );
    expect(e.action).toBe("fix-input");
  });

  it("never puts the bytes of user_data, nonce or public_key in the message", () => {
    const secret = new Uint8Array(Buffer.from("TOP-SECRET-".repeat(100)));
    for (const key of ["userData", "nonce", "publicKey"] as const) {
      const e = expectError(() => encodeAttestationRequest({ [key]: secret }), "ERR_NSM_REQUEST");
      expect(e.message).not.toContain("TOP-SECRET");
      expect(e.message).not.toContain(hex(secret.subarray(0, 8)));
    }
  });

  it("rejects non-byte fields and a non-object request", () => {
    expectError(() => encodeAttestationRequest({ nonce: "abc" as unknown as Uint8Array }), "ERR_NSM_REQUEST", /"nonce" expected Uint8Array, got string/);
    expectError(() => encodeAttestationRequest({ userData: [1, 2] as unknown as Uint8Array }), "ERR_NSM_REQUEST", /got Array/);
    expectError(() => encodeAttestationRequest(null as unknown as object), "ERR_NSM_REQUEST", /expected an object/);
  });

  it("treats an explicit null like an omitted field", () => {
    const request = { nonce: null } as unknown as object;
    expect(hex(encodeAttestationRequest(request))).toBe(hex(encodeAttestationRequest({})));
  });

  it.each([-1, 65536, 1.5, Number.NaN, Infinity])("DescribePCR index %s is ERR_NSM_REQUEST", (index) => {
    expectError(() => encodeDescribePcrRequest(index), "ERR_NSM_REQUEST", /"index" expected an integer in 0\.\.65535/);
  });

  it("DescribePCR index of the wrong type is ERR_NSM_REQUEST", () => {
    expectError(() => encodeDescribePcrRequest("3" as unknown as number), "ERR_NSM_REQUEST", /got string/);
  });
});

describe("Attestation response", () => {
  const doc = unhex("d28443a10126a0");

  it("returns the document bytes as a copy", () => {
    const bytes = unhex(map(["Attestation", map(["document", bstr(doc)])]));
    const out = decodeAttestationResponse(bytes);
    expect(hex(out)).toBe(hex(doc));
    bytes.fill(0);
    expect(hex(out)).toBe(hex(doc));
  });

  it("accepts indefinite-length maps (RFC 8949 §3.2.2)", () => {
    const bytes = unhex(`bf${tstr("Attestation")}bf${tstr("document")}${bstr(doc)}ffff`);
    expect(hex(decodeAttestationResponse(bytes))).toBe(hex(doc));
  });

  it("accepts a document that fills the response buffer", () => {
    const header = map(["Attestation", map(["document", ""])]);
    const docLength = NSM_RESPONSE_MAX_SIZE - header.length / 2 - 3; // 3 = bytes(u16) head
    const big = new Uint8Array(docLength).fill(7);
    const bytes = unhex(map(["Attestation", map(["document", bstr(big)])]));
    expect(bytes.length).toBe(NSM_RESPONSE_MAX_SIZE);
    expect(decodeAttestationResponse(bytes).length).toBe(docLength);
  });

  it("rejects an empty document", () => {
    expectError(
      () => decodeAttestationResponse(unhex(map(["Attestation", map(["document", "40"])]))),
      "ERR_NSM_RESPONSE",
      /"Attestation.document" expected a non-empty byte string, got length=0/,
    );
  });
});

describe("DescribePCR response", () => {
  it.each([
    [TRUE, true],
    [FALSE, false],
  ])("decodes lock %s and the PCR value", (lockHex, locked) => {
    const out = decodeDescribePcrResponse(unhex(map(["DescribePCR", map(["lock", lockHex], ["data", bstr(pcr48)])])));
    expect(out.locked).toBe(locked);
    expect(hex(out.data)).toBe(hex(pcr48));
  });

  it("accepts the fields in either order", () => {
    const out = decodeDescribePcrResponse(unhex(map(["DescribePCR", map(["data", bstr(new Uint8Array(32))], ["lock", TRUE])])));
    expect(out.data.length).toBe(32);
  });

  it.each([0, 20, 47, 49, 65, 96])("rejects a PCR value of %i bytes", (length) => {
    expectError(
      () => decodeDescribePcrResponse(unhex(map(["DescribePCR", map(["lock", TRUE], ["data", bstr(new Uint8Array(length))])]))),
      "ERR_NSM_RESPONSE",
      new RegExp(`"DescribePCR.data" expected a byte string of length 32, 48 or 64, got length=${length}`),
    );
  });

  it("rejects a lock that is not a boolean", () => {
    expectError(
      () => decodeDescribePcrResponse(unhex(map(["DescribePCR", map(["lock", "01"], ["data", bstr(pcr48)])]))),
      "ERR_NSM_RESPONSE",
      /"DescribePCR.lock" expected a boolean, got number/,
    );
    expectError(
      () => decodeDescribePcrResponse(unhex(map(["DescribePCR", map(["lock", NULL], ["data", bstr(pcr48)])]))),
      "ERR_NSM_RESPONSE",
      /"DescribePCR.lock" expected a boolean, got null/,
    );
  });
});

describe("GetRandom response", () => {
  it("returns the random bytes", () => {
    const random = new Uint8Array(256).map((_, i) => 255 - i);
    expect(hex(decodeGetRandomResponse(unhex(map(["GetRandom", map(["random", bstr(random)])]))))).toBe(hex(random));
  });

  it("matches the bytes the Linux hwrng driver expects (drivers/misc/nsm.c parse_resp_get_random)", () => {
    // A1 69 "GetRandom" A1 66 "random" then a byte string.
    const bytes = unhex("a1" + "69" + "47657452616e646f6d" + "a1" + "66" + "72616e646f6d" + "44" + "deadbeef");
    expect(hex(decodeGetRandomResponse(bytes))).toBe("deadbeef");
  });

  it("rejects an empty random", () => {
    expectError(
      () => decodeGetRandomResponse(unhex(map(["GetRandom", map(["random", "40"])]))),
      "ERR_NSM_RESPONSE",
      /"GetRandom.random" expected a non-empty byte string, got length=0/,
    );
  });

  it("rejects random as a text string", () => {
    expectError(
      () => decodeGetRandomResponse(unhex(map(["GetRandom", map(["random", tstr("abcd")])]))),
      "ERR_NSM_RESPONSE",
      /"GetRandom.random" expected a byte string, got string/,
    );
  });
});

describe("NSM Error responses", () => {
  it.each(NSM_ERROR_CODES)("{ Error: %s } is ERR_NSM_RESPONSE naming the code", (code) => {
    const bytes = unhex(map(["Error", tstr(code)]));
    for (const decode of [decodeAttestationResponse, decodeDescribePcrResponse, decodeGetRandomResponse]) {
      const e = expectError(() => decode(bytes), "ERR_NSM_RESPONSE", new RegExp(`NSM returned error ${code} for `));
      expect(nsmErrorCodeOf(e)).toBe(code);
    }
  });

  it("an unknown error code is not echoed", () => {
    const e = expectError(() => decodeAttestationResponse(unhex(map(["Error", tstr("SomethingNew")]))), "ERR_NSM_RESPONSE", /unrecognised error code/);
    expect(e.message).not.toContain("SomethingNew");
    expect(nsmErrorCodeOf(e)).toBeUndefined();
  });

  it("an Error whose value is not text is rejected", () => {
    expectError(() => decodeGetRandomResponse(unhex(map(["Error", "02"]))), "ERR_NSM_RESPONSE", /unrecognised error code/);
    expectError(() => decodeGetRandomResponse(unhex(map(["Error", map(["code", "02"])]))), "ERR_NSM_RESPONSE", /unrecognised error code/);
  });

  it("nsmErrorCodeOf is undefined for other errors", () => {
    expect(nsmErrorCodeOf(new Error("x"))).toBeUndefined();
    expect(nsmErrorCodeOf(new AttestationError("ERR_NSM_REQUEST", "x", { cause: { nsmErrorCode: "InvalidIndex" } }))).toBeUndefined();
    expect(nsmErrorCodeOf(new AttestationError("ERR_NSM_RESPONSE", "x", { cause: { nsmErrorCode: "Nope" } }))).toBeUndefined();
  });
});

describe("malformed responses: every branch is ERR_NSM_RESPONSE", () => {
  const goodRandom = map(["GetRandom", map(["random", bstr(new Uint8Array([1, 2, 3, 4]))])]);

  const cases: [string, Uint8Array, RegExp][] = [
    ["empty input", new Uint8Array(0), /expected 1\.\.12288 bytes, got length=0/],
    ["input above the response buffer", new Uint8Array(NSM_RESPONSE_MAX_SIZE + 1), /expected 1\.\.12288 bytes, got length=12289/],
    ["truncated CBOR", unhex(goodRandom).subarray(0, 20), /not well-formed CBOR/],
    ["trailing bytes", unhex(`${goodRandom}00`), /not well-formed CBOR.*trailing/],
    ["a tag", unhex(`d818${goodRandom}`), /not well-formed CBOR.*tag/],
    ["a float", unhex(map(["GetRandom", map(["random", "f93c00"])])), /not well-formed CBOR/],
    ["invalid UTF-8 in a key", unhex(`a162c328${map(["random", "4101"])}`), /not well-formed CBOR.*UTF-8/],
    ["a duplicate variant key", unhex(`a2${tstr("GetRandom")}${map(["random", "4101"])}${tstr("GetRandom")}${map(["random", "4101"])}`), /not well-formed CBOR.*duplicate/],
    ["a duplicate field", unhex(map(["DescribePCR", `a3${tstr("lock")}${TRUE}${tstr("data")}${bstr(pcr48)}${tstr("lock")}${FALSE}`])), /not well-formed CBOR.*duplicate/],
    ["nesting below the field level", unhex(map(["GetRandom", map(["random", map(["x", "01"])])])), /not well-formed CBOR.*nesting/],
    ["an array at the top", unhex(`81${tstr("GetRandom")}`), /expected a one-key map, got Array/],
    ["a byte string at the top", unhex("4401020304"), /expected a one-key map, got Uint8Array/],
    ["an integer at the top", unhex("00"), /expected a one-key map, got number/],
    ["null at the top", unhex("f6"), /expected a one-key map, got null/],
    ["an empty map", unhex("a0"), /expected a one-key map, got 0 keys/],
    ["a two-key map", unhex(`a2${tstr("GetRandom")}${map(["random", "4101"])}${tstr("Attestation")}${map(["document", "4101"])}`), /got 2 keys/],
    ["an integer variant key", unhex(`a101${map(["random", "4101"])}`), /expected a text variant name, got number/],
    ["a unit variant", unhex(tstr("LockPCR")), /NSM answered "LockPCR" to GetRandom/],
    ["an unknown unit variant", unhex(tstr("Banana")), /NSM answered an unknown variant to GetRandom/],
    ["another variant", unhex(map(["Attestation", map(["document", "4101"])])), /NSM answered "Attestation" to GetRandom/],
    ["an unknown variant", unhex(map(["Teleport", map(["random", "4101"])])), /NSM answered an unknown variant to GetRandom/],
    ["a body that is not a map", unhex(map(["GetRandom", "4101"])), /"GetRandom" response body expected a map, got Uint8Array/],
    ["a missing field", unhex(map(["GetRandom", "a0"])), /"GetRandom" response lacks field "random"/],
    ["an unexpected field", unhex(map(["GetRandom", map(["random", "4101"], ["extra", "01"])])), /unexpected field "extra"/],
    ["an unprintable unexpected key", unhex(map(["GetRandom", map(["random", "4101"], ["has space", "01"])])), /unexpected field an unprintable key/],
    ["an integer field key", unhex(map(["GetRandom", `a2${tstr("random")}41010102`])), /unexpected field an unprintable key/],
  ];

  it.each(cases)("%s", (_name, bytes, message) => {
    const e = expectError(() => decodeGetRandomResponse(bytes), "ERR_NSM_RESPONSE", message);
    expect(e.action).toBe("retry");
  });

  it("a non-Uint8Array response", () => {
    expectError(() => decodeGetRandomResponse("a1" as unknown as Uint8Array), "ERR_NSM_RESPONSE", /expected Uint8Array, got string/);
  });

  it("survives random junk with a typed error only (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (junk) => {
        for (const decode of [decodeAttestationResponse, decodeDescribePcrResponse, decodeGetRandomResponse]) {
          try {
            decode(junk);
          } catch (err) {
            expect(err).toBeInstanceOf(AttestationError);
            expect((err as AttestationError).code).toBe("ERR_NSM_RESPONSE");
          }
        }
      }),
      { numRuns: 500 },
    );
  });
});
