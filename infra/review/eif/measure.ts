import { createHash, type Hash } from "node:crypto";
import { decodeStrict } from "../../../attestation/cbor-decode.js";
import { parseCertificate } from "../../../attestation/cert-parse.js";
import { parseMeasurementsManifest } from "../../../attestation/client/policy.js";
import { EifError } from "./errors.js";
import type { EifImage } from "./eif-reader.js";

/**
 * The PCRs an enclave booted from an EIF reports, computed as
 * aws-nitro-enclaves-image-format does (src/utils/mod.rs `get_pcrs`,
 * src/defs/eif_hasher.rs). Each PCR is one SHA-384 "TPM extend" from 48
 * zero bytes of the SHA-384 of the concatenated section *data*; section
 * headers are never hashed:
 *
 *   PCR0 = SHA-384(0^48 ‖ SHA-384(kernel ‖ cmdline ‖ ramdisk_1 ‖ … ‖ ramdisk_n))
 *   PCR1 = SHA-384(0^48 ‖ SHA-384(kernel ‖ cmdline ‖ ramdisk_1))
 *   PCR2 = SHA-384(0^48 ‖ SHA-384(ramdisk_2 ‖ … ‖ ramdisk_n))   (of "" with one ramdisk)
 *   PCR8 = SHA-384(0^48 ‖ SHA-384(DER of the signing certificate))   (signed images only)
 *
 * The metadata and signature sections are in no PCR.
 */
export interface EifMeasurements {
  pcr0: Uint8Array;
  pcr1: Uint8Array;
  pcr2: Uint8Array;
  /** Only for signed images; an unsigned image leaves PCR8 all zero in the enclave. */
  pcr8?: Uint8Array;
  /** The metadata section parsed as JSON (EifIdentityInfo in the reference), when present. */
  metadata?: Record<string, unknown>;
  signingCertificate?: SigningCertificateInfo;
}

export interface SigningCertificateInfo {
  subject: string;
  issuer: string;
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  /** SHA-256 of the DER, hex. */
  sha256: string;
  der: Uint8Array;
}

const ZERO_PCR = new Uint8Array(48);

function extend(hash: Hash): Uint8Array {
  const measured = hash.digest();
  return new Uint8Array(createHash("sha384").update(ZERO_PCR).update(measured).digest());
}

export function measureEif(eif: EifImage): EifMeasurements {
  const image = createHash("sha384");
  const bootstrap = createHash("sha384");
  const app = createHash("sha384");
  for (const part of [eif.kernel, eif.cmdline]) {
    image.update(part);
    bootstrap.update(part);
  }
  eif.ramdisks.forEach((ramdisk, i) => {
    image.update(ramdisk);
    (i === 0 ? bootstrap : app).update(ramdisk);
  });
  const result: EifMeasurements = { pcr0: extend(image), pcr1: extend(bootstrap), pcr2: extend(app) };
  if (eif.signature !== undefined) {
    const cert = signingCertificate(eif.signature);
    result.pcr8 = extend(createHash("sha384").update(cert.der));
    result.signingCertificate = cert;
  }
  if (eif.metadata !== undefined) result.metadata = parseMetadata(eif.metadata);
  return result;
}

function parseMetadata(bytes: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new EifError("ERR_EIF_METADATA", "metadata section is not UTF-8 JSON", { cause });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new EifError("ERR_EIF_METADATA", "metadata section is not a JSON object");
  return value as Record<string, unknown>;
}

const SIGNATURE_KEYS = ["signing_certificate", "signature"] as const;

/**
 * serde_cbor writes `Vec<u8>` fields as CBOR arrays of small integers (the
 * reference has no serde_bytes); a byte string is accepted too.
 */
function cborBytes(value: unknown, what: string): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (Array.isArray(value) && value.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) return Uint8Array.from(value as number[]);
  throw new EifError("ERR_EIF_SIGNATURE", `${what} is neither a byte string nor an array of bytes`);
}

/**
 * The signature section is CBOR `[{ signing_certificate: PEM, signature:
 * COSE_Sign1 over PCR0 }, …]` (src/defs/mod.rs `EifSignature`). PCR8 is the
 * DER of the *first* entry's certificate, as in EifReader::from_eif. The
 * COSE signature is not verified here: PCR8 pins the certificate, and
 * whoever relies on PCR8 compares it with a manifest.
 */
function signingCertificate(section: Uint8Array): SigningCertificateInfo {
  let decoded: unknown;
  try {
    decoded = decodeStrict(section, "EIF signature section", { maxDepth: 4, maxItems: section.length + 1 });
  } catch (cause) {
    throw new EifError("ERR_EIF_SIGNATURE", "signature section is not well-formed CBOR", { cause });
  }
  if (!Array.isArray(decoded) || decoded.length === 0) throw new EifError("ERR_EIF_SIGNATURE", "signature section is not a non-empty CBOR array");
  const entries = decoded.map((entry: unknown, i) => {
    if (!(entry instanceof Map) || entry.size !== SIGNATURE_KEYS.length || !SIGNATURE_KEYS.every((k) => entry.has(k))) {
      throw new EifError("ERR_EIF_SIGNATURE", `signature entry ${i} is not a map of exactly {signing_certificate, signature}`);
    }
    return {
      certificate: cborBytes(entry.get("signing_certificate"), `signature entry ${i} signing_certificate`),
      signature: cborBytes(entry.get("signature"), `signature entry ${i} signature`),
    };
  });
  const der = pemCertificateToDer(entries[0]!.certificate);
  try {
    const cert = parseCertificate(der);
    return { subject: cert.subject, issuer: cert.issuer, serialHex: cert.serialHex, notBefore: cert.notBefore, notAfter: cert.notAfter, sha256: cert.sha256, der };
  } catch (cause) {
    throw new EifError("ERR_EIF_SIGNATURE", "signing certificate is not a well-formed X.509 v3 certificate", { cause });
  }
}

const PEM = /^\s*-----BEGIN CERTIFICATE-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END CERTIFICATE-----\s*$/;

/** The reference reads the certificate with X509::from_pem: one PEM CERTIFICATE block. */
function pemCertificateToDer(bytes: Uint8Array): Uint8Array {
  let text: string;
  try {
    text = new TextDecoder("ascii", { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new EifError("ERR_EIF_SIGNATURE", "signing certificate is not PEM text", { cause });
  }
  const match = PEM.exec(text);
  const body = match?.[1]?.replace(/\r?\n/g, "");
  if (!body || !/^[A-Za-z0-9+/]+={0,2}$/.test(body) || body.length % 4 !== 0) {
    throw new EifError("ERR_EIF_SIGNATURE", "signing certificate is not a single PEM CERTIFICATE block");
  }
  return new Uint8Array(Buffer.from(body, "base64"));
}

// ─── Comparison with a measurements manifest ─────────────────────────────

export interface PcrMismatch {
  index: number;
  expected: string;
  /** null when the image does not produce this PCR (PCR8 of an unsigned image, or an index EIFs do not measure). */
  actual: string | null;
}

export type ManifestComparison = { matched: true; label: string } | { matched: false; entries: { label: string; mismatches: PcrMismatch[] }[] };

export function measurementPcrs(m: EifMeasurements): Map<number, Uint8Array> {
  const pcrs = new Map<number, Uint8Array>([
    [0, m.pcr0],
    [1, m.pcr1],
    [2, m.pcr2],
  ]);
  if (m.pcr8) pcrs.set(8, m.pcr8);
  return pcrs;
}

/**
 * Compares an image's PCRs with every entry of a measurements manifest
 * (attestation/client/policy.ts `parseMeasurementsManifest`: a trust
 * section may be left out, as only PCRs are compared; throws
 * ERR_MANIFEST_INVALID). An entry matches when every PCR it lists equals
 * the image's, the rule the client applies to attestation documents; the
 * first matching entry wins. Otherwise each entry's differences are listed.
 */
export function compareWithManifest(measurements: EifMeasurements, manifestJson: string | unknown): ManifestComparison {
  const manifest = parseMeasurementsManifest(manifestJson);
  const actual = measurementPcrs(measurements);
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
  const entries = manifest.measurements.map((entry) => {
    const mismatches: PcrMismatch[] = [];
    for (const [index, expected] of entry.pcrs) {
      const got = actual.get(index);
      if (!got || !Buffer.from(got).equals(Buffer.from(expected))) mismatches.push({ index, expected: hex(expected), actual: got ? hex(got) : null });
    }
    return { label: entry.label, mismatches };
  });
  const match = entries.find((e) => e.mismatches.length === 0);
  return match ? { matched: true, label: match.label } : { matched: false, entries };
}
