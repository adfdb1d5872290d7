/**
 * Builds EIF files for tests, written from the format description
 * (aws-nitro-enclaves-image-format src/defs/mod.rs, src/utils/mod.rs
 * EifBuilder) and not from infra/review/eif: its own CRC32 table, its own CBOR,
 * its own PCR arithmetic, so a shared misreading would show up as a
 * mismatch rather than agree with itself.
 */
import "reflect-metadata";
import { Name, X509CertificateGenerator } from "@peculiar/x509";
import { createHash, webcrypto } from "node:crypto";

export const TYPE = { invalid: 0, kernel: 1, cmdline: 2, ramdisk: 3, signature: 4, metadata: 5 } as const;

export interface RawSection {
  type: number;
  data: Uint8Array;
  flags?: number;
  /** Written into the section header instead of data.length. */
  declaredSize?: bigint;
}

export interface BuildOptions {
  version?: number;
  flags?: number;
  magic?: Uint8Array;
  defaultMem?: bigint;
  defaultCpus?: bigint;
  /** Written as num_sections instead of sections.length. */
  numSections?: number;
  /** Replace entries of the offset/size table. */
  tableOverride?: (offsets: bigint[], sizes: bigint[]) => void;
  /** Written instead of the computed CRC. */
  crc?: number;
}

// CRC-32/ISO-HDLC: reflected polynomial 0xEDB88320, init and xorout 0xFFFFFFFF.
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(parts: Uint8Array[]): number {
  let c = 0xffffffff;
  for (const part of parts) for (const b of part) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function buildEif(sections: RawSection[], opts: BuildOptions = {}): Uint8Array {
  const header = new Uint8Array(548);
  const view = new DataView(header.buffer);
  header.set(opts.magic ?? new Uint8Array([0x2e, 0x65, 0x69, 0x66]), 0);
  view.setUint16(4, opts.version ?? 4);
  view.setUint16(6, opts.flags ?? 0);
  view.setBigUint64(8, opts.defaultMem ?? 1024n * 1024n * 1024n);
  view.setBigUint64(16, opts.defaultCpus ?? 2n);
  view.setUint16(24, 0);
  view.setUint16(26, opts.numSections ?? sections.length);
  const offsets: bigint[] = new Array(32).fill(0n);
  const sizes: bigint[] = new Array(32).fill(0n);
  const body: Uint8Array[] = [];
  let pos = 548;
  sections.forEach((s, i) => {
    const sh = new Uint8Array(12);
    const sv = new DataView(sh.buffer);
    sv.setUint16(0, s.type);
    sv.setUint16(2, s.flags ?? 0);
    sv.setBigUint64(4, s.declaredSize ?? BigInt(s.data.length));
    if (i < 32) {
      offsets[i] = BigInt(pos);
      sizes[i] = BigInt(s.data.length);
    }
    body.push(sh, s.data);
    pos += 12 + s.data.length;
  });
  opts.tableOverride?.(offsets, sizes);
  for (let i = 0; i < 32; i++) {
    view.setBigUint64(28 + 8 * i, offsets[i]!);
    view.setBigUint64(284 + 8 * i, sizes[i]!);
  }
  view.setUint32(540, 0);
  view.setUint32(544, opts.crc ?? crc32([header.subarray(0, 544), ...body]));
  return new Uint8Array(Buffer.concat([header, ...body]));
}

/** Recomputes the header CRC after a test edited the bytes. */
export function fixCrc(eif: Uint8Array): Uint8Array {
  const out = new Uint8Array(eif);
  new DataView(out.buffer).setUint32(544, crc32([out.subarray(0, 544), out.subarray(548)]));
  return out;
}

// ─── Minimal CBOR, shaped like serde_cbor's output ─────────────────────────

function head(major: number, n: number): number[] {
  if (n < 24) return [(major << 5) | n];
  if (n < 0x100) return [(major << 5) | 24, n];
  if (n < 0x10000) return [(major << 5) | 25, n >> 8, n & 0xff];
  return [(major << 5) | 26, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}
const text = (s: string) => [...head(3, Buffer.byteLength(s)), ...Buffer.from(s)];
/** serde_cbor writes Vec<u8> without serde_bytes as an array of unsigned integers. */
const byteArray = (b: Uint8Array) => [...head(4, b.length), ...[...b].flatMap((x) => head(0, x))];
const byteString = (b: Uint8Array) => [...head(2, b.length), ...b];

export function signatureSection(entries: { certificate: Uint8Array; signature: Uint8Array }[], asByteStrings = false): Uint8Array {
  const enc = asByteStrings ? byteString : byteArray;
  const out = [...head(4, entries.length)];
  for (const e of entries) out.push(...head(5, 2), ...text("signing_certificate"), ...enc(e.certificate), ...text("signature"), ...enc(e.signature));
  return Uint8Array.from(out);
}

export interface TestSigner {
  der: Uint8Array;
  pem: string;
}

export async function makeSigningCertificate(commonName = "egw test EIF signer"): Promise<TestSigner> {
  const alg = { name: "ECDSA", namedCurve: "P-384" } as const;
  const keys = await webcrypto.subtle.generateKey(alg, false, ["sign", "verify"]);
  const name = new Name([{ CN: [commonName] }, { O: ["enclave-gateway tests"] }]);
  const cert = await X509CertificateGenerator.create(
    {
      serialNumber: "01a2b3",
      subject: name,
      issuer: name,
      notBefore: new Date("2030-01-01T00:00:00Z"),
      notAfter: new Date("2031-01-01T00:00:00Z"),
      publicKey: keys.publicKey,
      signingKey: keys.privateKey,
      signingAlgorithm: { name: "ECDSA", hash: "SHA-384" },
    },
    webcrypto,
  );
  return { der: new Uint8Array(cert.rawData), pem: cert.toString("pem") };
}

// ─── A typical image and its PCRs from the spec ────────────────────────────

export interface ImageParts {
  kernel: Uint8Array;
  cmdline: Uint8Array;
  ramdisks: Uint8Array[];
  metadata?: Uint8Array;
  signer?: TestSigner;
}

/** kernel, cmdline, metadata?, ramdisk…, signature? — the order EifBuilder writes. */
export function imageSections(p: ImageParts): RawSection[] {
  const sections: RawSection[] = [
    { type: TYPE.kernel, data: p.kernel },
    { type: TYPE.cmdline, data: p.cmdline },
  ];
  if (p.metadata) sections.push({ type: TYPE.metadata, data: p.metadata });
  for (const r of p.ramdisks) sections.push({ type: TYPE.ramdisk, data: r });
  if (p.signer) {
    sections.push({ type: TYPE.signature, data: signatureSection([{ certificate: new TextEncoder().encode(p.signer.pem), signature: new Uint8Array([0xd2, 0x84, 1, 2, 3]) }]) });
  }
  return sections;
}

const sha384 = (...parts: Uint8Array[]) => {
  const h = createHash("sha384");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

/** PCR = SHA-384(48 zero bytes ‖ SHA-384(data)), a single extend from zero. */
export function expectedPcr(...data: Uint8Array[]): string {
  return Buffer.from(sha384(new Uint8Array(48), sha384(...data))).toString("hex");
}

export function expectedPcrs(p: ImageParts): Record<string, string> {
  const [first, ...rest] = p.ramdisks;
  const out: Record<string, string> = {
    0: expectedPcr(p.kernel, p.cmdline, ...p.ramdisks),
    1: expectedPcr(p.kernel, p.cmdline, ...(first ? [first] : [])),
    2: expectedPcr(...rest),
  };
  if (p.signer) out[8] = expectedPcr(p.signer.der);
  return out;
}

export function bytesOf(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}
