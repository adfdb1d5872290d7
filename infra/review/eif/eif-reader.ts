import { open } from "node:fs/promises";
import { crc32 } from "node:zlib";
import { EifError } from "./errors.js";

/**
 * A strict reader for the Enclave Image Format (EIF) that `nitro-cli
 * build-enclave` writes, following aws/aws-nitro-enclaves-image-format
 * (src/defs/mod.rs for the layout, src/utils/mod.rs `EifBuilder` for how the
 * file is written, src/utils/eif_reader.rs for how it is read back).
 *
 * Layout, all integers big-endian:
 *
 *   EifHeader (548 bytes)
 *     0  magic[4] ".eif"        26  num_sections u16
 *     4  version u16            28  section_offsets[32] u64  (offset of each section HEADER)
 *     6  flags u16 (bit0 arm64) 284 section_sizes[32] u64    (size of each section's DATA)
 *     8  default_mem u64        540 unused u32
 *     16 default_cpus u64       544 eif_crc32 u32
 *     24 reserved u16
 *   then num_sections times: EifSectionHeader (12 bytes: type u16, flags u16,
 *   size u64) followed by `size` bytes of data, back to back.
 *
 * The builder writes sections contiguously in the order kernel, cmdline,
 * metadata (v4), ramdisk…, signature (when signed); the reference reader
 * ignores the offset table and walks the sections from byte 548 to the end.
 * We walk the same way and additionally require the offset/size table to
 * describe exactly the sections walked, so a loader that trusts the table
 * and a measurer that walks the file can never see different images.
 *
 * The whole image is held in memory (views, no copies): at most
 * `limits.maxFileBytes`, 1 GiB by default and never above 2 GiB - 1 (the
 * largest single read Node performs).
 */

export const EIF_MAGIC = new Uint8Array([0x2e, 0x65, 0x69, 0x66]); // ".eif"
export const EIF_HEADER_SIZE = 548;
export const EIF_SECTION_HEADER_SIZE = 12;
export const EIF_MAX_SECTIONS = 32;
/** V2 added the CRC, V3 the signature section, V4 the metadata section (src/defs/mod.rs). */
export const EIF_MIN_VERSION = 2;
export const EIF_MAX_VERSION = 4;
const CRC_OFFSET = 544;

export const EifSectionType = {
  kernel: 1,
  cmdline: 2,
  ramdisk: 3,
  signature: 4,
  metadata: 5,
} as const;
export type EifSectionName = keyof typeof EifSectionType;
const NAMES: Record<number, EifSectionName> = { 1: "kernel", 2: "cmdline", 3: "ramdisk", 4: "signature", 5: "metadata" };
/** The first version that may carry each section type. */
const SINCE_VERSION: Record<EifSectionName, number> = { kernel: 1, cmdline: 1, ramdisk: 1, signature: 3, metadata: 4 };

export interface EifLimits {
  /** Largest image accepted, in bytes. Default 1 GiB; at most 2^31 - 1. */
  maxFileBytes: number;
  /** Largest kernel or ramdisk section. Default: maxFileBytes. */
  maxSectionBytes: number;
  /** Largest cmdline section. Default 64 KiB (Linux allows 2 KiB on x86, 4 KiB on arm64). */
  maxCmdlineBytes: number;
  /** Largest signature section. Default 256 KiB (the builder writes one certificate and one COSE_Sign1). */
  maxSignatureBytes: number;
  /** Largest metadata section. Default 1 MiB. */
  maxMetadataBytes: number;
}

export const DEFAULT_EIF_LIMITS: Readonly<EifLimits> = Object.freeze({
  maxFileBytes: 1024 * 1024 * 1024,
  maxSectionBytes: 1024 * 1024 * 1024,
  maxCmdlineBytes: 64 * 1024,
  maxSignatureBytes: 256 * 1024,
  maxMetadataBytes: 1024 * 1024,
});

const NODE_MAX_READ = 2 ** 31 - 1;

export interface EifHeader {
  version: number;
  flags: number;
  /** Header flag bit 0 (EIF_HDR_ARCH_ARM64): set for aarch64, clear for x86_64. */
  arch: "aarch64" | "x86_64";
  defaultMemBytes: number;
  defaultCpus: number;
  numSections: number;
  crc32: number;
}

export interface EifSection {
  type: EifSectionName;
  flags: number;
  /** Offset of the section header in the file. */
  offset: number;
  /** Size of the section data (the header's 12 bytes not included). */
  size: number;
}

export interface EifImage {
  header: EifHeader;
  sections: EifSection[];
  kernel: Uint8Array;
  cmdline: Uint8Array;
  /** In file order; the first is measured into PCR1, the rest into PCR2. */
  ramdisks: Uint8Array[];
  /** Raw signature section (CBOR), when the image is signed. */
  signature?: Uint8Array;
  /** Raw metadata section (JSON), when present. */
  metadata?: Uint8Array;
}

function resolveLimits(limits: Partial<EifLimits> = {}): EifLimits {
  const merged = { ...DEFAULT_EIF_LIMITS, ...limits };
  if (limits.maxSectionBytes === undefined) merged.maxSectionBytes = merged.maxFileBytes;
  for (const [name, value] of Object.entries(merged)) {
    if (!Number.isSafeInteger(value) || value < 0) throw new TypeError(`"${name}" expected a non-negative safe integer, got ${String(value)}`);
  }
  if (merged.maxFileBytes > NODE_MAX_READ) throw new TypeError(`"maxFileBytes" must be at most ${NODE_MAX_READ}, got ${merged.maxFileBytes}`);
  return merged;
}

function u64(view: DataView, offset: number, what: string): number {
  const value = view.getBigUint64(offset);
  // Every meaningful value is far below 2^53; a larger one cannot describe this file.
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new EifError("ERR_EIF_LAYOUT", `${what} is ${value}, beyond any file this reader accepts`);
  return Number(value);
}

function sectionBound(type: EifSectionName, limits: EifLimits): number {
  switch (type) {
    case "cmdline":
      return limits.maxCmdlineBytes;
    case "signature":
      return limits.maxSignatureBytes;
    case "metadata":
      return limits.maxMetadataBytes;
    default:
      return limits.maxSectionBytes;
  }
}

/**
 * The order the builder writes (src/utils/mod.rs `EifBuilder::write_to`):
 * kernel, cmdline, optional metadata, one or more ramdisks, optional
 * signature. PCRs hash sections in file order, so any other order would be a
 * different measurement of "the same" image: refused.
 */
const NEXT: Record<EifSectionName | "start", readonly EifSectionName[]> = {
  start: ["kernel"],
  kernel: ["cmdline"],
  cmdline: ["metadata", "ramdisk"],
  metadata: ["ramdisk"],
  ramdisk: ["ramdisk", "signature"],
  signature: [],
};

/**
 * Parses and checks an EIF held in memory. Checks run in this order: size →
 * header (magic, version, section count) → section walk (type, order,
 * bounds) → offset table → CRC32. Throws EifError; returns views into
 * `bytes`, never copies.
 */
export function readEif(bytes: Uint8Array, limits?: Partial<EifLimits>): EifImage {
  if (!(bytes instanceof Uint8Array)) throw new TypeError(`"bytes" expected Uint8Array, got ${typeof bytes}`);
  const lim = resolveLimits(limits);
  if (bytes.length > lim.maxFileBytes) throw new EifError("ERR_EIF_TOO_LARGE", `image is ${bytes.length} bytes, above the ${lim.maxFileBytes}-byte limit`);
  if (bytes.length < EIF_HEADER_SIZE) throw new EifError("ERR_EIF_TRUNCATED", `image is ${bytes.length} bytes, shorter than the ${EIF_HEADER_SIZE}-byte header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== EIF_MAGIC[i]) throw new EifError("ERR_EIF_MAGIC", `not an EIF: magic is ${Buffer.from(bytes.subarray(0, 4)).toString("hex")}, expected 2e656966 (".eif")`);
  }
  const version = view.getUint16(4);
  if (version < EIF_MIN_VERSION || version > EIF_MAX_VERSION) {
    // V1 images carry no CRC, so their integrity cannot be checked.
    throw new EifError("ERR_EIF_VERSION", `EIF version ${version} is not supported (expected ${EIF_MIN_VERSION}..${EIF_MAX_VERSION})`);
  }
  const flags = view.getUint16(6);
  const defaultMemBytes = u64(view, 8, "default_mem");
  const defaultCpus = u64(view, 16, "default_cpus");
  const numSections = view.getUint16(26);
  if (numSections > EIF_MAX_SECTIONS) throw new EifError("ERR_EIF_LAYOUT", `header lists ${numSections} sections, at most ${EIF_MAX_SECTIONS} exist`);
  const storedCrc = view.getUint32(CRC_OFFSET);

  const sections: EifSection[] = [];
  const data: Uint8Array[] = [];
  let previous: EifSectionName | "start" = "start";
  let pos = EIF_HEADER_SIZE;
  while (pos < bytes.length) {
    const index = sections.length;
    if (index >= EIF_MAX_SECTIONS) throw new EifError("ERR_EIF_LAYOUT", `more than ${EIF_MAX_SECTIONS} sections in the file`);
    if (bytes.length - pos < EIF_SECTION_HEADER_SIZE) throw new EifError("ERR_EIF_TRUNCATED", `section ${index}: header at ${pos} is cut off`);
    const rawType = view.getUint16(pos);
    const type = NAMES[rawType];
    if (type === undefined) throw new EifError("ERR_EIF_SECTION_TYPE", `section ${index}: unknown section type ${rawType}`);
    if (version < SINCE_VERSION[type]) throw new EifError("ERR_EIF_SECTION_TYPE", `section ${index}: a ${type} section cannot appear in an EIF version ${version}`);
    if (!NEXT[previous].includes(type)) {
      throw new EifError(
        "ERR_EIF_LAYOUT",
        `section ${index}: ${type} cannot follow ${previous === "start" ? "the header" : previous} (expected ${NEXT[previous].join(" or ") || "end of file"})`,
      );
    }
    const sectionFlags = view.getUint16(pos + 2);
    const rawSize = view.getBigUint64(pos + 4);
    const bound = sectionBound(type, lim);
    if (rawSize > BigInt(bound)) throw new EifError("ERR_EIF_SECTION_SIZE", `section ${index} (${type}): ${rawSize} bytes, above the ${bound}-byte bound`);
    const size = Number(rawSize);
    if (type === "kernel" && size === 0) throw new EifError("ERR_EIF_SECTION_SIZE", "section 0 (kernel) is empty");
    const start = pos + EIF_SECTION_HEADER_SIZE;
    if (size > bytes.length - start) {
      throw new EifError("ERR_EIF_TRUNCATED", `section ${index} (${type}): ${size} bytes declared, ${bytes.length - start} left in the file`);
    }
    sections.push({ type, flags: sectionFlags, offset: pos, size });
    data.push(bytes.subarray(start, start + size));
    previous = type;
    pos = start + size;
  }
  if (previous !== "ramdisk" && previous !== "signature") {
    throw new EifError(
      sections.length === 0 ? "ERR_EIF_TRUNCATED" : "ERR_EIF_LAYOUT",
      `image ends after ${previous === "start" ? "the header" : previous}; at least a kernel, a cmdline and one ramdisk are required`,
    );
  }

  if (sections.length !== numSections) {
    throw new EifError("ERR_EIF_LAYOUT", `section count mismatch: header says ${numSections}, the file holds ${sections.length}`);
  }
  for (let i = 0; i < EIF_MAX_SECTIONS; i++) {
    const offset = view.getBigUint64(28 + 8 * i);
    const size = view.getBigUint64(284 + 8 * i);
    const walked = sections[i];
    const expectOffset = walked ? BigInt(walked.offset) : 0n;
    const expectSize = walked ? BigInt(walked.size) : 0n;
    if (offset !== expectOffset || size !== expectSize) {
      throw new EifError(
        "ERR_EIF_LAYOUT",
        walked
          ? `section table entry ${i} (offset ${offset}, size ${size}) does not match the ${walked.type} section at ${walked.offset} of ${walked.size} bytes`
          : `section table entry ${i} is unused but not zero (offset ${offset}, size ${size})`,
      );
    }
  }

  // CRC-32/ISO-HDLC (zlib's) over the header without its CRC field, then
  // every section header and its data: exactly what EifBuilder::compute_crc
  // feeds and EifReader::from_eif recomputes. The sections are contiguous
  // up to the end of the file (checked above), so that is bytes[548..].
  const crc = crc32(bytes.subarray(EIF_HEADER_SIZE), crc32(bytes.subarray(0, CRC_OFFSET)));
  if (crc !== storedCrc) {
    throw new EifError("ERR_EIF_CRC", `CRC32 mismatch: header says ${hex32(storedCrc)}, the bytes give ${hex32(crc)}`);
  }

  const of = (type: EifSectionName) => data.filter((_, i) => sections[i]!.type === type);
  const [kernel] = of("kernel");
  const [cmdline] = of("cmdline");
  const [signature] = of("signature");
  const [metadata] = of("metadata");
  return {
    header: {
      version,
      flags,
      arch: (flags & 0x1) !== 0 ? "aarch64" : "x86_64",
      defaultMemBytes,
      defaultCpus,
      numSections,
      crc32: storedCrc,
    },
    sections,
    kernel: kernel!,
    cmdline: cmdline!,
    ramdisks: of("ramdisk"),
    ...(signature !== undefined && { signature }),
    ...(metadata !== undefined && { metadata }),
  };
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, "0")}`;
}

/**
 * Reads an EIF from disk after checking its size against the limit, so an
 * oversized file is refused before it is read. I/O errors propagate as the
 * usual Node errors (with `code`), format problems as EifError.
 */
export async function readEifFile(file: string, limits?: Partial<EifLimits>): Promise<EifImage> {
  const lim = resolveLimits(limits);
  const handle = await open(file, "r");
  try {
    const { size } = await handle.stat();
    if (size > lim.maxFileBytes) throw new EifError("ERR_EIF_TOO_LARGE", `${file} is ${size} bytes, above the ${lim.maxFileBytes}-byte limit`);
    const bytes = new Uint8Array(size);
    let filled = 0;
    while (filled < size) {
      const { bytesRead } = await handle.read(bytes, filled, size - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    // A file that shrank while read is measured as what was actually read.
    return readEif(bytes.subarray(0, filled), lim);
  } finally {
    await handle.close();
  }
}
