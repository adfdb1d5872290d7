/**
 * A minimal, dependency-free PNG encoder (ISO/IEC 15948) for 8-bit RGB
 * pixels: filter type 0 on every scanline, one zlib stream (RFC 1950) with a
 * single stored deflate block (RFC 1951 §3.2.4), so the bytes depend on the
 * pixels alone, not on the zlib build. Fine below 64 KiB of raw pixels.
 */

/** `rgb` holds width × height × 3 bytes, row by row. */
export function encodeRgbPng(width: number, height: number, rgb: Buffer): Buffer {
  const rowBytes = width * 3;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || rgb.length !== height * rowBytes) {
    throw new RangeError(`encodeRgbPng expected ${width}×${height}×3 bytes, got length=${rgb.length}`);
  }
  // Each scanline starts with filter type 0 (None), PNG §9.2.
  const raw = Buffer.alloc(height * (rowBytes + 1));
  for (let y = 0; y < height; y++) rgb.copy(raw, y * (rowBytes + 1) + 1, y * rowBytes, (y + 1) * rowBytes);

  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: truecolour
  // compression 0, filter 0, interlace 0 already zero
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", zlibStored(raw)),
    pngChunk("IEND", Buffer.alloc(0)),
  ]);
}

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "ascii");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])));
  return Buffer.concat([head, data, crc]);
}

/** A zlib stream (RFC 1950) with one stored deflate block (RFC 1951 §3.2.4); fine below 64 KiB. */
function zlibStored(data: Buffer): Buffer {
  const header = Buffer.from([0x78, 0x01]);
  const block = Buffer.alloc(5);
  block[0] = 0x01; // BFINAL=1, BTYPE=00
  block.writeUInt16LE(data.length, 1);
  block.writeUInt16LE(~data.length & 0xffff, 3);
  const adler = Buffer.alloc(4);
  adler.writeUInt32BE(adler32(data));
  return Buffer.concat([header, block, data, adler]);
}

export function adler32(data: Uint8Array): number {
  let a = 1;
  let b = 0;
  for (const byte of data) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

let crcTable: Uint32Array | undefined;
export function crc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of data) crc = crcTable[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
