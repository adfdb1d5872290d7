import { createHash } from "node:crypto";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { readEif } from "../../../../infra/review/eif/eif-reader.js";
import { EifError } from "../../../../infra/review/eif/errors.js";
import { compareWithManifest, measureEif } from "../../../../infra/review/eif/measure.js";
import {
  buildEif,
  bytesOf,
  fixCrc,
  expectedPcr,
  expectedPcrs,
  imageSections,
  makeSigningCertificate,
  signatureSection,
  TYPE,
  type ImageParts,
  type TestSigner,
} from "./eif-builder.js";

const hex = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString("hex") : undefined);
const kernel = bytesOf("K".repeat(1000));
const cmdline = bytesOf("console=ttyS0");
const r1 = bytesOf("first ramdisk: init + nsm driver");
const r2 = bytesOf("second ramdisk: the application");
const r3 = new Uint8Array(4096).map((_, i) => i & 0xff);

let signer: TestSigner;
beforeAll(async () => {
  signer = await makeSigningCertificate();
});

function measure(p: ImageParts) {
  return measureEif(readEif(buildEif(imageSections(p))));
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof EifError) return err.code;
    throw err;
  }
  return "accepted";
}

describe("measureEif: PCRs against an independent computation", () => {
  it.each([
    ["one ramdisk", [r1]],
    ["two ramdisks", [r1, r2]],
    ["three ramdisks", [r1, r2, r3]],
  ])("%s", (_, ramdisks) => {
    const p: ImageParts = { kernel, cmdline, ramdisks };
    const m = measure(p);
    const want = expectedPcrs(p);
    expect(hex(m.pcr0)).toBe(want[0]);
    expect(hex(m.pcr1)).toBe(want[1]);
    expect(hex(m.pcr2)).toBe(want[2]);
    expect(m.pcr8).toBeUndefined();
    expect(m.signingCertificate).toBeUndefined();
  });

  it("with one ramdisk, PCR2 is the extend of SHA-384 of nothing", () => {
    expect(hex(measure({ kernel, cmdline, ramdisks: [r1] }).pcr2)).toBe(expectedPcr());
  });

  it("section headers are not hashed: moving bytes between kernel and cmdline keeps PCR0 and PCR1", () => {
    const a = measure({ kernel: bytesOf("abcdef"), cmdline: bytesOf("gh"), ramdisks: [r1] });
    const b = measure({ kernel: bytesOf("abc"), cmdline: bytesOf("defgh"), ramdisks: [r1] });
    expect(hex(a.pcr0)).toBe(hex(b.pcr0));
    expect(hex(a.pcr1)).toBe(hex(b.pcr1));
  });

  it("metadata and signature are in no PCR but PCR8", () => {
    const plain = measure({ kernel, cmdline, ramdisks: [r1, r2] });
    const full = measure({ kernel, cmdline, ramdisks: [r1, r2], metadata: bytesOf('{"ImageName":"egw"}'), signer });
    expect(hex(full.pcr0)).toBe(hex(plain.pcr0));
    expect(hex(full.pcr1)).toBe(hex(plain.pcr1));
    expect(hex(full.pcr2)).toBe(hex(plain.pcr2));
  });

  it("a signed image: PCR8 from the certificate DER, certificate details, metadata", () => {
    const metadata = { ImageName: "egw", ImageVersion: "0.1.0", BuildMetadata: { BuildTool: "nitro-cli" }, CustomMetadata: {} };
    const p: ImageParts = { kernel, cmdline, ramdisks: [r1, r2], metadata: bytesOf(JSON.stringify(metadata)), signer };
    const m = measure(p);
    expect(hex(m.pcr8)).toBe(expectedPcrs(p)[8]);
    expect(m.metadata).toEqual(metadata);
    expect(m.signingCertificate).toMatchObject({
      notBefore: new Date("2030-01-01T00:00:00Z"),
      notAfter: new Date("2031-01-01T00:00:00Z"),
      sha256: createHash("sha256").update(signer.der).digest("hex"),
    });
    expect(m.signingCertificate!.subject).toContain("egw test EIF signer");
    expect(m.signingCertificate!.issuer).toContain("egw test EIF signer");
  });

  it("the certificate may also come as a CBOR byte string", () => {
    const sections = imageSections({ kernel, cmdline, ramdisks: [r1] });
    sections.push({ type: TYPE.signature, data: signatureSection([{ certificate: bytesOf(signer.pem), signature: bytesOf("cose") }], true) });
    expect(hex(measureEif(readEif(buildEif(sections))).pcr8)).toBe(expectedPcr(signer.der));
  });
});

describe("measureEif: rejections", () => {
  const withSignature = (data: Uint8Array) => buildEif([...imageSections({ kernel, cmdline, ramdisks: [r1] }), { type: TYPE.signature, data }]);
  const withMetadata = (data: Uint8Array) => buildEif(imageSections({ kernel, cmdline, ramdisks: [r1], metadata: data }));
  const cert = () => bytesOf(signer.pem);

  it.each([
    ["not CBOR", () => withSignature(bytesOf("\xff\xff"))],
    ["an empty list", () => withSignature(signatureSection([]))],
    ["a DER certificate instead of PEM", () => withSignature(signatureSection([{ certificate: signer.der, signature: bytesOf("s") }]))],
    ["two PEM blocks", () => withSignature(signatureSection([{ certificate: bytesOf(signer.pem + signer.pem), signature: bytesOf("s") }]))],
    [
      "PEM of garbage",
      () => withSignature(signatureSection([{ certificate: bytesOf("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), signature: bytesOf("s") }])),
    ],
    [
      "a map with an extra key",
      () => withSignature(Uint8Array.from([0x81, 0xa3, ...[...signatureSection([{ certificate: cert(), signature: bytesOf("s") }])].slice(2), 0x61, 0x78, 0x00])),
    ],
  ])("signature section: %s → ERR_EIF_SIGNATURE", (_, make) => {
    expect(codeOf(() => measureEif(readEif(make())))).toBe("ERR_EIF_SIGNATURE");
  });

  it.each([
    ["not JSON", bytesOf("{")],
    ["a JSON array", bytesOf("[]")],
    ["invalid UTF-8", Uint8Array.from([0x7b, 0xff, 0x7d])],
  ])("metadata: %s → ERR_EIF_METADATA", (_, data) => {
    expect(codeOf(() => measureEif(readEif(withMetadata(data))))).toBe("ERR_EIF_METADATA");
  });
});

describe("measureEif under random mutation of the signature and metadata sections", () => {
  it("never throws anything but EifError (CRC fixed so parsing reaches the contents)", () => {
    const p: ImageParts = { kernel, cmdline, ramdisks: [r1], metadata: bytesOf('{"a":1}'), signer };
    const base = buildEif(imageSections(p));
    const eif = readEif(base);
    const sig = eif.sections.find((s) => s.type === "signature")!;
    const meta = eif.sections.find((s) => s.type === "metadata")!;
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), (edits) => {
        const bytes = new Uint8Array(base);
        for (const [inSig, at, value] of edits) {
          const s = inSig ? sig : meta;
          bytes[s.offset + 12 + (at % s.size)] = value;
        }
        try {
          measureEif(readEif(fixCrc(bytes)));
        } catch (err) {
          if (!(err instanceof EifError)) throw err;
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe("compareWithManifest", () => {
  const p: ImageParts = { kernel, cmdline, ramdisks: [r1, r2] };
  const want = expectedPcrs(p);
  const manifest = (entries: { label: string; pcrs: Record<string, string> }[]) => JSON.stringify({ version: 1, measurements: entries, trust: "any" });

  it("reports the first entry whose every PCR matches", () => {
    const result = compareWithManifest(
      measure(p),
      manifest([
        { label: "old build", pcrs: { 0: "00".repeat(48) } },
        { label: "release", pcrs: { 0: want[0]!, 1: want[1]!, 2: want[2]!.toUpperCase() } },
      ]),
    );
    expect(result).toEqual({ matched: true, label: "release" });
  });

  it("lists every mismatch of every entry", () => {
    const result = compareWithManifest(
      measure(p),
      manifest([
        { label: "a", pcrs: { 0: "00".repeat(48), 1: want[1]! } },
        { label: "b", pcrs: { 2: "11".repeat(48), 8: "22".repeat(48) } },
      ]),
    );
    expect(result).toEqual({
      matched: false,
      entries: [
        { label: "a", mismatches: [{ index: 0, expected: "00".repeat(48), actual: want[0] }] },
        {
          label: "b",
          mismatches: [
            { index: 2, expected: "11".repeat(48), actual: want[2] },
            { index: 8, expected: "22".repeat(48), actual: null },
          ],
        },
      ],
    });
  });

  it("an invalid manifest throws ERR_MANIFEST_INVALID", () => {
    expect(() => compareWithManifest(measure(p), '{"version":1,"measurements":[]}')).toThrow(expect.objectContaining({ code: "ERR_MANIFEST_INVALID" }));
  });
});
