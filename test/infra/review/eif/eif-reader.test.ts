import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { readEif } from "../../../../infra/review/eif/eif-reader.js";
import { EifError } from "../../../../infra/review/eif/errors.js";
import { measureEif } from "../../../../infra/review/eif/measure.js";
import { buildEif, bytesOf, crc32, fixCrc, imageSections, TYPE, type ImageParts, type RawSection } from "./eif-builder.js";

const parts: ImageParts = {
  kernel: bytesOf("bzImage kernel bytes"),
  cmdline: bytesOf("reboot=k panic=30 pci=off nomodules console=ttyS0"),
  ramdisks: [bytesOf("bootstrap initrd"), bytesOf("customer initrd")],
  metadata: bytesOf(JSON.stringify({ ImageName: "egw", ImageVersion: "0.1.0" })),
};
const good = () => buildEif(imageSections(parts));

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof EifError) return err.code;
    throw err;
  }
  return "accepted";
}

describe("readEif: accepted images", () => {
  it("the test CRC is CRC-32/ISO-HDLC (check value of '123456789')", () => {
    expect(crc32([bytesOf("123456789")])).toBe(0xcbf43926);
  });

  it("reads header, sections and views of each payload", () => {
    const eif = readEif(good());
    expect(eif.header).toMatchObject({ version: 4, arch: "x86_64", defaultMemBytes: 1024 ** 3, defaultCpus: 2, numSections: 5 });
    expect(eif.sections.map((s) => s.type)).toEqual(["kernel", "cmdline", "metadata", "ramdisk", "ramdisk"]);
    expect(eif.sections[0]).toMatchObject({ offset: 548, size: parts.kernel.length });
    expect(eif.sections[1]!.offset).toBe(548 + 12 + parts.kernel.length);
    expect(Buffer.from(eif.kernel).equals(Buffer.from(parts.kernel))).toBe(true);
    expect(Buffer.from(eif.cmdline).toString()).toBe(Buffer.from(parts.cmdline).toString());
    expect(eif.ramdisks.map((r) => Buffer.from(r).toString())).toEqual(["bootstrap initrd", "customer initrd"]);
    expect(eif.signature).toBeUndefined();
    expect(Buffer.from(eif.metadata!).toString()).toContain("ImageName");
  });

  it("accepts a v3 image without metadata and reports the arm64 flag", () => {
    const eif = readEif(buildEif(imageSections({ ...parts, metadata: undefined }), { version: 3, flags: 1 }));
    expect(eif.header.arch).toBe("aarch64");
    expect(eif.metadata).toBeUndefined();
  });
});

describe("readEif: rejections, one defect each", () => {
  const cases: [string, () => Uint8Array, string][] = [
    ["bad magic", () => buildEif(imageSections(parts), { magic: bytesOf("EIF.") }), "ERR_EIF_MAGIC"],
    ["version 1 (no CRC)", () => buildEif(imageSections(parts), { version: 1 }), "ERR_EIF_VERSION"],
    ["version 5", () => buildEif(imageSections(parts), { version: 5 }), "ERR_EIF_VERSION"],
    ["metadata in a v3 image", () => buildEif(imageSections(parts), { version: 3 }), "ERR_EIF_SECTION_TYPE"],
    ["corrupted CRC", () => buildEif(imageSections(parts), { crc: 0xdeadbeef }), "ERR_EIF_CRC"],
    [
      "a flipped payload byte",
      () => {
        const b = good();
        b[b.length - 1]! ^= 1;
        return b;
      },
      "ERR_EIF_CRC",
    ],
    [
      "a flipped reserved header byte",
      () => {
        const b = good();
        b[25]! ^= 1;
        return b;
      },
      "ERR_EIF_CRC",
    ],
    ["truncated section", () => good().subarray(0, -3), "ERR_EIF_TRUNCATED"],
    [
      "truncated section header",
      () => {
        const b = good();
        return fixCrc(new Uint8Array(Buffer.concat([b, new Uint8Array(5)])));
      },
      "ERR_EIF_TRUNCATED",
    ],
    ["truncated header", () => good().subarray(0, 547), "ERR_EIF_TRUNCATED"],
    ["header only", () => buildEif([]), "ERR_EIF_TRUNCATED"],
    ["unknown section type 6", () => buildEif([...imageSections(parts), { type: 6, data: bytesOf("x") }]), "ERR_EIF_SECTION_TYPE"],
    ["invalid section type 0", () => buildEif([{ type: TYPE.invalid, data: bytesOf("x") }, ...imageSections(parts)]), "ERR_EIF_SECTION_TYPE"],
    ["oversized section (2^40 bytes declared)", () => buildEif(imageSections(parts).map((s, i) => (i === 0 ? { ...s, declaredSize: 2n ** 40n } : s))), "ERR_EIF_SECTION_SIZE"],
    ["oversized section (2^64 - 1 declared)", () => buildEif(imageSections(parts).map((s, i) => (i === 3 ? { ...s, declaredSize: 2n ** 64n - 1n } : s))), "ERR_EIF_SECTION_SIZE"],
    ["declared size past the end of the file", () => buildEif(imageSections(parts).map((s, i) => (i === 4 ? { ...s, declaredSize: 1000n } : s))), "ERR_EIF_TRUNCATED"],
    ["empty kernel", () => buildEif(imageSections({ ...parts, kernel: new Uint8Array() })), "ERR_EIF_SECTION_SIZE"],
    ["section count above 32", () => buildEif(imageSections(parts), { numSections: 33 }), "ERR_EIF_LAYOUT"],
    ["section count mismatch (header says more)", () => buildEif(imageSections(parts), { numSections: 6 }), "ERR_EIF_LAYOUT"],
    ["section count mismatch (header says fewer)", () => buildEif(imageSections(parts), { numSections: 4 }), "ERR_EIF_LAYOUT"],
    [
      "overlapping sections in the offset table",
      () =>
        buildEif(imageSections(parts), {
          tableOverride: (o) => {
            o[1] = o[0]! + 4n;
          },
        }),
      "ERR_EIF_LAYOUT",
    ],
    [
      "a size in the table that disagrees",
      () =>
        buildEif(imageSections(parts), {
          tableOverride: (_, s) => {
            s[2] = s[2]! + 1n;
          },
        }),
      "ERR_EIF_LAYOUT",
    ],
    [
      "a non-zero unused table entry",
      () =>
        buildEif(imageSections(parts), {
          tableOverride: (o) => {
            o[31] = 548n;
          },
        }),
      "ERR_EIF_LAYOUT",
    ],
    [
      "an offset beyond 2^53",
      () =>
        buildEif(imageSections(parts), {
          tableOverride: (o) => {
            o[0] = 2n ** 60n;
          },
        }),
      "ERR_EIF_LAYOUT",
    ],
    [
      "cmdline before kernel",
      () => {
        const s = imageSections(parts);
        return buildEif([s[1]!, s[0]!, ...s.slice(2)]);
      },
      "ERR_EIF_LAYOUT",
    ],
    ["no ramdisk", () => buildEif(imageSections({ ...parts, ramdisks: [] })), "ERR_EIF_LAYOUT"],
    [
      "a section after the signature",
      () => buildEif([...imageSections(parts), { type: TYPE.signature, data: bytesOf("x") }, { type: TYPE.ramdisk, data: bytesOf("x") }]),
      "ERR_EIF_LAYOUT",
    ],
    ["two kernels", () => buildEif([{ type: TYPE.kernel, data: bytesOf("k") }, ...imageSections(parts)]), "ERR_EIF_LAYOUT"],
    [
      "33 sections",
      () => buildEif([...imageSections(parts), ...Array.from({ length: 28 }, (): RawSection => ({ type: TYPE.ramdisk, data: bytesOf("r") }))], { numSections: 32 }),
      "ERR_EIF_LAYOUT",
    ],
  ];
  it.each(cases)("%s → %s", (_, make, code) => {
    expect(codeOf(() => readEif(make()))).toBe(code);
  });

  it("an image above maxFileBytes is refused before parsing", () => {
    expect(codeOf(() => readEif(good(), { maxFileBytes: 600 }))).toBe("ERR_EIF_TOO_LARGE");
  });

  it("per-type bounds apply to cmdline", () => {
    expect(codeOf(() => readEif(good(), { maxCmdlineBytes: 8 }))).toBe("ERR_EIF_SECTION_SIZE");
  });

  it("junk inputs are rejected with EifError", () => {
    for (const junk of [new Uint8Array(), new Uint8Array(548), new Uint8Array(10_000).fill(0xff), bytesOf(".eif")]) {
      expect(() => readEif(junk)).toThrow(EifError);
    }
  });
});

describe("readEif + measureEif under random mutation", () => {
  const base = buildEif(imageSections(parts));

  it("never throws anything but EifError (header and section headers mutated, CRC fixed)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: 548 + 12 * 8 + 200 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        fc.nat({ max: 64 }),
        (edits, recomputeCrc, cut) => {
          let bytes: Uint8Array = new Uint8Array(base);
          for (const [at, value] of edits) if (at < bytes.length) bytes[at] = value;
          if (recomputeCrc) bytes = fixCrc(bytes);
          if (cut > 0 && cut % 3 === 0) bytes = bytes.subarray(0, bytes.length - cut);
          try {
            measureEif(readEif(bytes));
          } catch (err) {
            if (!(err instanceof EifError)) throw err;
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("random bytes after a valid magic never throw anything but EifError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (tail) => {
        const raw = new Uint8Array(Math.max(548, tail.length + 6));
        raw.set(bytesOf(".eif"));
        raw.set([0, 4], 4);
        raw.set(tail, 6);
        const bytes = fixCrc(raw);
        try {
          measureEif(readEif(bytes));
        } catch (err) {
          if (!(err instanceof EifError)) throw err;
        }
      }),
      { numRuns: 500 },
    );
  });

  it("time stays linear: a 64 MiB ramdisk is read and measured quickly", () => {
    const big = new Uint8Array(64 * 1024 * 1024).fill(7);
    const eif = buildEif(imageSections({ ...parts, ramdisks: [parts.ramdisks[0]!, big] }));
    const start = performance.now();
    measureEif(readEif(eif));
    expect(performance.now() - start).toBeLessThan(5000);
  });
});
