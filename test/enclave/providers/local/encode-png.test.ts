import zlib from "node:zlib";
import { describe, expect, it } from "vitest";
import { adler32, crc32, encodeRgbPng } from "../../../../enclave/providers/local/encode-png.js";

describe("encodeRgbPng", () => {
  it("CRC-32 and Adler-32 match their published check values", () => {
    // CRC-32/ISO-HDLC check value (the catalogue's "123456789"); Adler-32 of "Wikipedia" (RFC 1950's example in the wild).
    expect(crc32(Buffer.from("123456789"))).toBe(0xcbf43926);
    expect(adler32(Buffer.from("Wikipedia"))).toBe(0x11e60398);
  });

  it("writes a PNG whose IDAT inflates back to the scanlines, each with filter byte 0", () => {
    const rgb = Buffer.from(Array.from({ length: 3 * 2 * 3 }, (_, i) => i * 7));
    const png = encodeRgbPng(3, 2, rgb);
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.readUInt32BE(16)).toBe(3);
    expect(png.readUInt32BE(20)).toBe(2);
    const idatAt = png.indexOf("IDAT");
    const idat = png.subarray(idatAt + 4, idatAt + 4 + png.readUInt32BE(idatAt - 4));
    const raw = zlib.inflateSync(idat);
    expect(raw).toEqual(Buffer.concat([Buffer.from([0]), rgb.subarray(0, 9), Buffer.from([0]), rgb.subarray(9)]));
    // Every chunk's CRC covers its type and data.
    for (let at = 8; at < png.length; ) {
      const length = png.readUInt32BE(at);
      expect(png.readUInt32BE(at + 8 + length)).toBe(crc32(png.subarray(at + 4, at + 8 + length)));
      at += 12 + length;
    }
  });

  it.each([
    [0, 1, 0],
    [2, 2, 11],
    [1.5, 1, 3],
  ])("refuses %d×%d with %d bytes", (w, h, n) => {
    expect(() => encodeRgbPng(w, h, Buffer.alloc(n))).toThrow(RangeError);
  });
});
